"""Export and push: the Parquet repository layout, the card, accumulating configs, the upload boundary, bad input."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import datasets
import pyarrow.parquet as pq
import pytest
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import EntryNotFoundError

from diffii_datasets import DiffIIConfig, SyntheticStore
from diffii_datasets.settings import FAMILIES
from diffii_datasets.hf import (
    IncompleteStoreError,
    diffii_features,
    export_to_folder,
    push_to_hub,
    to_dataset_dict,
)
from diffii_datasets.hf.cards import render_card, resolve_card
from diffii_datasets.hf.hub import CITATION
from tests.helpers.hf import CLASS_NAMES

pytestmark = [pytest.mark.filterwarnings("ignore:few_shot:UserWarning"),  # the fake CUB has fewer than 5 shots
              pytest.mark.filterwarnings("ignore:config_name 'cub-:UserWarning")]  # and 3 classes, not 200

REPO = "someone/diffii-cub"
TOKEN = "hf_NotARealTokenButSecret0123456789"


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def raw_rows(dataset: datasets.Dataset) -> list[dict]:
    return dataset.cast_column("image", datasets.Image(decode=False)).to_list()


@pytest.fixture(scope="module")
def exported(cub_build, cub_test_split, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    files = export_to_folder(cub_build.store, folder, "cub-5shot", test_dataset=cub_test_split, repo_id=REPO,
                             cache_dir=tmp_path_factory.mktemp("convert-cache"))
    return SimpleNamespace(folder=folder, files=files)


def test_export_writes_exactly_the_repository_layout(exported):
    assert sorted(path.relative_to(exported.folder).as_posix() for path in exported.files) == sorted(
        files_of(exported.folder)) == [
        "README.md",
        "data/cub-5shot/synthetic-00000-of-00001.parquet",
        "data/cub-5shot/test-00000-of-00001.parquet",
        "data/cub-5shot/train-00000-of-00001.parquet",
    ]


def test_load_dataset_reads_every_split_with_identical_rows(cub_build, cub_test_split, exported, tmp_path):
    loaded = datasets.load_dataset(str(exported.folder), "cub-5shot", cache_dir=str(tmp_path / "load"))
    expected = to_dataset_dict(cub_build.store, cub_test_split, cache_dir=tmp_path / "convert")
    assert set(loaded) == set(expected) == {"train", "synthetic", "test"}
    for split in expected:
        assert loaded[split].features == expected[split].features == diffii_features(CLASS_NAMES)
        assert raw_rows(loaded[split]) == raw_rows(expected[split]), split


def test_two_configs_accumulate_in_one_folder(cub_build, exported, tmp_path):
    folder = tmp_path / "repo"
    shutil.copytree(exported.folder, folder)
    before = files_of(folder)
    written = export_to_folder(cub_build.store, folder, "cub-10shot", repo_id=REPO, cache_dir=tmp_path / "cache")
    assert sorted(p.relative_to(folder).as_posix() for p in written) == [
        "README.md", "data/cub-10shot/synthetic-00000-of-00001.parquet", "data/cub-10shot/train-00000-of-00001.parquet"]
    after = files_of(folder)
    assert {name: data for name, data in after.items() if "cub-5shot" in name} == \
        {name: data for name, data in before.items() if "cub-5shot" in name}
    five = datasets.load_dataset(str(folder), "cub-5shot", cache_dir=str(tmp_path / "load"))
    ten = datasets.load_dataset(str(folder), "cub-10shot", cache_dir=str(tmp_path / "load"))
    assert set(five) == {"train", "synthetic", "test"} and set(ten) == {"train", "synthetic"}
    assert raw_rows(ten["synthetic"]) == raw_rows(five["synthetic"])  # the same store under two names
    card = DatasetCard.load(folder / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["cub-10shot", "cub-5shot"]
    assert [r["config_name"] for r in card.data.diffii] == ["cub-10shot", "cub-5shot"]
    assert set(DatasetInfosDict.from_dataset_card_data(card.data)) == {"cub-10shot", "cub-5shot"}
    assert "| `cub-10shot` | 3 | 6 | 6 | not included |" in card.text
    assert "| `cub-5shot` | 3 | 6 | 6 | 5 |" in card.text

    # Exporting a config again replaces its own shards only: here without the test split.
    export_to_folder(cub_build.store, folder, "cub-5shot", repo_id=REPO, cache_dir=tmp_path / "cache")
    assert "data/cub-5shot/test-00000-of-00001.parquet" not in files_of(folder)
    assert {n: d for n, d in files_of(folder).items() if "cub-10shot" in n} == \
        {n: d for n, d in after.items() if "cub-10shot" in n}
    assert set(datasets.load_dataset(str(folder), "cub-5shot", cache_dir=str(tmp_path / "load2"))) == \
        {"train", "synthetic"}


def test_card_parses_and_declares_configs_features_and_provenance(cub_build, exported):
    card = DatasetCard.load(exported.folder / "README.md")
    data = card.data
    assert data.license == "other" and data.license_link.startswith("https://www.vision.caltech.edu/")
    assert data.task_categories == ["image-classification"]
    assert {"synthetic", "diff-ii", "few-shot"} <= set(data.tags)
    assert data.source_datasets == ["extended|other-cub-200-2011"]
    assert data.size_categories == "n<1K"
    assert data.configs == [{"config_name": "cub-5shot", "data_files": [
        {"split": split, "path": f"data/cub-5shot/{split}-*"} for split in ("train", "synthetic", "test")]}]
    info = DatasetInfosDict.from_dataset_card_data(data)["cub-5shot"]
    assert info.features == diffii_features(CLASS_NAMES)
    assert {name: split.num_examples for name, split in info.splits.items()} == {"train": 6, "synthetic": 6, "test": 5}
    (record,) = data.diffii
    assert record["model"] == cub_build.kwargs["model"] and record["concepts"].startswith("learned:")
    assert DiffIIConfig.from_dict(record["generation"]) == cub_build.builder.config.method_config()

    body = card.text
    assert f'load_dataset("{REPO}", "cub-5shot")' in body
    assert "CUB-200-2011 is not released under an open licence" in body
    assert "non-commercial research and education" in body
    assert "## Limits of synthetic data" in body and "never on `synthetic`" in body
    assert CITATION in body
    (block,) = re.findall(r"```json\n(.*?)\n```", body, flags=re.S)
    assert DiffIIConfig.from_dict(json.loads(block)) == cub_build.builder.config.method_config()


@pytest.mark.parametrize("family, license_id, terms", [
    ("cub", "other", "non-commercial research and education"),
    ("cub-lt", "other", "non-commercial research and education"),
    ("aircraft", "other", "non-commercial research purposes only"),
    ("cars", "other", "no longer online"),
    ("pet", "cc-by-sa-4.0", "Creative\nCommons Attribution-ShareAlike 4.0"),
    ("flower-lt", "unknown", "state no licence"),
])
def test_every_family_card_renders_with_its_licence(exported, family, license_id, terms):
    record = dict(DatasetCard.load(exported.folder / "README.md").data.diffii[0], family=family)
    card_data = DatasetCardData(configs=[{"config_name": "x", "data_files": "data/x/*"}], diffii=[record])
    card = render_card(resolve_card(family, None), card_data, {
        "configs": [record], "repo_id": REPO, "citation": CITATION})
    parsed = DatasetCard(str(card))
    assert parsed.data.license == license_id
    assert parsed.data.task_categories == ["image-classification"]
    assert parsed.data.configs == card_data.configs
    assert "**Licence and terms**" in parsed.text and terms in parsed.text
    assert "{%" not in parsed.text and "{{" not in parsed.text
    assert set(FAMILIES) == {"cub", "cub-lt", "aircraft", "cars", "pet", "flower-lt"}


class FakeHub:
    """Stands in for HfApi's HTTP methods: records what reaches the upload boundary."""

    def __init__(self, monkeypatch, readme: Path | None = None):
        self.readme, self.calls, self.uploads, self.tokens = readme, [], [], set()
        for name in ("create_repo", "repo_info", "hf_hub_download", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._unbound(getattr(self, "_" + name)))

    @staticmethod
    def _unbound(method):
        def replacement(api, *args, **kwargs):  # installed on the class: receives the HfApi instance
            return method(api, *args, **kwargs)

        return replacement

    def _create_repo(self, api, repo_id, **kwargs):
        self.tokens.add(api.token)
        self.calls.append(("create_repo", repo_id, kwargs))

    def _repo_info(self, api, repo_id, **kwargs):
        self.calls.append(("repo_info", repo_id, kwargs))
        return SimpleNamespace(sha="c0ffee")

    def _hf_hub_download(self, api, repo_id, filename, **kwargs):
        self.calls.append(("hf_hub_download", repo_id, {"filename": filename, **kwargs}))
        if self.readme is None:
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(self.readme)

    def _upload_folder(self, api, **kwargs):
        self.tokens.add(api.token)
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        self.uploads.append(files_of(Path(kwargs["folder_path"])))
        return SimpleNamespace(commit_url=f"https://huggingface.co/datasets/{kwargs['repo_id']}/commit/c0ffee1")


