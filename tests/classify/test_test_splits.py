"""Which test set a setting is scored on: the words ``train`` prints, and the authors' Waterbirds group lists."""

import logging
from types import SimpleNamespace

import pytest

from diffii_datasets.classify import Waterbirds
from diffii_datasets.classify.waterbirds import GROUP_NAMES
from diffii_datasets.classify.protocol import describe_test_split, load_test_split
from diffii_datasets.released import fetch
from tests.classify.fixtures import write_waterbirds

FOLDERS = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross", 3: "003.Sooty_Albatross"}


def test_the_long_tail_default_is_the_official_split_not_the_authors_list():
    assert describe_test_split("cub-lt-if100") == \
        "CUB-200-2011 test, not the authors' datasets/cub/test_imb.txt (--released tests on their list)"
    assert describe_test_split("cub-lt-if100", "released") == "the authors' list datasets/cub/test_imb.txt"
    assert describe_test_split("flower-lt-if10").endswith("not the authors' datasets/flower/test_imb.txt "
                                                          "(--released tests on their list)")
    assert describe_test_split("pet-5shot") == \
        "Oxford-IIIT Pet test (--released tests on the authors' list datasets/pet/test.txt)"
    assert "metadata.csv split 2" in describe_test_split("waterbirds")
    assert "test00.txt ... test11.txt, one per group" in describe_test_split("waterbirds", "released")
    assert "drawn on the spot" in describe_test_split("sample")


@pytest.fixture
def waterbirds(tmp_path):
    """12 test images (every class in every group) and 3 training ones; the rows' indices name the files."""
    rows = [(c, 0, 0, 0) for c in (1, 2, 3)]
    rows += [(c, 2, y, place) for c in (1, 2, 3) for y in (0, 1) for place in (0, 1)]
    write_waterbirds(tmp_path, rows)
    return tmp_path, rows


def write_lists(folder, entries):
    """The four group lists; ``entries[g]``: row indices listed in group ``g``, written as the authors' paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for group, indices in enumerate(entries):
        path = folder / f"test{group // 2}{group % 2}.txt"
        path.write_text("".join(f"datasets/waterbird/test{group // 2}{group % 2}/{FOLDERS[number]}/{index:04d}.jpg "
                                f"{number - 1}\n" for index, number in indices))
        paths.append(path)
    return paths


def test_the_authors_group_lists_give_the_groups(waterbirds, tmp_path, caplog):
    root, rows = waterbirds
    by_group = [[(i, c) for i, (c, split, y, place) in enumerate(rows) if split == 2 and 2 * y + place == g]
                for g in range(4)]
    lists = write_lists(tmp_path / "lists", [by_group[0][:2], by_group[1], by_group[2], by_group[3][1:]])
    listed = Waterbirds.from_lists(root, lists)
    assert len(listed) == 2 + 3 + 3 + 2 and listed.groups == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert listed.classes == Waterbirds(root, "test").classes and listed.group_names == list(GROUP_NAMES)
    assert listed.targets == [c - 1 for g in ([by_group[0][:2], by_group[1], by_group[2], by_group[3][1:]])
                              for _, c in g]
    image, label = listed[0]
    assert image.size == (16, 16) and label == listed.targets[0]

    moved = write_lists(tmp_path / "moved", [by_group[0] + by_group[1][:1], by_group[1][1:], by_group[2], by_group[3]])
    with caplog.at_level(logging.WARNING):
        regrouped = Waterbirds.from_lists(root, moved)
    assert regrouped.groups.count(0) == 4 and "1 of the 12 images" in caplog.text  # the list's group counts

    missing = write_lists(tmp_path / "missing", [by_group[0], by_group[1], by_group[2], [(99, 1)]])
    with pytest.raises(ValueError, match=r"test11\.txt, line 1: datasets/waterbird/test11/001\.Black_footed_Albatross/"
                                         r"0099\.jpg is not an image of .*metadata\.csv"):
        Waterbirds.from_lists(root, missing, sources=["a", "b", "c", "datasets.zip:datasets/waterbird/test11.txt"])
    with pytest.raises(ValueError, match="lists must be the 4 group lists"):
        Waterbirds.from_lists(root, lists[:3])


def test_released_waterbirds_tests_on_the_authors_lists(waterbirds, tmp_path, monkeypatch):
    root, rows = waterbirds
    lists = write_lists(tmp_path / "lists", [[(i, c)] for i, (c, split, y, place) in enumerate(rows)
                                             if split == 2 and c == 2])
    fetched = SimpleNamespace(files=tuple(lists), sources=tuple(f"datasets.zip:{p.name}" for p in lists), commit="c")
    monkeypatch.setattr(fetch, "fetch_waterbirds_lists", lambda **kwargs: fetched)
    test, validation = load_test_split("waterbirds", root, subset="released")
    assert validation is None and len(test) == 4 and test.groups == [0, 1, 2, 3] and set(test.targets) == {1}
    assert len(load_test_split("waterbirds", root)[0]) == 12  # the test split
