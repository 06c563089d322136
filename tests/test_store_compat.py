"""A store written by diffii-datasets 0.2.0 (the demo's, committed under tests/fixtures) opens and serves the items
0.2.0 served, byte for byte; it is read, never written to."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from diffii_datasets import DiffIIAugmented, DiffIIConfig, SyntheticStore
from diffii_datasets.store import StoreFormatError

FIXTURES = Path(__file__).parent / "fixtures"
# What 0.2.0 served from this store (concat mode, then replace mode at p = 0.5, epoch 0): the SHA-256 of each
# image's pixels and its label, and the provenance of synthetic item 3 (computed by running 0.2.0 itself).
SERVED = json.loads((FIXTURES / "store-0.2.0-items.json").read_text())


@pytest.fixture
def old_store(tmp_path):
    shutil.copytree(FIXTURES / "store-0.2.0", tmp_path / "store")
    return SyntheticStore.open(tmp_path / "store")


def _served(dataset):
    return [[hashlib.sha256(image.tobytes()).hexdigest()[:16], int(label)] for image, label in
            (dataset[i] for i in range(len(dataset)))]


def test_a_0_2_store_serves_the_items_0_2_served(old_store):
    assert old_store.header.format == 2 and old_store.header.method == "diff-ii"
    assert isinstance(old_store.header.config, DiffIIConfig) and old_store.header.config.split_ratio == 0.3
    assert _served(DiffIIAugmented.from_store(old_store, mode="concat")) == SERVED["concat"]
    replace = DiffIIAugmented.from_store(old_store.path, mode="replace", synthetic_probability=0.5)
    assert _served(replace) == SERVED["replace"]
    metadata = replace.synthetic.metadata(3)
    assert {key: metadata[key] for key in SERVED["metadata_0_3"]} == SERVED["metadata_0_3"]
    assert old_store.problems() == [] and old_store.manifest()["complete"] is True


def test_a_0_2_store_is_never_written_to(old_store, tmp_path):
    with pytest.raises(StoreFormatError, match="format 2 is read, never written to"):
        SyntheticStore.create(tmp_path / "elsewhere", old_store.header)
    assert old_store.header.key() == "f387e3bbe1e488bc"  # its 0.2 key: the header is kept as 0.2 wrote it
