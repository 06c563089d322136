"""The on-disk store: atomic class commits, verification, header checks, deterministic manifest."""

import dataclasses
import json

import pytest
import torch
from PIL import Image

from diffii_datasets import DiffIIConfig
from diffii_datasets._io import FileFormatError
from diffii_datasets.store import StoreFormatError, StoreHeader, StoreMismatchError, SyntheticStore

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
                       {"index": i, "source_indices": [0, 1], "lam": 0.5, "suffix": "on a branch", "seed": 7})


def test_commit_writes_a_whole_class_under_its_index(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    _fill(store, 1)
    assert store.is_committed(1) and not store.is_committed(0)
    assert sorted(p.name for p in store.classes_dir.iterdir()) == ["00001"]
    records = store.records(1)
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[0]["file"] == "images/00000.png" and records[0]["label"] == 1 and records[0]["suffix"]
    assert torch.equal(store.read_inversions(1), torch.full((2, 4, 2, 2), 1.0))
    with Image.open(store.image_path(1, records[2]["file"])) as image:
        assert image.getpixel((0, 0)) == (80, 50, 0)
    assert [p.name for p in store.real_images(1)] == ["00000.png", "00001.png"]
    with Image.open(store.real_images(1)[1]) as image:
        assert image.getpixel((0, 0)) == (0, 0, 101)
    assert store.verify([0, 1]) == []


def test_error_while_writing_leaves_nothing(tmp_path):
    store = SyntheticStore.create(tmp_path / "s", HEADER)
    with pytest.raises(RuntimeError, match="boom"):
        with store.writing(0) as writer:
            writer.add(Image.new("RGB", (8, 8)), {"index": 0})
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
    assert store.records(0)[0]["file"] == "images/00000.jpg"
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
