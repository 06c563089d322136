"""One tiny CUB-5shot set, generated once per session through DiffIIBuilder, shared read-only by the hf tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.helpers.fakedata import write_cub
from tests.helpers.hf import FAKE_CUB, FAST_KNOBS


@pytest.fixture(scope="session")
def cub_build(tmp_path_factory):
    """``DiffIIBuilder("cub-5shot")`` generated from a fake CUB with a tiny model saved to disk."""
    from diffii_datasets.hf import DiffIIBuilder
    from diffii_datasets.testing import tiny_pipeline

    root = tmp_path_factory.mktemp("hf")
    write_cub(root / "raw", FAKE_CUB)
    tiny_pipeline(seed=0).save_pretrained(root / "model")
    kwargs = dict(data_dir=str(root / "raw"), model=str(root / "model"), cache_dir=str(root / "hf-cache"),
                  diffii_cache_dir=str(root / "stores"), progress=False, **FAST_KNOBS)
    builder = DiffIIBuilder(config_name="cub-5shot", **kwargs)
    builder.download_and_prepare()
    return SimpleNamespace(root=root, builder=builder, dataset=builder.as_dataset(), store=builder.store,
                           kwargs=kwargs)


@pytest.fixture(scope="session")
def cub_test_split(cub_build):
    """The fake CUB's real test split, as the builder reads it."""
    from diffii_datasets.settings import load_setting

    return load_setting("cub-5shot", cub_build.root / "raw", seed=0).test