def test_push_uploads_exactly_the_exported_files(cub_build, cub_test_split, exported, monkeypatch, caplog, capsys,
                                                 tmp_path):
    caplog.set_level(logging.DEBUG)
    hub = FakeHub(monkeypatch)
    url = push_to_hub(cub_build.store, REPO, "cub-5shot", private=True, token=TOKEN, test_dataset=cub_test_split,
                      cache_dir=tmp_path / "cache")
    assert url == f"https://huggingface.co/datasets/{REPO}/commit/c0ffee1"
    assert hub.uploads == [files_of(exported.folder)]  # byte for byte what export_to_folder writes
    create, info, download, upload = hub.calls
    assert create == ("create_repo", REPO, {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert download[2]["revision"] == "c0ffee" and download[2]["repo_type"] == "dataset"
    assert upload[2]["repo_type"] == "dataset" and upload[2]["parent_commit"] == "c0ffee"
    assert upload[2]["allow_patterns"] == ["README.md", "data/cub-5shot/*"]
    assert upload[2]["delete_patterns"] == ["data/cub-5shot/*"]  # other configs survive
    assert hub.tokens == {TOKEN}
    out, err = capsys.readouterr()
    assert TOKEN not in caplog.text + out + err
    assert all(TOKEN.encode() not in data for data in hub.uploads[0].values())


def test_second_push_merges_the_existing_readme(cub_build, exported, monkeypatch, tmp_path):
    hub = FakeHub(monkeypatch, readme=exported.folder / "README.md")
    push_to_hub(str(cub_build.store.path), REPO, "cub-10shot", token=TOKEN, cache_dir=tmp_path / "cache")
    (uploaded,) = hub.uploads
    assert sorted(uploaded) == ["README.md", "data/cub-10shot/synthetic-00000-of-00001.parquet",
                                "data/cub-10shot/train-00000-of-00001.parquet"]
    card = DatasetCard(uploaded["README.md"].decode())
    assert [c["config_name"] for c in card.data.configs] == ["cub-10shot", "cub-5shot"]
    five = next(c for c in card.data.configs if c["config_name"] == "cub-5shot")
    assert [f["split"] for f in five["data_files"]] == ["train", "synthetic", "test"]
    assert hub.calls[-1][2]["delete_patterns"] == ["data/cub-10shot/*"]


def test_push_refuses_an_incomplete_store_before_any_network_call(cub_build, monkeypatch, tmp_path):
    hub = FakeHub(monkeypatch)
    shutil.copytree(cub_build.store.path, tmp_path / "store")
    store = SyntheticStore.open(tmp_path / "store")
    store.discard(2)
    with pytest.raises(IncompleteStoreError, match=r"2 \(Sooty Albatross\)"):
        push_to_hub(store, REPO, "cub-5shot", token=TOKEN)
    assert hub.calls == []


def test_push_without_a_token_says_where_tokens_come_from(cub_build, monkeypatch):
    hub = FakeHub(monkeypatch)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(RuntimeError, match="HF_TOKEN.*hf auth login"):
        push_to_hub(cub_build.store, REPO, "cub-5shot")
    assert hub.calls == []


@pytest.mark.parametrize("repo_id", ["diffii-cub", "a/b/c", "someone/", "/name", "someone/na me", "someone/a--b",
                                     None])
def test_repo_id_must_be_namespace_and_name(cub_build, monkeypatch, repo_id):
    hub = FakeHub(monkeypatch)
    with pytest.raises(ValueError, match="repo_id"):
        push_to_hub(cub_build.store, repo_id, "cub-5shot", token=TOKEN)
    assert hub.calls == []


@pytest.mark.parametrize("config_name", ["data", "cub/5shot", "cub:5shot", "", "my config", ".hidden", None])
def test_config_names_datasets_forbids_are_refused(cub_build, tmp_path, config_name):
    with pytest.raises(ValueError, match="config_name must .* cub-5shot, cub-10shot"):
        export_to_folder(cub_build.store, tmp_path, config_name)
    assert list(tmp_path.iterdir()) == []


def test_store_must_fit_the_config_and_the_folder_family(cub_build, exported, tmp_path):
    with pytest.raises(ValueError, match="'animal' setting, but the store was made for metaclass 'bird'"):
        export_to_folder(cub_build.store, tmp_path / "a", "pet-5shot")
    with pytest.raises(ValueError, match="'aircraft' family, but config 'cub-5shot' belongs to 'cub'"):
        export_to_folder(cub_build.store, tmp_path / "c", "cub-5shot", card="aircraft")
    with pytest.raises(ValueError, match="'generic' family, but config 'cub-5shot' belongs to 'cub'"):
        export_to_folder(cub_build.store, tmp_path / "d", "cub-5shot", card="generic")  # a setting keeps its terms
    with pytest.raises(ValueError, match="card must be a dataset family .*'generic' or the path"):
        export_to_folder(cub_build.store, tmp_path / "e", "my-birds", card="birds")
    folder = tmp_path / "mixed"
    shutil.copytree(exported.folder, folder)
    with pytest.raises(ValueError, match="already holds configs of the dataset family 'cub'"):
        export_to_folder(cub_build.store, folder, "my-birds", card="cub-lt")
    with pytest.raises(ValueError, match="already holds configs of the dataset family 'cub'.* for 'generic'"):
        export_to_folder(cub_build.store, folder, "my-birds")


def test_custom_config_name_with_a_family_card(cub_build, tmp_path):
    export_to_folder(cub_build.store, tmp_path, "my-birds", card="cub", cache_dir=tmp_path / "cache")
    ds = datasets.load_dataset(str(tmp_path), "my-birds", cache_dir=str(tmp_path / "load"))
    assert set(ds) == {"train", "synthetic"}
    card = DatasetCard.load(tmp_path / "README.md")
    assert "setting" not in card.data.diffii[0]
    assert card.data.license == "other" and "CUB-200-2011 is not released under an open licence" in card.text


def test_custom_config_name_gets_the_generic_card_claiming_no_licence(cub_build, tmp_path):
    """A config that is not a paper setting is not given CUB's (or any) title and licence."""
    export_to_folder(cub_build.store, tmp_path, "my-birds", repo_id=REPO, cache_dir=tmp_path / "cache")
    card = DatasetCard.load(tmp_path / "README.md")
    assert "license" not in card.data.to_dict() and "source_datasets" not in card.data.to_dict()
    assert card.data.pretty_name == "Image classification with few real images, augmented with Diff-II"
    assert card.data.task_categories == ["image-classification"]
    (record,) = card.data.diffii
    assert record["family"] == "generic" and "setting" not in record
    assert "this card claims no licence" in card.text and "**Source dataset**: not stated" in card.text
    assert "CUB" not in card.text and "Caltech" not in card.text
    assert f'load_dataset("{REPO}", "my-birds")' in card.text and "{{" not in card.text
    # Generic configs accumulate in one folder, and card="generic" names the same template.
    export_to_folder(cub_build.store, tmp_path, "more-birds", card="generic", cache_dir=tmp_path / "cache")
    card = DatasetCard.load(tmp_path / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["more-birds", "my-birds"]
    assert "license" not in card.data.to_dict()


def test_exported_parquet_records_features_every_datasets_version_reads(cub_build, exported, tmp_path):
    """datasets 4+ writes list columns as {"_type": "List"}, which datasets 2.x/3.x refuse; the export does not."""
    files = sorted((exported.folder / "data" / "cub-5shot").glob("*.parquet"))
    assert [f.name.split("-")[0] for f in files] == ["synthetic", "test", "train"]
    for path in files:
        schema = pq.read_schema(path)
        recorded = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert recorded["source_indices"] == {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"}
        assert '"List"' not in schema.metadata[b"huggingface"].decode()
        assert recorded["label"] == {"names": CLASS_NAMES, "_type": "ClassLabel"}
        assert datasets.Features.from_arrow_schema(schema) == diffii_features(CLASS_NAMES)
    loaded = datasets.load_dataset("parquet", data_files={f.name.split("-")[0]: str(f) for f in files},
                                   cache_dir=str(tmp_path / "load"))
    folder = datasets.load_dataset(str(exported.folder), "cub-5shot", cache_dir=str(tmp_path / "load"))
    for split in ("train", "synthetic", "test"):
        assert loaded[split].features == diffii_features(CLASS_NAMES)
        assert raw_rows(loaded[split]) == raw_rows(folder[split]), split


def test_missing_templates_give_a_clear_error(cub_build, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFII_HUB_CARDS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="DIFFII_HUB_CARDS=.* does not hold the card templates"):
        export_to_folder(cub_build.store, tmp_path / "out", "cub-5shot")


def test_a_store_published_under_a_setting_with_other_classes_warns_at_the_callers_line(cub_build, tmp_path):
    expected = (r"config_name 'cub-5shot': the paper's cub-5shot has 200 classes, this store 3; .* \(pass another "
                r"config_name, with card=, if it is not\)")
    with pytest.warns(UserWarning, match=expected) as caught:
        export_to_folder(cub_build.store, tmp_path / "export", "cub-5shot", cache_dir=tmp_path / "cache")
    assert [w.filename for w in caught if "200 classes" in str(w.message)] == [__file__]
