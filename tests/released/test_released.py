"""The authors' released artifacts through the real download path, against a local stand-in for the Hub."""

from __future__ import annotations

import pytest
import torch

from diffii_datasets.settings import custom_setting, load_setting
from diffii_datasets.released import (
    DamagedArchiveError,
    UnsafeArchiveError,
    fetch_released,
    load_released,
    released_splits,
)
from diffii_datasets.released.lists import read_suffix_lines
from diffii_datasets.released.names import FLOWER_NAMES, match_categories
from tests.helpers.cli import CLASS_NAMES
from tests.released.fakehub import COMMIT, SUFFIX_LINES, image_lists, zip_bytes


def _keys(dataset):
    return list(dataset.sample_keys)


def test_downloads_once_then_reuses_the_cache(serve, release, root, tmp_path):
    files, vectors = release
    hub = serve(files)
    released = load_released("cub-5shot", root, cache_dir=tmp_path / "cache", progress=False)
    assert hub.gets() == {"ft_ti_db.zip": 1, "suffix.zip": 1, "datasets.zip": 1}
    assert released.commit == COMMIT
    assert (tmp_path / "cache" / "released" / COMMIT / "ft_ti_db" / "ft_ti_db/cub/5shot").is_dir()

    # Concepts: renumbered into the dataset's class order, matched by name.
    assert released.concepts.class_names == CLASS_NAMES
    for index, name in enumerate(CLASS_NAMES):
        assert torch.equal(released.concepts.embeddings[index, 0], vectors[name.replace(" ", "_")])
    assert released.concepts.lora_rank == 2
    # Suffixes: every line, without its newline (the last one has none and keeps its last character).
    assert released.suffixes.spec() == [line.strip() for line in SUFFIX_LINES]
    assert released.suffixes.suffixes([], "bird")[-1] == "on a sandy beach at dawn"
    # The lists, on the user's images: all training images (2, 2, 1) and the test images.
    train, metaclass, test = released.splits
    assert metaclass == "bird" and train.classes == CLASS_NAMES
    assert _keys(train) == ["images/001.Black_footed_Albatross/Black_footed_Albatross_0000_0.jpg",
                            "images/001.Black_footed_Albatross/Black_footed_Albatross_0001_0.jpg",
                            "images/002.Laysan_Albatross/Laysan_Albatross_0000_1.jpg",
                            "images/002.Laysan_Albatross/Laysan_Albatross_0001_1.jpg",
                            "images/003.Sooty_Albatross/Sooty_Albatross_0000_2.jpg"]
    assert train.targets == [0, 0, 1, 1, 2] and [train[i][1] for i in range(len(train))] == train.targets
    assert _keys(test) == ["images/001.Black_footed_Albatross/Black_footed_Albatross_0002_0.jpg",
                           "images/002.Laysan_Albatross/Laysan_Albatross_0002_1.jpg",
                           "images/003.Sooty_Albatross/Sooty_Albatross_0001_2.jpg"]

    again = load_released("cub-5shot", root, cache_dir=tmp_path / "cache", progress=False)
    assert hub.gets() == {"ft_ti_db.zip": 1, "suffix.zip": 1, "datasets.zip": 1}  # no second download
    assert again.concepts.identity() == released.concepts.identity()
    # The subset alone needs datasets.zip only, and load_setting gives the same lists.
    splits = load_setting("cub-5shot", root, subset="released", cache_dir=tmp_path / "cache", progress=False)
    assert _keys(splits.train) == _keys(train) and _keys(splits.test) == _keys(test)
    with pytest.raises(ValueError, match="seed does not apply"):
        load_setting("cub-5shot", root, 1, subset="released")


