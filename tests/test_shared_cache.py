"""Caches shared between runs, users and configs: read-only stores, one file mode, concepts learned once per key,
and reopening a prepared store without decoding the base images again."""

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from torchvision.datasets import ImageFolder

import diffii_datasets.prepare as prepare_module
from diffii_datasets.base_dataset import scan_dataset
from diffii_datasets.distributed import World
from diffii_datasets.job import PreparationJob
from diffii_datasets.progress import RunProgress
from diffii_datasets.store import ConceptCache, SyntheticStore
from diffii_datasets.store.cache import store_path
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import FAST_CONFIG, make_dataset, make_wrapper
from tests.helpers.damage import verify


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` with its kind, size, mode and modification time: any write shows."""
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        entries[path.relative_to(root).as_posix()] = (stat.S_IFMT(info.st_mode), info.st_size,
                                                      stat.S_IMODE(info.st_mode), info.st_mtime_ns)
    return entries


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~0o222)


def test_a_complete_store_is_read_without_writing_anything(tmp_path, pipe):
    cache = tmp_path / "cache"
    first = make_wrapper(make_dataset(), cache, pipeline=pipe).prepare()
    before = _snapshot(cache)
    _set_writable(cache, False)  # a read-only mount for a user; root ignores it, hence the snapshot
    try:
        again = make_wrapper(make_dataset(), cache, pipeline=pipe).prepare()
        assert again.store.path == first.store.path and again.report.generated == []
        assert again.synthetic.targets == first.synthetic.targets and again[0][0].size == (32, 32)
        status, lines, out = verify(again.store.path)
        assert (status, lines) == (0, []), out
        after = _snapshot(cache)
    finally:
        _set_writable(cache, True)
    assert after.keys() == before.keys()  # no lock, no folder, no scan, no temporary was created
    unchanged = {name: (kind, size, mtime) for name, (kind, size, _, mtime) in before.items()}
    assert {name: (kind, size, mtime) for name, (kind, size, _, mtime) in after.items()} == unchanged  # no rewrite


def test_every_file_of_a_cache_gets_the_users_umask(tmp_path, pipe):
    previous = os.umask(0o002)  # a group-shared cache
    try:
        make_wrapper(make_dataset(), tmp_path / "cache", pipeline=pipe).prepare()
    finally:
        os.umask(previous)
    modes = {}
    for path in (tmp_path / "cache").rglob("*"):
        modes.setdefault(oct(stat.S_IMODE(path.stat().st_mode)), []).append(path.relative_to(tmp_path).as_posix())
    concept_files = [p for p in modes.get("0o664", []) if p.endswith(".safetensors") and "/concepts/" in f"/{p}"]
    assert set(modes) == {"0o664", "0o775"}, {mode: paths[:3] for mode, paths in modes.items()}
    assert concept_files  # the learned concepts too (safetensors writes 0600 by itself)


def test_two_configs_sharing_a_cache_learn_their_concepts_once(tmp_path, pipe, monkeypatch):
    classes = make_dataset().classes
    scan = scan_dataset(make_dataset(), classes)
    jobs = [PreparationJob(scan.images_by_class, classes, "shape", config, scan.fingerprint, "tiny")
            for config in (FAST_CONFIG, FAST_CONFIG.replace(guidance_scale=3.0))]
    assert jobs[0].concepts_key() == jobs[1].concepts_key()
    stores = [SyntheticStore.create(store_path(tmp_path / "cache", job.header()), job.header()) for job in jobs]
    assert stores[0].path != stores[1].path
    learned, learn = [], prepare_module._learn

    def slow_learn(*args, **kwargs):
        learned.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the other store to try too
        return learn(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "_learn", slow_learn)
    results, errors = [], []

    def stage(store, job):
        try:
            results.append(prepare_module._concept_stage(store, job, lambda: pipe, ConceptCache(tmp_path / "cache"),
                                                         RunProgress(False), World()))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=stage, args=pair) for pair in zip(stores, jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(learned) == 1
    assert results[0].identity() == results[1].identity()


def _folder_dataset(root: Path) -> ImageFolder:
    base = make_dataset()
    for i, (image, label) in enumerate(base):
        folder = root / base.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    return ImageFolder(str(root))


class _Counting(ImageFolder):
    """An ImageFolder that counts the items read."""

    reads = 0

    def __getitem__(self, index):
        type(self).reads += 1
        return super().__getitem__(index)


def test_reopening_reads_no_image_while_the_files_are_unchanged(tmp_path, pipe):
    folder = _folder_dataset(tmp_path / "folder")
    first = make_wrapper(_Counting(folder.root), tmp_path / "cache", pipeline=pipe).prepare()
    assert _Counting.reads > len(folder)  # scanned (the first item twice), then read class by class to generate
    _Counting.reads = 0
    again = make_wrapper(_Counting(folder.root), tmp_path / "cache", pipeline=pipe).prepare()
    assert _Counting.reads == 0 and again.store.path == first.store.path

    touched = Path(folder.samples[0][0])
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    third = make_wrapper(_Counting(folder.root), tmp_path / "cache", pipeline=pipe).prepare()
    assert _Counting.reads == len(folder) + 1  # a file changed: hashed again (streamed), same pixels, same store
    assert third.store.path == first.store.path and third.report.generated == []


def test_a_damaged_scan_cache_is_ignored_and_written_again(tmp_path, pipe):
    folder = _folder_dataset(tmp_path / "folder")
    first = make_wrapper(_Counting(folder.root), tmp_path / "cache", pipeline=pipe).prepare()
    (scan,) = (tmp_path / "cache" / "scans").iterdir()
    original = scan.read_bytes()
    scan.write_bytes(original.replace(b'"', b"'", 1))
    _Counting.reads = 0
    again = make_wrapper(_Counting(folder.root), tmp_path / "cache", pipeline=pipe).prepare()
    assert _Counting.reads == len(folder) + 1 and again.store.path == first.store.path
    assert scan.read_bytes() == original
