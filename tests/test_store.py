"""The on-disk store: atomic class commits, verification, header checks, deterministic manifest."""

import dataclasses
import json
import os

import pytest
import torch
from PIL import Image

from diffii_datasets import DiffIIConfig
from diffii_datasets._io import FileFormatError
from diffii_datasets.store import StoreFormatError, StoreHeader, StoreMismatchError, SyntheticRecord, SyntheticStore

HEADER = StoreHeader(config=DiffIIConfig(seed=0), classes=("F/A-18", "../x"), metaclass="plane", dataset="d0",
                     model="m0", concepts="c0", real_counts=(2, 2), expected_counts=(3, 3))
VERSIONS = {"torch": "x"}


def _fill(store, class_index, count=3):
    with store.writing(class_index) as writer:
        writer.write_inversions(torch.full((2, 4, 2, 2), float(class_index)))
        for i in range(2):
            writer.add_real(i, Image.new("RGB", (8, 8), (0, 0, 100 + i)))
        for i in range(count):
            writer.add(Image.new("RGB", (8, 8), (i * 40, class_index * 50, 0)),
                       SyntheticRecord(i, class_index, source_indices=(0, 1), lam=0.5, suffix="on a branch", seed=7))


def test_commit_writes_a_whole_class_under_its_index(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    _fill(store, 1)
    assert store.is_committed(1) and not store.is_committed(0)
    assert sorted(p.name for p in store.classes_dir.iterdir()) == ["00001"]
    records = store.records(1)
    assert [r.index for r in records] == [0, 1, 2]
    assert records[0].file == "images/00000.png" and records[0].label == 1 and records[0].suffix
    assert records[0] == SyntheticRecord(0, 1, (0, 1), 0.5, "on a branch", 7, file="images/00000.png",
                                         sha256=records[0].sha256)
    assert torch.equal(store.read_inversions(1), torch.full((2, 4, 2, 2), 1.0))
    with Image.open(store.image_path(1, records[2].file)) as image:
        assert image.getpixel((0, 0)) == (80, 50, 0)
    assert [p.name for p in store.real_images(1)] == ["00000.png", "00001.png"]
    with Image.open(store.real_images(1)[1]) as image:
        assert image.getpixel((0, 0)) == (0, 0, 101)
    assert store.verify([0, 1]) == []


def test_error_while_writing_leaves_nothing(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    with pytest.raises(RuntimeError, match="boom"):
        with store.writing(0) as writer:
            writer.add(Image.new("RGB", (8, 8)), SyntheticRecord(0, 0))
            raise RuntimeError("boom")
    assert not store.is_committed(0)
    assert list(store.classes_dir.iterdir()) == []


def test_stale_temporary_from_a_crash_is_removed(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    stale = store.classes_dir / ".tmp-00000-99999"
    (stale / "images").mkdir(parents=True)
    store.remove_stale_temporaries(0)
    assert not stale.exists()


def test_verify_finds_missing_and_corrupt_files(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    _fill(store, 0)
    _fill(store, 1)
    (store.class_dir(0) / "images/00001.png").unlink()
    path = store.class_dir(1) / "images/00002.png"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = store.verify([0, 1])
    assert {(p.class_index, p.file, p.reason) for p in problems} == {
        (0, "images/00001.png", "missing"), (1, "images/00002.png", "checksum mismatch")}
    assert store.verify([0, 1], checksums=False) == [problems[0]]


def test_discard_removes_class_and_manifest(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    _fill(store, 0)
    store.finalize([0], VERSIONS)
    store.discard(0)
    assert not store.is_committed(0) and store.manifest() is None


def test_manifest_is_deterministic_and_needs_every_class(tmp_path):
    stores = [SyntheticStore.create(tmp_path / name, HEADER) for name in ("a", "b")]
    for store in stores:
        _fill(store, 0)
        with pytest.raises(RuntimeError, match=r"not committed yet: \[1\]"):
            store.finalize([0, 1], VERSIONS)
        _fill(store, 1, count=2)
        manifest = store.finalize([0, 1], VERSIONS)
    assert manifest["complete"] and manifest["total_images"] == 5
    assert manifest["classes"] == list(HEADER.classes) and manifest["versions"] == VERSIONS
    a, b = ((s.path / "manifest.json").read_bytes() for s in stores)
    assert a == b
    for relative in ("classes/00000/class.json", "classes/00001/metadata.jsonl", "classes/00000/images/00002.png"):
        assert (stores[0].path / relative).read_bytes() == (stores[1].path / relative).read_bytes()


def test_reopening_with_another_header_explains_the_difference(tmp_path):
    SyntheticStore.create(tmp_path / "s", HEADER)
    SyntheticStore.create(tmp_path / "s", StoreHeader.from_dict(json.loads(json.dumps(HEADER.to_dict()))))  # same
    other = dataclasses.replace(HEADER, config=DiffIIConfig(seed=1))
    with pytest.raises(StoreMismatchError, match=r"config\.seed: store has 0, requested 1"):
        SyntheticStore.create(tmp_path / "s", other)


def test_open_reads_the_typed_header(tmp_path):
    SyntheticStore.create(tmp_path / "s", HEADER)
    store = SyntheticStore.open(tmp_path / "s")
    assert store.header == HEADER and store.header.key() == HEADER.key()
    assert store.header.config.seed == 0 and store.image_format == "png"
    with pytest.raises(StoreFormatError, match="has no store.json"):
        SyntheticStore.open(tmp_path)


def test_a_store_of_version_0_1_is_reported_not_misread(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "store.json").write_text(json.dumps({"format": 1, "config": {"seed": 0}, "classes": ["a"]}))
    with pytest.raises(StoreFormatError, match="store format 1 \\(diffii-datasets 0.1\\).*Generate the set again"):
        SyntheticStore.open(old)


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not valid JSON"),
    ("[]", "must hold a JSON object, found list"),
    ('{"format": 2, "classes": []}', "lacks the field 'config'"),
])
def test_a_damaged_header_names_the_file(tmp_path, text, problem):
    (tmp_path / "store.json").write_text(text)
    with pytest.raises(FileFormatError, match=problem) as caught:
        SyntheticStore.open(tmp_path)
    assert caught.value.path == tmp_path / "store.json"


def test_jpeg_option(tmp_path):
    header = dataclasses.replace(HEADER, config=DiffIIConfig(image_format="jpeg"))
    store = SyntheticStore.create(tmp_path / "s", header)
    _fill(store, 0, count=1)
    assert store.records(0)[0].file == "images/00000.jpg"
    with pytest.raises(ValueError, match="image_format"):
        DiffIIConfig(image_format="gif")


def test_unusable_cache_dir_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ValueError, match="cache_dir must be a writable directory"):
        SyntheticStore.create(tmp_path / "a-file" / "store", HEADER)


def test_verify_manifest_finds_a_stale_commit_record(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    _fill(store, 0)
    _fill(store, 1)
    store.finalize([0, 1], VERSIONS)
    assert store.verify_manifest() == []
    record = store.class_dir(1) / "class.json"
    record.write_text(record.read_text().replace('"count": 3', '"count": 2'))
    assert store.verify_manifest() == ["class 1: its commit record does not match the manifest"]


def test_a_full_disk_while_committing_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    import diffii_datasets.store.writer as store_module

    store = SyntheticStore.create(tmp_path / "s", HEADER)

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_module, "fsync_dir", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _fill(store, 0)
    assert list(store.classes_dir.iterdir()) == [] and not store.is_committed(0)


def test_discarding_a_class_that_became_a_file_leaves_no_trash(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    store.class_dir(1).write_text("a file where a class directory should be")
    store.discard(1)
    assert list(store.classes_dir.iterdir()) == []


def test_sweep_removes_only_what_ended_processes_left_and_no_locked_class(tmp_path):
    import subprocess
    import sys

    from filelock import FileLock

    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    ended, alive = child.pid, os.getpid()
    paths = {name: store.path / name for name in (
        f".manifest.json.tmp-{ended}", f".manifest.json.tmp-{alive}", f"shared/.suffixes.json.tmp-{ended}",
        f"classes/.tmp-00000-{ended}", f"classes/.tmp-00001-{ended}", f"classes/.trash-00001-{alive}")}
    for path in paths.values():
        path.mkdir(parents=True) if "classes/" in str(path) else path.write_text("x")
    with FileLock(str(store.locks_dir / "class-00001.lock")):  # class 1 is being written, from another machine
        swept = store.sweep()
    assert sorted(p.relative_to(store.path).as_posix() for p in swept) == [
        f".manifest.json.tmp-{ended}", f"classes/.tmp-00000-{ended}", f"shared/.suffixes.json.tmp-{ended}"]
    assert [name for name, path in paths.items() if path.exists()] == [
        f".manifest.json.tmp-{alive}", f"classes/.tmp-00001-{ended}", f"classes/.trash-00001-{alive}"]


def test_reads_check_what_they_read_and_name_the_file(tmp_path):
    from diffii_datasets.store import StoreDamageError

    store = SyntheticStore.create(tmp_path / "s", HEADER)
    _fill(store, 0)
    _fill(store, 1)
    metadata = store.class_dir(0) / "metadata.jsonl"
    metadata.write_bytes(metadata.read_bytes().replace(b'"lam": 0.5', b'"lam": 0.4'))
    with pytest.raises(StoreDamageError, match="metadata.jsonl: checksum mismatch") as caught:
        store.records(0)
    assert caught.value.store_problem.class_index == 0 and caught.value.path == metadata
    inversions = store.class_dir(1) / "inversions.safetensors"
    inversions.write_bytes(inversions.read_bytes()[:-4])
    with pytest.raises(StoreDamageError, match="inversions.safetensors: checksum mismatch"):
        store.read_inversions(1)
    assert [str(p) for p in store.verify([0, 1])] == [
        "class 0: metadata.jsonl is checksum mismatch", "class 1: inversions.safetensors is checksum mismatch"]


def test_the_canonical_form_is_checked_when_asked(tmp_path):
    from diffii_datasets._io import read_json, write_json

    write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "a.json", canonical=True) == {"a": [1, 2], "b": 1}
    (tmp_path / "a.json").write_text('{"b": 1, "a": [1, 2]}')
    assert read_json(tmp_path / "a.json") == {"a": [1, 2], "b": 1}
    with pytest.raises(FileFormatError, match="not in the form diffii-datasets writes"):
        read_json(tmp_path / "a.json", canonical=True)
    (tmp_path / "n.json").write_text("null")
    with pytest.raises(FileFormatError, match="must hold a JSON object, found NoneType"):
        read_json(tmp_path / "n.json", missing_ok=True)


def test_a_custom_store_with_a_damaged_header_is_refused_naming_it(tmp_path):
    from diffii_datasets.store import StoreDamageError

    SyntheticStore.create(tmp_path / "s", HEADER)
    (tmp_path / "s" / "store.json").write_text("{garbage")
    # Not named after its header: the directory cannot say which setup it was for, so it is not rewritten.
    with pytest.raises(StoreDamageError, match="store.json: damaged \\(not valid JSON"):
        SyntheticStore.create(tmp_path / "s", HEADER)
