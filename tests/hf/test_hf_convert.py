"""A complete store as a DatasetDict: rows, features, provenance; incomplete or damaged stores are refused."""

from __future__ import annotations

import shutil

import datasets
import pytest

from diffii_datasets import SyntheticStore
from diffii_datasets.hf import IncompleteStoreError, check_features, diffii_features, to_dataset_dict
from diffii_datasets.store import StoreFormatError
from diffii_datasets.testing import tiny_image_dataset
from tests.helpers.hf import CLASS_NAMES

pytestmark = pytest.mark.filterwarnings("ignore:few_shot:UserWarning")  # the fake CUB has fewer than 5 shots


def test_rows_are_the_store_files_and_records(cub_build, cub_test_split, tmp_path):
    store = cub_build.store
    ds = to_dataset_dict(store.path, cub_test_split, cache_dir=tmp_path)
    assert list(ds) == ["train", "synthetic", "test"]
    raw = {split: ds[split].cast_column("image", datasets.Image(decode=False)) for split in ds}

    real = [(c, path) for c in range(3) for path in store.real_images(c)]
    assert [row["image"]["bytes"] for row in raw["train"]] == [path.read_bytes() for _, path in real]
    assert raw["train"]["label"] == [c for c, _ in real]
    assert raw["train"][0] | {"image": None} == {"image": None, "label": 0, "is_synthetic": False,
                                                 "source_indices": [], "lam": None, "suffix": "", "seed": None,
                                                 "strength": None, "target": None, "score": None}

    records = [record for c in range(3) for record in store.records(c)]
    rows = raw["synthetic"].to_list()
    assert len(rows) == len(records) == 6
    for row, record in zip(rows, records):
        assert row["image"]["bytes"] == store.image_path(record.label, record.file).read_bytes()
        assert (row["label"], tuple(row["source_indices"]), row["lam"], row["suffix"], row["seed"]) == (
            record.label, record.source_indices, record.lam, record.suffix, record.seed)
        assert row["is_synthetic"] is True

    assert len(raw["test"]) == len(cub_test_split) == 5
    assert raw["test"]["label"] == [label for _, label in cub_test_split]
    for split in ds.values():
        assert split.features == diffii_features(CLASS_NAMES)


def test_store_object_and_path_give_the_same_rows(cub_build, tmp_path):
    by_path = to_dataset_dict(str(cub_build.store.path), cache_dir=tmp_path / "a")
    by_store = to_dataset_dict(SyntheticStore.open(cub_build.store.path), cache_dir=tmp_path / "b")
    assert set(by_path) == {"train", "synthetic"}
    for split in by_path:
        assert by_path[split].cast_column("image", datasets.Image(decode=False)).to_list() == \
            by_store[split].cast_column("image", datasets.Image(decode=False)).to_list()


def copy_store(cub_build, tmp_path) -> SyntheticStore:
    shutil.copytree(cub_build.store.path, tmp_path / "store")
    return SyntheticStore.open(tmp_path / "store")


def test_incomplete_store_is_refused_with_the_missing_classes(cub_build, tmp_path):
    store = copy_store(cub_build, tmp_path)
    store.discard(1)
    with pytest.raises(IncompleteStoreError, match=r"1 of 3 classes .*: 1 \(Laysan Albatross\)"):
        to_dataset_dict(store, cache_dir=tmp_path / "cache")


def test_damaged_store_is_refused(cub_build, tmp_path):
    store = copy_store(cub_build, tmp_path)
    record = store.records(0)[1]
    path = store.image_path(0, record.file)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(IncompleteStoreError, match=f"class 0 {record.file}: checksum mismatch"):
        to_dataset_dict(store, cache_dir=tmp_path / "cache")


def test_bad_sources_and_test_sets(cub_build, tmp_path):
    with pytest.raises(TypeError, match=r"source must be a SyntheticStore or a store directory \(DiffIIAugmented"):
        to_dataset_dict(42)
    with pytest.raises(StoreFormatError, match="is not a diffii-datasets store"):
        to_dataset_dict(tmp_path)
    other = tiny_image_dataset(num_classes=3, per_class=[1, 1, 1], size=8, seed=0)
    with pytest.raises(ValueError, match="test_dataset has classes"):
        to_dataset_dict(cub_build.store, other, cache_dir=tmp_path / "cache")


def test_check_features_names_every_difference():
    assert check_features(diffii_features(["a", "b"]), "x") == ["a", "b"]
    changed = datasets.Features({**diffii_features(["a"]), "lam": datasets.Value("string"),
                                 "extra": datasets.Value("int8")})
    del changed["seed"]
    with pytest.raises(ValueError, match="missing column 'seed'.*unexpected column 'extra'.*column 'lam' is"):
        check_features(changed, "shard.parquet")
    with pytest.raises(ValueError, match="'label' must be a ClassLabel"):
        check_features(datasets.Features({**diffii_features(["a"]), "label": datasets.Value("int64")}), "x")
