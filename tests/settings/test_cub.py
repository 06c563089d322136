"""CUB200 on a fake CUB_200_2011 folder in the official layout."""

import pickle
import shutil

import pytest
from tests.helpers.fakedata import label_of, write_cub

from diffii_datasets.image_datasets import CUB200
from diffii_datasets.image_datasets import cub as cub_module


def test_splits_labels_and_classes(fake_cub):
    for split in ("train", "test"):
        dataset = CUB200(fake_cub.root, split)
        expected = fake_cub.splits[split]
        assert len(dataset) == len(expected)
        assert dict(zip(dataset.sample_keys, dataset.targets)) == expected
    assert dataset.classes == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross", "Groove billed Ani"]
    assert dataset.class_to_idx == {name: i for i, name in enumerate(dataset.classes)}
    assert len(CUB200(fake_cub.root, "train")) == 12 + 11 + 12 + 3


def test_each_image_carries_its_own_label(fake_cub):
    dataset = CUB200(fake_cub.root, "test")
    for index in range(len(dataset)):
        image, label = dataset[index]
        assert image.mode == "RGB" and image.size == (8, 8)
        assert label_of(image) == label == dataset.targets[index]


def test_transforms_apply_to_image_and_label(fake_cub):
    dataset = CUB200(fake_cub.root, "train", transform=lambda im: im.size, target_transform=lambda t: f"class {t}")
    assert dataset[0] == ((8, 8), f"class {dataset.targets[0]}")


def test_pickles_for_dataloader_workers(fake_cub):
    dataset = CUB200(fake_cub.root, "train")
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.targets == dataset.targets and label_of(clone[3][0]) == dataset.targets[3]


def test_missing_dataset_points_to_download(tmp_path):
    with pytest.raises(RuntimeError, match="download=True"):
        CUB200(tmp_path)


@pytest.mark.parametrize("missing", ["train_test_split.txt", "classes.txt", "images"])
def test_partial_layout_names_the_missing_file(fake_cub, tmp_path, missing):
    shutil.copytree(fake_cub.root / "CUB_200_2011", tmp_path / "CUB_200_2011")
    target = tmp_path / "CUB_200_2011" / missing
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        CUB200(tmp_path)


def test_inconsistent_tables_are_rejected(fake_cub, tmp_path):
    shutil.copytree(fake_cub.root / "CUB_200_2011", tmp_path / "CUB_200_2011")
    labels = tmp_path / "CUB_200_2011" / "image_class_labels.txt"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(ValueError, match="image_class_labels.txt"):
        CUB200(tmp_path)


def test_split_must_be_train_or_test(fake_cub):
    with pytest.raises(ValueError, match="split"):
        CUB200(fake_cub.root, "val")


def test_download_fetches_the_official_archive_once(tmp_path, monkeypatch):
    calls = []

    def fake_download_and_extract_archive(url, download_root, extract_root=None, filename=None, md5=None,
                                          remove_finished=False):
        calls.append((url, filename, md5))
        write_cub(tmp_path, {"001.Black_footed_Albatross": (3, 2), "002.Laysan_Albatross": (2, 2)})

    monkeypatch.setattr(cub_module, "download_and_extract_archive", fake_download_and_extract_archive)
    dataset = CUB200(tmp_path, "train", download=True)
    assert calls == [("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz", "CUB_200_2011.tgz",
                      "97eceeb196236b17998738112f37df78")]
    assert len(dataset) == 5 and dataset.classes == ["Black footed Albatross", "Laysan Albatross"]
    assert len(CUB200(tmp_path, "test", download=True)) == 4
    assert len(calls) == 1, "an extracted dataset must not be downloaded again"
