"""The authors' released files from a local copy (``released_from``: no network), and a Hub that cannot be reached
failing at once in one line."""

from __future__ import annotations

import logging
import time
import zipfile
from pathlib import PurePosixPath

import pytest
import torch

from diffii_datasets.released import fetch_released, fetch_waterbirds_lists, load_released
from diffii_datasets.released.layout import WATERBIRDS_LISTS
from diffii_datasets.released.locating import describe_files
from diffii_datasets.settings import load_setting
from tests.helpers.cli import CLASS_NAMES
from tests.released.fakehub import SUFFIX_LINES, hub_at, unreachable_url, unzipped, write_tree, zip_bytes

EMBEDS = "ft_ti_db/cub/5shot/learned_embeds-steps-35000.bin"
LAST = "ft_ti_db/cub/5shot/learned_embeds-steps-last.bin"


def _keys(dataset):
    return list(dataset.sample_keys)


def _check(released, vectors):
    """What the fake release holds, read onto the fake CUB (as the Hub test reads it)."""
    assert released.concepts.class_names == CLASS_NAMES and released.concepts.lora_rank == 2
    for index, name in enumerate(CLASS_NAMES):
        assert torch.equal(released.concepts.embeddings[index, 0], vectors[name.replace(" ", "_")])
    assert released.suffixes.spec() == [line.strip() for line in SUFFIX_LINES]
    assert len(released.splits.train) == 5 and len(released.splits.test) == 3


def _unzip_all(files, folder):
    """``folder`` as the authors' scripts/download.sh leaves it: the three zips and what they unzip to."""
    for name, data in files.items():
        write_tree(folder, unzipped(data))
        (folder / name).write_bytes(data)
    return folder