def test_offline_mode_uses_the_cache_and_names_what_is_missing(serve, release, root, tmp_path):
    files, _ = release
    hub = serve(files, offline=True)
    with pytest.raises(OSError) as error:
        fetch_released("cub-5shot", parts=["subsets"], cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "datasets.zip" in message and "Luka-Wang/Diff-II" in message and "HF_HUB_OFFLINE=1" in message
    assert "hf download Luka-Wang/Diff-II datasets.zip --repo-type dataset" in message
    assert hub.requests == []  # not a single request

    hub = serve(files)  # online: fetch once
    released_splits("cub-5shot", root, cache_dir=tmp_path / "cache", progress=False)
    hub = serve(files, offline=True)
    splits = released_splits("cub-5shot", root, cache_dir=tmp_path / "cache", progress=False)
    assert len(splits.train) == 5 and hub.requests == []


def test_a_damaged_archive_is_named_and_a_new_download_repairs_it(serve, release, root, tmp_path):
    files, _ = release
    good = files["datasets.zip"]
    serve({**files, "datasets.zip": good[: len(good) // 2]})  # the repository serves a broken zip
    with pytest.raises(DamagedArchiveError) as error:
        released_splits("cub-5shot", root, cache_dir=tmp_path / "served", progress=False)
    assert "datasets.zip is not a readable zip archive" in str(error.value)
    assert "force_download=True" in str(error.value)
    assert not (tmp_path / "served" / "released" / COMMIT / "datasets").exists()

    # A copy damaged in the Hub cache (same commit, same ETag) is repaired by downloading it again.
    hub = serve(files, hub_cache="another-hub-cache")
    archives = fetch_released("cub-5shot", parts=["subsets"], cache_dir=tmp_path / "cache", progress=False).archives
    archives["datasets.zip"].resolve().write_bytes(good[:-40])  # the blob the snapshot links to
    with pytest.raises(DamagedArchiveError, match="datasets.zip is not a readable zip archive"):
        released_splits("cub-5shot", root, cache_dir=tmp_path / "other-cache", progress=False)
    splits = released_splits("cub-5shot", root, cache_dir=tmp_path / "other-cache", progress=False,
                             force_download=True)
    assert len(splits.train) == 5 and hub.gets()["datasets.zip"] == 2


def test_an_archive_with_a_path_out_of_its_folder_is_refused(serve, release, tmp_path):
    files, _ = release
    evil = zip_bytes({"suffix/cub/5shot.txt": b"on a branch\n", "../../outside.txt": b"owned"})
    serve({**files, "suffix.zip": evil})
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./\.\./outside\.txt' would leave the target directory"):
        fetch_released("cub-5shot", parts=["suffixes"], cache_dir=tmp_path / "cache", progress=False)
    assert not any(path.name == "outside.txt" for path in tmp_path.rglob("*"))


def test_a_setting_missing_from_the_archives_lists_what_they_hold(serve, release, tmp_path):
    files, _ = release
    serve(files)
    with pytest.raises(FileNotFoundError) as error:
        fetch_released("pet-5shot", cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "ft_ti_db.zip (" in message and "has no concept token embeddings for pet-5shot" in message
    assert ("expected ft_ti_db/pet/5shot/learned_embeds-steps-35000.bin (the path Diff-II's scripts read) or "
            "ft_ti_db/pet/5shot/learned_embeds-steps-last.bin") in message
    assert ("It holds 2 files: ft_ti_db/cub/5shot/learned_embeds-steps-35000.bin, "
            "ft_ti_db/cub/5shot/pytorch_lora_weights.safetensors") in message
    with pytest.raises(ValueError, match="paper's settings only"):
        fetch_released(custom_setting("cub", 7), cache_dir=tmp_path / "cache")


def test_a_class_name_that_matches_no_class_is_listed(serve, release, root, tmp_path):
    files, _ = release
    lists = image_lists(extra_train=("Shoebill", "Shoebill_0001.jpg"))
    serve({**files, "datasets.zip": zip_bytes(lists)})
    with pytest.raises(ValueError) as error:
        released_splits("cub-5shot", root, cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "datasets.zip:datasets/cub/5shot/train.txt" in message and "['Shoebill']" in message
    assert "'Black footed Albatross'" in message  # the dataset's names, for comparison


def test_a_listed_image_missing_from_the_root_is_named(serve, release, root, tmp_path):
    files, _ = release
    lists = image_lists(extra_train=("Laysan_Albatross", "Laysan_Albatross_0042_1.jpg"))
    serve({**files, "datasets.zip": zip_bytes(lists)})
    with pytest.raises(FileNotFoundError) as error:
        released_splits("cub-5shot", root, cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "1 of the 6 images listed in datasets.zip:datasets/cub/5shot/train.txt" in message
    assert "datasets/cub/5shot/train/Laysan_Albatross/Laysan_Albatross_0042_1.jpg" in message
    assert str(root) in message


def test_an_unknown_revision_or_a_missing_archive_is_reported(serve, release, tmp_path):
    files, _ = release
    serve({name: data for name, data in files.items() if name != "suffix.zip"})
    with pytest.raises(ValueError, match="revision 'v9' does not exist"):
        fetch_released("cub-5shot", parts=["suffixes"], revision="v9", cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(FileNotFoundError, match="dataset repository Luka-Wang/Diff-II has no suffix.zip"):
        fetch_released("cub-5shot", parts=["suffixes"], cache_dir=tmp_path / "cache", progress=False)


def test_names_match_the_way_the_authors_scripts_do():
    from torchvision.datasets import Flowers102

    # Flowers: by position in the authors' hard-coded list; torchvision calls class 59 'pink-yellow dahlia?'.
    matched = match_categories(list(FLOWER_NAMES), Flowers102.classes, "flower-lt", "train.txt")
    assert matched["pink-yellow_dahlia"] == 59 == Flowers102.classes.index("pink-yellow dahlia?")
    assert matched == {name: index for index, name in enumerate(FLOWER_NAMES)}
    # The others: by name, '/' and '_' read as spaces, case ignored.
    aircraft = match_categories(["F-16A_B", "F_A-18"], ["F/A-18", "F-16A/B"], "aircraft", "x")
    assert aircraft == {"F-16A_B": 1, "F_A-18": 0}
    cars = ["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012"]
    assert match_categories(["ram_c_v_cargo_van_minivan_2012", "am_general_hummer_suv_2000"], cars, "cars",
                            "x") == {"ram_c_v_cargo_van_minivan_2012": 1, "am_general_hummer_suv_2000": 0}
    with pytest.raises(ValueError, match=r"lists no image of 1 class\(es\) of the dataset: \['Ram C/V"):
        match_categories(["am_general_hummer_suv_2000"], cars, "cars", "x")


def test_suffix_lines_are_read_as_the_authors_read_them(tmp_path, caplog):
    path = tmp_path / "5shot.txt"
    path.write_bytes(b"perched on a branch.\r\n\r\n  flying over water\nA photo of a bird in the snow")
    assert read_suffix_lines(path, "bird") == ["perched on a branch.", "  flying over water",
                                               "A photo of a bird in the snow"]
    assert "1 of 3 suffixes start with 'a photo of a bird'" in caplog.text


def test_the_classifier_protocol_takes_the_released_lists(serve, release, root, tmp_path, monkeypatch):
    from diffii_datasets.classify.protocol import _real_subset, load_test_split

    monkeypatch.setenv("DIFFII_DATASETS_CACHE", str(tmp_path / "cache"))
    serve(release[0])
    test, _ = load_test_split("cub-5shot", root, subset="released")
    assert _keys(test)[0] == "images/001.Black_footed_Albatross/Black_footed_Albatross_0002_0.jpg" and len(test) == 3
    train = _real_subset("cub-5shot", root, 0, "exponential", False, "released", None)
    assert len(train) == 5 and (tmp_path / "cache" / "released" / COMMIT / "datasets").is_dir()
