"""Issue 26, items 10, 12, 13 and 16: damage and leftovers that survived reruns in 0.2.0. Each case is reproduced on a
copy of one prepared cache, then: verify names it (exit 1, no traceback), the next prepare() repairs it (with a
warning or a log line saying why), and afterwards verify is clean and the cache is the undamaged one."""

import errno
import json
import logging
import os
from types import SimpleNamespace

import pytest

from diffii_datasets.store import StoreDamageError, SyntheticStore
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import make_dataset, make_wrapper
from tests.helpers.damage import (
    cache_files,
    copy_cache,
    edit_metadata_consistently,
    ended_pid,
    flip,
    prepare,
    reference_cache,
    rewrite_consistently,
    verify,
)

CHECKPOINT = "work/concepts/concepts-checkpoint.json"
TRAINING_LOG = "diffii_datasets.diffusion.concepts.training"


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pipe):
    return reference_cache(tmp_path_factory.mktemp("reference"), pipe)


@pytest.fixture
def copy(tmp_path, reference):
    cache = copy_cache(reference.cache, tmp_path / "cache")
    return SimpleNamespace(cache=cache, store=cache / reference.store.name,
                           concepts=cache / "concepts" / reference.concepts.name)


def _problems(store):
    status, lines, out = verify(store)
    assert status == 1 and "Traceback" not in out, out
    return lines


def _clean(copy, reference):
    assert cache_files(copy.cache) == reference.files
    status, lines, out = verify(copy.store)
    assert (status, lines) == (0, []), out


def _newest_tensors(store):
    return store / "work/concepts" / json.loads((store / CHECKPOINT).read_text())["tensors"]


def _no_learning(monkeypatch):
    import diffii_datasets.prepare as prepare_module

    monkeypatch.setattr(prepare_module, "_learn", lambda *a, **k: pytest.fail("the concepts were learned again"))


# -- item 10: damaged concept checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("damaged, resumed", [("newest", "step 2"), ("both", "the start")])
def test_flipped_checkpoint_tensors_are_named_and_learning_resumes_from_the_last_good_one(
        copy, reference, pipe, caplog, damaged, resumed):
    newest = _newest_tensors(copy.store)
    flip(newest, 200)
    if damaged == "both":
        previous = json.loads((copy.store / "work/concepts/concepts-checkpoint-previous.json").read_text())
        flip(copy.store / "work/concepts" / previous["tensors"], 200)
    lines = _problems(copy.store)
    assert lines[0].startswith(f"{CHECKPOINT} is not usable (its tensor file {newest.name} is corrupt or truncated")
    fallback = "step 0" if damaged == "both" else "the previous one (step 2)"
    assert lines[0].endswith(f"the next run discards it and resumes from {fallback})")
    # The concepts must be learned again (their cached set is gone) for a class that must be generated again.
    import shutil

    shutil.rmtree(copy.concepts)
    (copy.store / "classes/00002/class.json").unlink()
    with caplog.at_level(logging.WARNING, logger=TRAINING_LOG):
        wrapper, _ = prepare(copy.cache, pipe)  # 0.2.0: every rerun failed here
    assert wrapper.report.generated == [2] and wrapper.report.complete
    messages = [r.getMessage() for r in caplog.records if r.name == TRAINING_LOG]
    assert len(messages) == (2 if damaged == "both" else 1) and newest.name in messages[0]
    for message in messages:
        assert message.startswith("discarding a damaged concept-learning checkpoint")
        assert message.endswith(f"learning resumes from {resumed}")
    _clean(copy, reference)  # resumed or started over, the same concepts and the same class


def test_a_damaged_checkpoint_of_a_store_whose_concepts_are_cached_is_discarded(copy, reference, pipe, monkeypatch):
    flip(_newest_tensors(copy.store), 200)
    (line,) = _problems(copy.store)
    assert line.startswith(f"{CHECKPOINT} is not usable")
    _no_learning(monkeypatch)
    wrapper, warned = prepare(copy.cache, pipe)
    assert any(CHECKPOINT in w and "checkpoints are removed (the learned concepts are cached)" in w for w in warned)
    assert wrapper.report.generated == [] and not (copy.store / "work/concepts").exists()
    _clean(copy, reference)


# -- item 10: what verify accepted and every read then failed on ---------------------------------------------------


