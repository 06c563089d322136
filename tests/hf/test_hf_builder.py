"""DiffIIBuilder: settings as configs, generation through the wrapper store, prebuilt sets from a folder or the Hub."""

from __future__ import annotations

import inspect
import shutil

import datasets
import pyarrow.parquet as pq
import pytest

import diffii_datasets
from diffii_datasets import DiffIIAugmented, DiffIIConfig
from diffii_datasets.settings import list_settings, load_setting
from diffii_datasets.hf import (
    DiffIIBuilder,
    diffii_features,
    export_to_folder,
    to_dataset_dict,
)
from tests.helpers.hf import CLASS_NAMES, FAST_KNOBS

pytestmark = pytest.mark.filterwarnings("ignore:few_shot:UserWarning")  # the fake CUB has fewer than 5 shots


def raw_rows(dataset: datasets.Dataset) -> list[dict]:
    """Rows with the image as its stored bytes, so equality means byte-identical images."""
    return dataset.cast_column("image", datasets.Image(decode=False)).to_list()


@pytest.fixture(scope="module")
def export_folder(cub_build, cub_test_split, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    export_to_folder(cub_build.store, folder, "cub-5shot", test_dataset=cub_test_split,
                     cache_dir=tmp_path_factory.mktemp("convert-cache"))
    return folder


def test_one_builder_config_per_paper_setting():
    assert [config.name for config in DiffIIBuilder.BUILDER_CONFIGS] == [s.name for s in list_settings()]
    assert len(DiffIIBuilder.BUILDER_CONFIGS) == 14
    signature = inspect.signature(DiffIIBuilder)
    assert all(item.name not in signature.parameters for item in DiffIIConfig.knobs())  # keywords, derived
    builder = DiffIIBuilder(config_name="cub-5shot", concept_lora_rank=4, split_ratio=0.5, seed=2)
    assert builder.config.diffii == {"concept_lora_rank": 4, "split_ratio": 0.5}
    assert builder.config.method_config() == DiffIIConfig(concept_lora_rank=4, split_ratio=0.5, seed=2,
                                                          suffixes="builtin:bird")  # the setting's own list
    with pytest.raises(ValueError, match="^concept_lora_rank must be a non-negative int, got -1"):
        DiffIIBuilder(config_name="cub-5shot", concept_lora_rank=-1)
    ratios = {s.name: s.split_ratio for s in list_settings()}
    assert ratios["cub-5shot"] == 0.3 and ratios["pet-10shot"] == 0.1 and ratios["flower-lt-if20"] == 1.0


def test_a_builder_makes_any_methods_set_with_that_methods_knobs():
    from diffii_datasets import get_method

    builder = DiffIIBuilder(config_name="cub-lt-if100", method="diff-mix", strengths=0.5, seed=3)
    config = builder.config.method_config()
    assert config.method == "diff-mix" and isinstance(config, get_method("diff-mix").config_class)
    # the setting's own knobs that the method declares: class-balanced concepts on a long tail
    assert config.strengths == (0.5,) and config.seed == 3 and config.concept_balance_classes
    with pytest.raises(TypeError, match="unknown knob.*split_ratio"):
        DiffIIBuilder(config_name="cub-5shot", method="diff-mix", split_ratio=0.5)
    with pytest.raises(ValueError, match="method='real-gen', but diffii_config is a config of 'diff-ii'"):
        DiffIIBuilder(config_name="cub-5shot", method="real-gen", diffii_config=DiffIIConfig())


def test_generated_splits_and_features(cub_build):
    ds = cub_build.dataset
    assert set(ds) == {"train", "synthetic", "test"}
    assert [len(ds[split]) for split in ("train", "synthetic", "test")] == [6, 6, 5]
    for split in ds.values():
        assert split.features == diffii_features(CLASS_NAMES)
    assert not any(ds["train"]["is_synthetic"]) and all(ds["synthetic"]["is_synthetic"])
    assert ds["train"]["label"] == [0, 0, 0, 1, 1, 2]
    # The one-image class starts from noise: no pair, no lam; the others interpolate pairs of their images.
    by_label = {label: row for label, row in zip(ds["synthetic"]["label"], ds["synthetic"].to_list())}
    assert by_label[2]["source_indices"] == [] and by_label[2]["lam"] is None
    assert len(by_label[0]["source_indices"]) == 2 and by_label[0]["lam"] is not None


def test_builder_generates_through_the_wrapper_store(cub_build, cub_test_split, tmp_path):
    """The builder's rows are the wrapper's store, converted: one generation path, one store."""
    config = cub_build.builder.config.method_config()
    assert config.split_ratio == 0.3 and config.expansion_rate == 1.0 and config.seed == 0
    bench = load_setting("cub-5shot", cub_build.root / "raw", seed=0)
    wrapper = DiffIIAugmented(bench.train, "bird", config=config, cache_dir=cub_build.kwargs["diffii_cache_dir"],
                              progress=False).prepare()
    assert wrapper.report.generated == []  # the builder filled exactly this store
    assert wrapper.store.path == cub_build.store.path
    converted = to_dataset_dict(wrapper.store, cub_test_split, cache_dir=tmp_path)
    for split in ("train", "synthetic", "test"):
        assert raw_rows(cub_build.dataset[split]) == raw_rows(converted[split]), split
    assert [wrapper.synthetic.metadata(i)["lam"] for i in range(6)] == cub_build.dataset["synthetic"]["lam"]


def test_store_is_found_when_datasets_serves_its_cache(cub_build, export_folder, monkeypatch, tmp_path):
    """A second builder of the same config: datasets skips _split_generators, the store is still there."""
    def no_generation(*args, **kwargs):
        raise AssertionError("nothing may be generated: the datasets cache holds this config")

    monkeypatch.setattr("diffii_datasets.prepare.fill_store", no_generation)
    again = DiffIIBuilder(config_name="cub-5shot", **cub_build.kwargs)
    again.download_and_prepare()
    assert again.store is not None and again.store.path == cub_build.store.path
    assert again.store.header == cub_build.store.header
    assert raw_rows(again.as_dataset(split="synthetic")) == raw_rows(cub_build.dataset["synthetic"])

    elsewhere = DiffIIBuilder(config_name="cub-5shot", **{**cub_build.kwargs, "diffii_cache_dir": str(tmp_path)})
    assert elsewhere.store is None  # no store was made in that cache
    assert DiffIIBuilder(config_name="cub-5shot", source=str(export_folder)).store is None  # prebuilt: no store


def test_builder_loads_an_exported_folder(cub_build, export_folder, tmp_path):
    built = DiffIIBuilder(config_name="cub-5shot", source=str(export_folder), cache_dir=str(tmp_path / "cache"))
    built.download_and_prepare()
    ds = built.as_dataset()
    for split in ("train", "synthetic", "test"):
        assert ds[split].features == cub_build.dataset[split].features
        assert raw_rows(ds[split]) == raw_rows(cub_build.dataset[split]), split
    synthetic = diffii_datasets.load("cub-5shot", source=export_folder, split="synthetic",
                                     cache_dir=tmp_path / "cache2")
    assert raw_rows(synthetic) == raw_rows(cub_build.dataset["synthetic"])


def test_builder_downloads_a_hub_repo(cub_build, export_folder, tmp_path, monkeypatch):
    """A repo id goes through snapshot_download (README first, then the config's files) at one resolved commit."""
    snapshot = tmp_path / "snapshots" / "0123456789abcdef"
    shutil.copytree(export_folder, snapshot)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(snapshot)

    monkeypatch.setattr("diffii_datasets.hf.builder.snapshot_download", fake_snapshot_download)
    ds = diffii_datasets.load("cub-5shot", source="someone/diffii-cub", cache_dir=tmp_path / "cache")
    assert raw_rows(ds["synthetic"]) == raw_rows(cub_build.dataset["synthetic"])
    assert {c[0] for c in calls} == {"someone/diffii-cub"}
    assert all(c[1]["repo_type"] == "dataset" for c in calls)
    assert calls[0][1]["allow_patterns"] == ["README.md"] and calls[0][1]["revision"] is None
    assert calls[-1][1]["revision"] == "0123456789abcdef"  # the files come from the commit the README was read at
    assert "data/cub-5shot/synthetic-*" in calls[-1][1]["allow_patterns"]


@pytest.mark.parametrize("damage", ["drop_column", "plain_int_label"])
def test_prebuilt_split_with_other_features_is_refused(export_folder, tmp_path, damage):
    folder = tmp_path / "repo"
    shutil.copytree(export_folder, folder)
    shard = next((folder / "data" / "cub-5shot").glob("synthetic-*.parquet"))
    table = pq.read_table(shard)
    table = table.drop_columns(["seed"]) if damage == "drop_column" else table.replace_schema_metadata(None)
    pq.write_table(table, shard)
    builder = DiffIIBuilder(config_name="cub-5shot", source=str(folder), cache_dir=str(tmp_path / "cache"))
    expected = "missing column 'seed'" if damage == "drop_column" else "'label' must be a ClassLabel"
    with pytest.raises(ValueError, match=expected):
        builder.download_and_prepare()


def test_unknown_config_name_lists_the_settings():
    with pytest.raises(ValueError, match="cub-5shot, cub-10shot, .*flower-lt-if10; got 'cub-3shot'"):
        DiffIIBuilder(config_name="cub-3shot", data_dir="/nowhere")


def test_bad_arguments(cub_build, tiny_pipe, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        DiffIIBuilder(config_name="cub-5shot", data_dir="/nowhere", resolution=30, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="source=.* ignored.*expansion_rate"):
        DiffIIBuilder(config_name="cub-5shot", source="someone/repo", expansion_rate=2.0)
    with pytest.raises(ValueError, match="namespace/name"):
        DiffIIBuilder(config_name="cub-5shot", source="not a repo")
    with pytest.raises(ValueError, match="pipeline= or model="):
        DiffIIBuilder(config_name="cub-5shot", data_dir="/nowhere", pipeline=tiny_pipe, model="some/model")
    with pytest.raises(ValueError, match="pass data_dir="):
        DiffIIBuilder(config_name="cub-5shot", cache_dir=str(tmp_path), **FAST_KNOBS).download_and_prepare()


def test_pipeline_object_names_the_model(tiny_pipe, tmp_path):
    from diffii_datasets.diffusion.pipeline import model_identity

    builder = DiffIIBuilder(config_name="cub-10shot", data_dir="/nowhere", pipeline=tiny_pipe,
                            cache_dir=str(tmp_path), **{k: v for k, v in FAST_KNOBS.items()})
    config = builder.config.method_config()
    assert config.model == model_identity(tiny_pipe)
    assert config.split_ratio == 0.1  # the 10-shot default
    assert builder.config_id != DiffIIBuilder(config_name="cub-10shot", data_dir="/nowhere",
                                              cache_dir=str(tmp_path), **FAST_KNOBS).config_id


def test_a_loaded_pipeline_reaches_the_same_store(cub_build, tmp_path):
    """pipeline= names the model by its directory, so the builder finds the store the model= build filled."""
    from diffii_datasets.diffusion import load_pipeline

    pipe = load_pipeline(cub_build.kwargs["model"], device="cpu")
    kwargs = {**cub_build.kwargs, "cache_dir": str(tmp_path / "cache")}
    del kwargs["model"]
    builder = DiffIIBuilder(config_name="cub-5shot", pipeline=pipe, **kwargs)
    builder.download_and_prepare()
    assert builder.store.path == cub_build.store.path
    assert raw_rows(builder.as_dataset(split="synthetic")) == raw_rows(cub_build.dataset["synthetic"])


def test_load_takes_download_as_the_missing_dataset_error_says(monkeypatch, tmp_path):
    from diffii_datasets.settings.base import Setting

    asked = {}

    def missing(self, root, seed=0, **kwargs):
        asked.update(kwargs)
        raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    monkeypatch.setattr(Setting, "load", missing)
    for download in (False, True):
        with pytest.raises(RuntimeError, match="download=True"):
            diffii_datasets.load("cub-5shot", data_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "hf"),
                                 diffii_cache_dir=str(tmp_path / "stores"), download=download, progress=False)
        assert asked["download"] is download  # the keyword the hint names reaches the dataset
    with pytest.raises(TypeError, match="download must be a bool"):
        DiffIIBuilder(config_name="cub-5shot", data_dir=str(tmp_path), download="yes")