def _windows_zip(members):
    """A zip as Windows tools write it: ``\\`` separators and a directory entry for every folder."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        folders = {str(parent) for name in members for parent in PurePosixPath(name).parents if str(parent) != "."}
        for folder in sorted(folders):
            archive.writestr(zipfile.ZipInfo(folder.replace("/", "\\") + "\\"), b"")
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name.replace("/", "\\")), data)
    return buffer.getvalue()


def test_the_folder_download_sh_leaves_reads_like_the_hub_without_the_network(serve, release, root, tmp_path):
    files, vectors = release
    hub = serve(files)
    copy = _unzip_all(files, tmp_path / "Diff-II")
    cache = tmp_path / "cache"
    local = load_released("cub-5shot", root, cache_dir=cache, progress=False, released_from=copy)
    assert hub.requests == []
    _check(local, vectors)
    # The unzipped files are read where they lie: no zip is extracted.
    assert local.files.sources["embeddings"] == str(copy / EMBEDS) and local.files.files["embeddings"] == copy / EMBEDS
    assert local.files.archives == {name: copy for name in files}
    assert not (cache / "released").exists()
    assert local.commit.startswith("local:") and local.files.released_from == copy
    assert local.origin == f"the local copy {copy} ({local.commit})"

    # The same result as from the Hub.
    from_hub = load_released("cub-5shot", root, cache_dir=cache, progress=False)
    assert from_hub.concepts.identity() == local.concepts.identity()
    assert from_hub.suffixes.spec() == local.suffixes.spec()
    assert _keys(from_hub.splits.train) == _keys(local.splits.train)
    assert _keys(from_hub.splits.test) == _keys(local.splits.test)
    # load_setting passes it through; the lists alone are a digest of fewer files.
    requests = len(hub.requests)
    splits = load_setting("cub-5shot", root, subset="released", cache_dir=cache, progress=False, released_from=copy)
    assert _keys(splits.train) == _keys(local.splits.train) and len(hub.requests) == requests

    # Another copy with the same files has the same commit; a changed file gives another one.
    moved = _unzip_all(files, tmp_path / "elsewhere")
    assert fetch_released("cub-5shot", released_from=moved, progress=False).commit == local.commit
    (moved / "suffix/cub/5shot.txt").write_text("in the rain\n")
    assert fetch_released("cub-5shot", released_from=moved, progress=False).commit != local.commit


def _renamed(members, name_of):
    return {name_of(name): data for name, data in members.items()}


ZIP_COPIES = {
    "as released": lambda archive, members: zip_bytes(members),
    "a wrapper folder": lambda archive, members: zip_bytes(_renamed(members, lambda name: f"Diff-II-v1/{name}")),
    "made inside its folder": lambda archive, members: zip_bytes(_renamed(members, lambda name: name.split("/", 1)[1])),
    "backslash entries": lambda archive, members: _windows_zip(members),
    "Diff-Mix's last embeddings": lambda archive, members: zip_bytes({LAST if name == EMBEDS else name: data
                                                                      for name, data in members.items()}),
}


@pytest.mark.parametrize("packing", list(ZIP_COPIES))
@pytest.mark.parametrize("given", ["folder", "one zip"])
def test_a_folder_of_the_three_zips_in_their_many_packings(release, root, tmp_path, packing, given):
    files, vectors = release
    reference = fetch_released("cub-5shot", released_from=_unzip_all(files, tmp_path / "unzipped"), progress=False)
    folder = tmp_path / "zips"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(ZIP_COPIES[packing](name, unzipped(data)))
    released_from = folder if given == "folder" else folder / "suffix.zip"
    cache = tmp_path / "cache"
    local = load_released("cub-5shot", root, cache_dir=cache, progress=False, released_from=released_from)
    _check(local, vectors)
    assert local.files.archives == {name: folder / name for name in files}
    assert local.files.sources["embeddings"].startswith(f"{folder / 'ft_ti_db.zip'}:")
    assert local.files.files["embeddings"].name == PurePosixPath(LAST if "last" in packing else EMBEDS).name
    assert local.files.files["embeddings"].is_relative_to(cache / "released" / "local")
    assert local.commit == reference.commit  # a digest of the files used, however they were packed


@pytest.mark.parametrize("packing", ["a wrapper folder", "backslash entries", "Diff-Mix's last embeddings"])
def test_the_hub_archives_in_other_packings_are_read_too(serve, release, tmp_path, packing):
    files, _ = release
    serve({name: ZIP_COPIES[packing](name, unzipped(data)) for name, data in files.items()})
    found = fetch_released("cub-5shot", cache_dir=tmp_path / "cache", progress=False)
    expected = fetch_released("cub-5shot", released_from=_unzip_all(files, tmp_path / "unzipped"), progress=False)
    assert {role: path.read_bytes() for role, path in found.files.items()} == {
        role: path.read_bytes() for role, path in expected.files.items()}
    assert found.sources["embeddings"].startswith("ft_ti_db.zip:") and found.sources["embeddings"].endswith(
        PurePosixPath(LAST if "last" in packing else EMBEDS).name)


def test_unzipped_archives_each_inside_a_wrapper_folder(release, tmp_path):
    files, _ = release
    copy = tmp_path / "copy"
    for name, data in files.items():  # e.g. `unzip ft_ti_db.zip -d ft_ti_db-release`
        write_tree(copy / f"{name[:-4]}-release", unzipped(data))
    found = fetch_released("cub-5shot", released_from=copy, progress=False)
    assert found.files["embeddings"] == copy / "ft_ti_db-release" / EMBEDS
    assert found.files["suffixes"] == copy / "suffix-release/suffix/cub/5shot.txt"
    assert found.files["test_list"] == copy / "datasets-release/datasets/cub/test.txt"


def test_the_scripts_embeddings_win_over_diff_mix_last_and_a_tie_is_an_error(release, tmp_path):
    files, _ = release
    copy = write_tree(tmp_path / "copy", unzipped(files["ft_ti_db.zip"]))
    (copy / LAST).write_bytes(b"not read")
    assert fetch_released("cub-5shot", parts=["concepts"], released_from=copy).files["embeddings"] == copy / EMBEDS
    twice = tmp_path / "twice"
    write_tree(twice / "a", unzipped(files["ft_ti_db.zip"]))
    write_tree(twice / "b", unzipped(files["ft_ti_db.zip"]))
    with pytest.raises(ValueError, match="2 files that could each be ft_ti_db/cub/5shot/learned_embeds") as error:
        fetch_released("cub-5shot", parts=["concepts"], released_from=twice)
    assert str(twice / "a" / EMBEDS) in str(error.value) and str(twice / "b" / EMBEDS) in str(error.value)


def test_a_missing_file_lists_the_files_present_at_every_depth(release, tmp_path):
    files, _ = release
    copy = _unzip_all(files, tmp_path / "copy")
    (copy / "ft_ti_db.zip").unlink()
    (copy / EMBEDS).unlink()
    deep = copy / "ft_ti_db/cub/5shot/checkpoints/run-1/learned_embeds-steps-5000.bin"
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b"an intermediate checkpoint")
    with pytest.raises(FileNotFoundError) as error:
        fetch_released("cub-5shot", released_from=copy, progress=False)
    message = str(error.value)
    assert f"{copy} (released_from) has no concept token embeddings for cub-5shot: expected {EMBEDS}" in message
    assert "nor does it hold ft_ti_db.zip to extract it from" in message
    for present in ("ft_ti_db/cub/5shot/checkpoints/run-1/learned_embeds-steps-5000.bin",
                    "ft_ti_db/cub/5shot/pytorch_lora_weights.safetensors", "suffix/cub/5shot.txt",
                    "datasets/cub/5shot/train/Sooty_Albatross/Sooty_Albatross_0000_2.jpg", "datasets.zip"):
        assert present in message

    # In a zip: a wrapper deeper than the search is listed too.
    zips = tmp_path / "zips"
    zips.mkdir()
    (zips / "ft_ti_db.zip").write_bytes(zip_bytes({f"a/b/c/{EMBEDS}": b"x", "a/b/c/readme.txt": b"y"}))
    with pytest.raises(FileNotFoundError) as error:
        fetch_released("cub-5shot", parts=["concepts"], cache_dir=tmp_path / "cache", released_from=zips)
    message = str(error.value)
    assert f"{zips / 'ft_ti_db.zip'} has no concept token embeddings for cub-5shot" in message
    assert f"It holds 2 files: a/b/c/{EMBEDS}, a/b/c/readme.txt" in message


def test_listings_show_a_folder_of_many_files_as_one_entry_and_the_nearest_first():
    names = [f"datasets/cub/5shot/train/Albatross/{i}.jpg" for i in range(7)] + ["datasets/cub/test.txt"]
    assert describe_files(names) == ("It holds 8 files: datasets/cub/5shot/train/Albatross/ (7 files, e.g. 0.jpg), "
                                     "datasets/cub/test.txt")
    many = [f"datasets/{family}/test.txt" for family in ("aircraft", "car", "cub", "flower", "pet")]
    assert describe_files(many, ["datasets/cub/test_imb.txt"], limit=1) == (
        "It holds 5 files: datasets/cub/test.txt, and 4 more entries")
    assert describe_files([]) == "It holds no file."


def test_waterbirds_lists_from_a_local_copy(tmp_path):
    copy = write_tree(tmp_path / "copy", {path: f"{path} 0\n".encode() for path in WATERBIRDS_LISTS})
    lists = fetch_waterbirds_lists(released_from=copy)
    assert lists.files == tuple(copy / path for path in WATERBIRDS_LISTS)
    assert lists.sources == tuple(str(copy / path) for path in WATERBIRDS_LISTS)
    assert lists.commit.startswith("local:") and lists.origin == f"the local copy {copy} ({lists.commit})"
    (copy / WATERBIRDS_LISTS[3]).write_text("changed 1\n")
    assert fetch_waterbirds_lists(released_from=copy).commit != lists.commit
    (copy / WATERBIRDS_LISTS[0]).unlink()
    with pytest.raises(FileNotFoundError, match="Waterbirds test list of group 0"):
        fetch_waterbirds_lists(released_from=copy)


def test_released_from_is_checked(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="revision applies to the download from the Hub.*drop revision"):
        fetch_released("cub-5shot", revision="main", released_from=tmp_path)
    with pytest.raises(ValueError, match="drop force_download"):
        fetch_released("cub-5shot", force_download=True, released_from=tmp_path)
    with pytest.raises(TypeError, match="released_from"):
        fetch_released("cub-5shot", released_from=3)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        fetch_released("cub-5shot", released_from=tmp_path / "absent")
    with pytest.raises(ValueError, match="got another file"):
        fetch_released("cub-5shot", released_from=tmp_path / "notes.txt")


@pytest.fixture
def sleeps(monkeypatch):
    """The waits between retries (``time.sleep`` recorded, not slept): hf_hub_download alone, with the Hub out of
    reach and no cached copy, retries five times, waiting 1, 2, 4, 8 and 8 s."""
    waits = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def test_a_hub_that_cannot_be_reached_fails_at_once_in_one_line(monkeypatch, tmp_path, sleeps):
    url = unreachable_url()
    hub_at(monkeypatch, url, tmp_path / "hub-cache")
    with pytest.raises(OSError) as error:
        fetch_released("cub-5shot", parts=["suffixes"], cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "\n" not in message and "Connection refused" in message
    assert f"could not get suffix.zip of the Hugging Face dataset repository Luka-Wang/Diff-II from {url}" in message
    assert "hf download Luka-Wang/Diff-II suffix.zip --repo-type dataset" in message and "HF_HUB_OFFLINE=1" in message
    assert sleeps == []


def test_a_hub_answering_503_fails_at_once_and_a_cached_copy_is_used(
        serve, release, tmp_path, caplog, monkeypatch, sleeps):
    files, _ = release
    down = serve(files, status=503)
    with pytest.raises(OSError, match="503") as error:
        fetch_released("cub-5shot", parts=["suffixes"], cache_dir=tmp_path / "cache", progress=False)
    assert "\n" not in str(error.value) and len(down.requests) == 1 and sleeps == []

    serve(files, hub_cache="hub-cache-2")  # fetched once while the Hub is up...
    fetched = fetch_released("cub-5shot", parts=["suffixes"], cache_dir=tmp_path / "cache", progress=False)
    hub_at(monkeypatch, unreachable_url(), tmp_path / "hub-cache-2")  # ...then read from the cache while it is not
    with caplog.at_level(logging.WARNING):
        again = fetch_released("cub-5shot", parts=["suffixes"], cache_dir=tmp_path / "cache", progress=False)
    assert again.files == fetched.files and again.commit == fetched.commit and sleeps == []
    assert "could not reach the Hugging Face Hub" in caplog.text