@pytest.mark.parametrize("damage, reason", [
    (lambda data: b"", "it is empty"),
    (lambda data: data[: len(data) // 2], "it is cut short"),
    (lambda data: b"GIF89a" + data[6:], "it is not a PNG file"),
])
def test_an_unreadable_image_with_consistent_checksums_is_found_and_regenerated(copy, reference, pipe, damage,
                                                                                reason):
    image = copy.store / "classes/00001/images/00001.png"
    rewrite_consistently(copy.store, 1, "images/00001.png", damage(image.read_bytes()))
    (line,) = _problems(copy.store)
    assert line.startswith("class 1 (green square): images/00001.png is not a readable image") and reason in line
    store = SyntheticStore.open(copy.store)
    with pytest.raises(StoreDamageError, match="images/00001.png: not a readable image") as caught:
        store.load_image(image)
    assert caught.value.path == image
    wrapper, warned = prepare(copy.cache, pipe)
    assert wrapper.report.generated == [1]
    assert any("images/00001.png is not a readable image" in w and "will be regenerated" in w for w in warned)
    _clean(copy, reference)


def test_an_image_that_only_a_decode_finds_unreadable_is_found_by_verify_and_named_by_reads(copy):
    """Pixel data broken inside a whole file (its PNG chunk checksums fixed too): verify decodes every image; a
    read names the file and says how to have the class made again."""
    import struct
    import zlib

    image = copy.store / "classes/00001/images/00001.png"
    data = bytearray(image.read_bytes())
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    data[start + 2:start + length] = bytes(length - 2)  # the zlib stream's body zeroed
    data[start + length:start + length + 4] = struct.pack(">I", zlib.crc32(data[start - 4:start + length]))
    rewrite_consistently(copy.store, 1, "images/00001.png", bytes(data))
    (line,) = _problems(copy.store)
    assert line.startswith("class 1 (green square): images/00001.png is not a readable image")
    assert "delete classes/00001" in line
    with pytest.raises(StoreDamageError, match="images/00001.png: not a readable image .*delete the class's directory"):
        SyntheticStore.open(copy.store).load_image(image)


@pytest.mark.parametrize("class_index, lam, problem", [
    (1, -0.5, "has lam -0.5 with source_indices"),
    (1, "0.5", "has lam '0.5', expected a number or null"),
    (2, 0.5, "has lam 0.5 with source_indices []"),  # class 2 has one real image: generated from noise, no pair
])
def test_a_consistent_edit_of_a_records_lam_is_found_by_verify_and_by_reads_alike(copy, reference, pipe,
                                                                                  class_index, lam, problem):
    metadata = copy.store / f"classes/{class_index:05d}/metadata.jsonl"
    lines = [json.loads(line) for line in metadata.read_text().splitlines()]
    lines[1]["lam"] = lam
    edit_metadata_consistently(copy.store, class_index, lines)
    (line,) = _problems(copy.store)
    assert line.startswith(f"class {class_index} ") and ": metadata.jsonl is damaged (line 2 " in line
    assert problem in line
    with pytest.raises(StoreDamageError, match="metadata.jsonl: damaged"):
        SyntheticStore.open(copy.store).records(class_index)  # what every read goes through (from_store, prepare)
    wrapper, _ = prepare(copy.cache, pipe)
    assert wrapper.report.generated == [class_index]
    _clean(copy, reference)


def test_a_consistent_edit_to_another_valid_lam_is_served_as_edited_and_verify_agrees(copy):
    """A forgery no check can tell from a store written that way: verify accepts it and reads serve it, never
    one accepting what the other fails on."""
    from diffii_datasets import DiffIIAugmented

    lines = [json.loads(line) for line in (copy.store / "classes/00001/metadata.jsonl").read_text().splitlines()]
    lines[1]["lam"] = lines[1]["lam"] / 2
    edit_metadata_consistently(copy.store, 1, lines)
    assert verify(copy.store)[:2] == (0, [])
    served = DiffIIAugmented.from_store(copy.store, mode="concat")
    index = next(i for i in range(len(served.synthetic)) if served.synthetic.record(i).label == 1) + 1
    assert served.synthetic.record(index).lam == lines[1]["lam"]
    assert served.synthetic[index][0].size == (32, 32)


# -- item 9's aftermath: a store whose header went ------------------------------------------------------------------


def test_a_header_deleted_from_a_store_with_work_is_written_again_with_a_warning(copy, reference, pipe):
    """0.2.0 wrote it again silently, as for a new store (and a run that then failed could remove the store)."""
    (copy.store / "store.json").unlink()
    status, _, out = verify(copy.store)
    assert status == 1 and "is not a diffii-datasets store (it has no store.json)" in out
    wrapper, warned = prepare(copy.cache, pipe)
    assert any("store.json is missing (the store holds work); it is written again" in w for w in warned), warned
    assert [p.file for p in wrapper.report.repaired] == ["store.json"] and wrapper.report.generated == []
    assert not wrapper.store.created
    _clean(copy, reference)


# -- item 12: leftovers nothing reported or rewrote ----------------------------------------------------------------


def test_a_deleted_shared_checksum_file_is_named_and_written_again(copy, reference, pipe):
    (copy.store / "shared/checksums.json").unlink()
    (line,) = _problems(copy.store)
    assert line == "shared/checksums.json is missing (the suffixes beside it cannot be checked)"
    wrapper, warned = prepare(copy.cache, pipe)
    assert any("shared/checksums.json is missing" in w and "derived again" in w for w in warned)
    assert wrapper.report.generated == []
    _clean(copy, reference)


def test_deleted_suffixes_of_a_store_with_classes_are_named_and_derived_again(copy, reference, pipe):
    for name in ("checksums.json", "suffixes.json"):
        (copy.store / "shared" / name).unlink()
    (line,) = _problems(copy.store)
    assert line == "shared/suffixes.json is missing (the suffixes its classes were generated with)"
    prepare(copy.cache, pipe)
    _clean(copy, reference)


@pytest.mark.parametrize("leftover", [".concepts-checkpoint.json.tmp-{pid}",
                                      ".concepts-checkpoint-00000004.safetensors.tmp-{pid}",
                                      "concepts-checkpoint-00000099.safetensors"])
def test_a_checkpoint_leftover_of_a_killed_write_is_named_once_and_removed(copy, reference, pipe, leftover):
    path = copy.store / "work/concepts" / leftover.format(pid=ended_pid())
    path.write_bytes(b"half written")
    (line,) = _problems(copy.store)
    assert line.startswith(f"{path.relative_to(copy.store).as_posix()} is ")
    assert "left behind by process" in line or "a tensor file no checkpoint describes" in line
    prepare(copy.cache, pipe)
    assert not path.exists()
    _clean(copy, reference)


@pytest.mark.parametrize("damage, reason", [
    (lambda path: path.unlink(), "is missing (where the concepts were learned from is no longer recorded)"),
    (lambda path: path.write_text("{garbage"), "is damaged (not valid JSON"),
    (lambda path: path.write_bytes(path.read_bytes().replace(b'"shape"', b'"shapf"')), None),  # only the job knows
])
def test_a_lost_or_damaged_learned_from_is_written_again_from_the_job_without_learning(copy, reference, pipe,
                                                                                       monkeypatch, damage, reason):
    learned_from = copy.concepts / "learned-from.json"
    concept_files = {p: p.stat().st_mtime_ns for p in copy.concepts.rglob("*.safetensors")}
    damage(learned_from)
    status, lines, out = verify(copy.store)
    if reason is None:  # an edit that keeps the file's form: verify cannot tell, prepare (which has the job) can
        assert (status, lines) == (0, []), out
    else:
        assert lines == [f"{learned_from} {reason}" + lines[0].split(reason)[1]] and status == 1, out
    _no_learning(monkeypatch)
    wrapper, warned = prepare(copy.cache, pipe)
    assert any(str(learned_from) in w and "written again from the job" in w for w in warned), warned
    assert wrapper.report.generated == []
    assert {p: p.stat().st_mtime_ns for p in copy.concepts.rglob("*.safetensors")} == concept_files
    _clean(copy, reference)


def test_leftovers_of_a_killed_concept_save_are_named_and_swept(copy, reference, pipe, monkeypatch):
    pid = ended_pid()
    key = copy.concepts.name
    root = copy.cache / "concepts"
    leftovers = [root / f".tmp-{key}-{pid}", root / f"..tmp-{key}-{pid}.tmp-{pid}", root / f".trash-{key}-{pid}"]
    for path in leftovers:
        (path / "learned_embeds").mkdir(parents=True)
    live = root / f".tmp-{key}-{os.getpid()}"  # a save in progress is left alone
    live.mkdir()
    lines = _problems(copy.store)
    assert sorted(lines) == sorted(f"{p} is left behind by process {pid}, which has ended (swept at the next prepare)"
                                   for p in leftovers)
    _no_learning(monkeypatch)
    (copy.store / "classes/00002/class.json").unlink()  # a class to generate: the concept stage runs
    prepare(copy.cache, pipe)
    assert not any(p.exists() for p in leftovers) and live.exists()
    live.rmdir()
    _clean(copy, reference)


@pytest.mark.parametrize("damage", ["intact", "damaged", "dangling"])
def test_a_symlinked_concept_directory(copy, reference, pipe, tmp_path, monkeypatch, damage):
    """Concepts kept elsewhere and linked into the cache: an intact set is used through the link; a damaged or
    dangling link is removed as a link (what it points at is not touched) and the concepts learned again."""
    import shutil

    elsewhere = tmp_path / "elsewhere" / copy.concepts.name
    elsewhere.parent.mkdir()
    shutil.move(copy.concepts, elsewhere)
    copy.concepts.symlink_to(elsewhere, target_is_directory=True)
    if damage == "damaged":
        flip(elsewhere / "pytorch_lora_weights.safetensors", -3)
    elif damage == "dangling":
        shutil.move(elsewhere, tmp_path / "moved")
    kept = {p: p.read_bytes() for p in (tmp_path / ("moved" if damage == "dangling" else "elsewhere")).rglob("*")
            if p.is_file()}
    if damage == "intact":
        assert verify(copy.store)[:2] == (0, [])
        _no_learning(monkeypatch)
    else:
        (line,) = _problems(copy.store)
        assert line.startswith(f"{copy.concepts} is not a usable concept set")
    (copy.store / "classes/00002/class.json").unlink()  # a class to generate with them
    wrapper, warned = prepare(copy.cache, pipe)
    assert wrapper.report.generated == [2]
    assert copy.concepts.is_symlink() == (damage == "intact")
    assert {p: p.read_bytes() for p in kept} == kept  # nothing outside the cache was changed or removed
    if damage != "intact":
        assert any("the concepts will be learned again" in w for w in warned)
    assert verify(copy.store)[:2] == (0, [])


# -- item 13: a full disk while saving the concepts ----------------------------------------------------------------


@pytest.mark.parametrize("full_at", ["pytorch_lora_weights.safetensors", "learned-from.json"])
def test_a_full_disk_while_saving_concepts_names_the_file_the_store_and_what_to_free(tmp_path, pipe, monkeypatch,
                                                                                     caplog, full_at):
    import diffii_datasets._io as io_module

    real_write = io_module.atomic_write

    def full_disk(path, data):
        if os.fspath(path).endswith(full_at):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(path))
        real_write(path, data)

    for module in ("diffii_datasets._io", "diffii_datasets.diffusion.concepts.concept_set"):
        monkeypatch.setattr(f"{module}.atomic_write", full_disk)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="no space left on the device while saving the learned concepts") as caught:
        make_wrapper(make_dataset(), cache, pipeline=pipe).prepare()
    (store,) = [p for p in cache.iterdir() if len(p.name) == 16]
    (key,) = [p.name for p in (cache / "locks").glob("concepts-*.lock")]
    key = key.removeprefix("concepts-").removesuffix(".lock")
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert f"writing {cache / 'concepts' / key / full_at} failed" in message and f"the store {store}" in message
    assert "MB are free" in message and f"old stores in {cache} can go" in message
    assert "learning resumes from its last checkpoint" in message
    assert list((cache / "concepts").iterdir()) == []  # nothing half-written, no temporary left
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger=TRAINING_LOG):
        wrapper = make_wrapper(make_dataset(), cache, pipeline=pipe).prepare()
    assert wrapper.report.complete and "concept learning already finished" in caplog.text  # not learned again
    assert verify(store)[:2] == (0, [])


# -- item 16: a cache path that is not UTF-8 -----------------------------------------------------------------------


def test_a_cache_path_that_is_not_utf8_is_refused_up_front_naming_it(tmp_path, pipe):
    cache = tmp_path / os.fsdecode(b"caf\xe9")
    cache.mkdir()
    with pytest.raises(ValueError, match=r"cache_dir must be a path whose name is valid UTF-8, got b'.*caf\\xe9'"):
        make_wrapper(make_dataset(), cache, pipeline=pipe)
    assert list(cache.iterdir()) == []
    with pytest.raises(ValueError, match="the store's path must be a path whose name is valid UTF-8"):
        SyntheticStore.open(cache)
    status, lines, out = verify(cache)
    assert status == 1 and "must be a path whose name is valid UTF-8" in out and "Traceback" not in out
