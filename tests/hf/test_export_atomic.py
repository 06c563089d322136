"""An export is written beside its folder and swapped in at the end: a killed export leaves the old folder whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from diffii_datasets.hf import export_to_folder, folder_swap, preview_push
from diffii_datasets.hf import hub as hub_module
from tests.classify.fixtures import write_store

CLASSES = ["red circle", "blue square"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.fixture
def store(tmp_path):
    return write_store(tmp_path / "store", [2, 1], classes=CLASSES)


@pytest.fixture
def exported(store, tmp_path):
    folder = tmp_path / "export"
    export_to_folder(store, folder, "shapes", cache_dir=tmp_path / "cache")
    return folder


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.parent.glob(f".{folder.name}.*"))


def test_an_export_killed_midway_leaves_the_old_folder_as_it_was(store, exported, tmp_path, monkeypatch):
    before = files_of(exported)
    written = []

    def killed_after_one_file(dataset, path):
        if written:
            raise KeyboardInterrupt  # as a Ctrl-C (or any end) in the middle of the second shard
        written.append(path)
        original(dataset, path)

    original = hub_module._write_parquet
    monkeypatch.setattr(hub_module, "_write_parquet", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        export_to_folder(store, exported, "more-shapes", cache_dir=tmp_path / "cache")
    assert written and files_of(exported) == before and _leftovers(exported) == []
    monkeypatch.setattr(hub_module, "_write_parquet", original)
    export_to_folder(store, exported, "more-shapes", cache_dir=tmp_path / "cache")  # then a whole one
    after = files_of(exported)
    assert {name: data for name, data in after.items() if "data/shapes/" in name} == \
        {name: data for name, data in before.items() if "data/shapes/" in name}  # the other config untouched
    for config in ("shapes", "more-shapes"):
        loaded = datasets.load_dataset(str(exported), config, cache_dir=str(tmp_path / "load"))
        assert {split: len(rows) for split, rows in loaded.items()} == {"train": 3, "synthetic": 4}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_what_a_killed_export_left_beside_the_folder_is_cleared_or_put_back(store, exported, tmp_path):
    dead, alive = _dead_pid(), os.getppid()  # a process that runs: this one's parent
    for kind, pid in (("export", dead), ("export", alive)):
        leftover = exported.with_name(f".{exported.name}.{kind}-{pid}")
        (leftover / "data").mkdir(parents=True)
        (leftover / "README.md").write_text("---\nconfigs: [half wr")  # a half-written card
    export_to_folder(store, exported, "shapes", cache_dir=tmp_path / "cache")
    assert _leftovers(exported) == [f".export.export-{alive}"]  # a live export's folder is not touched
    (exported.parent / f".export.export-{alive}").rename(exported.parent / "kept")

    # Killed between the two renames of a system without an atomic exchange: the old folder is set aside.
    before = files_of(exported)
    exported.rename(exported.with_name(f".{exported.name}.old-{dead}"))
    export_to_folder(store, exported, "more-shapes", cache_dir=tmp_path / "cache")
    assert {name: data for name, data in files_of(exported).items() if "data/shapes/" in name} == \
        {name: data for name, data in before.items() if "data/shapes/" in name}
    assert _leftovers(exported) == []


def test_the_swap_without_an_atomic_exchange_also_ends_whole(store, exported, tmp_path, monkeypatch):
    monkeypatch.setattr(folder_swap, "_exchange", lambda first, second: False)
    export_to_folder(store, exported, "more-shapes", cache_dir=tmp_path / "cache")
    assert sorted(name for name in files_of(exported) if name.endswith(".parquet")) == [
        "data/more-shapes/synthetic-00000-of-00001.parquet", "data/more-shapes/train-00000-of-00001.parquet",
        "data/shapes/synthetic-00000-of-00001.parquet", "data/shapes/train-00000-of-00001.parquet"]
    assert _leftovers(exported) == []


def test_an_export_into_the_current_directory_is_refused(store, exported, monkeypatch):
    monkeypatch.chdir(exported)
    with pytest.raises(ValueError, match="holds the current directory: an export replaces the whole folder"):
        export_to_folder(store, ".", "shapes")


def test_preview_push_writes_what_a_push_uploads_without_a_network(store, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    monkeypatch.setattr(HfApi, "hf_hub_download", lambda *args, **kwargs: pytest.fail("the network was used"))
    files = preview_push(store, "someone/shapes", "shapes", tmp_path / "preview", cache_dir=tmp_path / "cache")
    exported = tmp_path / "exported"
    export_to_folder(store, exported, "shapes", repo_id="someone/shapes", cache_dir=tmp_path / "cache")
    assert sorted(path.relative_to(tmp_path / "preview").as_posix() for path in files) == sorted(files_of(exported))
    assert (tmp_path / "preview" / "README.md").read_text() == (exported / "README.md").read_text()
    with pytest.raises(ValueError, match="must be new or empty"):
        preview_push(store, "someone/shapes", "shapes", tmp_path / "preview")
