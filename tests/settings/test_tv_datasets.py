"""The torchvision adapters on fake data in the official layouts (.mat files through scipy)."""

import pickle
import shutil

import pytest
import torchvision.datasets as tvd
from tests.helpers.fakedata import label_of

from diffii_datasets.image_datasets import FGVCAircraft, Flowers102, OxfordIIITPet, StanfordCars

FLOWERS_SPLITS = ("train", "val", "test")


def check_items(dataset, expected):
    """Lengths, key -> label, targets and image content agree with what was written."""
    assert len(dataset) == len(dataset.targets) == len(expected)
    assert dict(zip(dataset.sample_keys, dataset.targets)) == expected
    assert dataset.class_to_idx == {name: i for i, name in enumerate(dataset.classes)}
    for index in range(0, len(dataset), 3):
        image, label = dataset[index]
        assert image.size == (8, 8)
        assert label == dataset.targets[index] == label_of(image)


@pytest.mark.parametrize("split", ["train", "val", "trainval", "test"])
def test_aircraft_variant_level(fake_aircraft, split):
    dataset = FGVCAircraft(fake_aircraft.root, split)
    assert isinstance(dataset, tvd.FGVCAircraft)
    assert dataset.classes == fake_aircraft.classes
    check_items(dataset, fake_aircraft.splits[split])


def test_aircraft_defaults_to_trainval(fake_aircraft):
    assert FGVCAircraft(fake_aircraft.root).sample_keys == FGVCAircraft(fake_aircraft.root, "trainval").sample_keys


@pytest.mark.parametrize("split", ["train", "test"])
def test_cars(fake_cars, split):
    dataset = StanfordCars(fake_cars.root, split)
    assert isinstance(dataset, tvd.StanfordCars)
    assert dataset.classes == fake_cars.classes
    check_items(dataset, fake_cars.splits[split])


@pytest.mark.parametrize("split", ["trainval", "test"])
def test_pet(fake_pet, split):
    dataset = OxfordIIITPet(fake_pet.root, split)
    assert isinstance(dataset, tvd.OxfordIIITPet)
    assert dataset.classes == fake_pet.classes
    check_items(dataset, fake_pet.splits[split])


@pytest.mark.parametrize("split", FLOWERS_SPLITS)
def test_flowers(fake_flowers, split):
    dataset = Flowers102(fake_flowers.root, split)
    assert isinstance(dataset, tvd.Flowers102)
    assert len(dataset.classes) == 102 and dataset.classes[0] == "pink primrose"
    check_items(dataset, fake_flowers.splits[split])


def test_flowers_keeps_torchvisions_checksum_check(_flowers_on_disk):
    # Without the test-only relaxation the fake .mat files fail torchvision's MD5 check.
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        Flowers102(_flowers_on_disk.root, "train")


def test_transforms_and_pickling(fake_cars, fake_pet, fake_aircraft, fake_flowers):
    for cls, root, split in ((StanfordCars, fake_cars.root, "train"), (OxfordIIITPet, fake_pet.root, "trainval"),
                             (FGVCAircraft, fake_aircraft.root, "test"), (Flowers102, fake_flowers.root, "val")):
        dataset = cls(root, split, transform=lambda im: im.size, target_transform=lambda t: -t - 1)
        assert dataset[1] == ((8, 8), -dataset.targets[1] - 1)
        clone = pickle.loads(pickle.dumps(cls(root, split)))
        assert clone.sample_keys == dataset.sample_keys and clone.targets == dataset.targets


@pytest.mark.parametrize("cls", [FGVCAircraft, OxfordIIITPet, Flowers102])
def test_missing_dataset_points_to_download(cls, tmp_path):
    with pytest.raises(RuntimeError, match="download=True"):
        cls(tmp_path)


def test_missing_cars_explains_the_manual_route(tmp_path):
    with pytest.raises(RuntimeError, match="kaggle"):
        StanfordCars(tmp_path)
    with pytest.raises(ValueError, match="7545"):
        StanfordCars(tmp_path, download=True)


@pytest.mark.parametrize(
    ("fixture", "cls", "folder", "missing", "split"),
    [
        ("fake_aircraft", FGVCAircraft, "fgvc-aircraft-2013b", "data/images_variant_test.txt", "test"),
        ("fake_aircraft", FGVCAircraft, "fgvc-aircraft-2013b", "data/variants.txt", "trainval"),
        ("fake_cars", StanfordCars, "stanford_cars", "devkit/cars_meta.mat", "train"),
        ("fake_cars", StanfordCars, "stanford_cars", "cars_test_annos_withlabels.mat", "test"),
        ("fake_pet", OxfordIIITPet, "oxford-iiit-pet", "annotations/trainval.txt", "trainval"),
        ("fake_flowers", Flowers102, "flowers-102", "setid.mat", "train"),
        ("fake_flowers", Flowers102, "flowers-102", "jpg", "val"),
    ],
)
def test_partial_layout_names_the_missing_file(request, tmp_path, fixture, cls, folder, missing, split):
    source = request.getfixturevalue(fixture).root / folder
    shutil.copytree(source, tmp_path / folder)
    target = tmp_path / folder / missing
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        cls(tmp_path, split)


@pytest.mark.parametrize(("cls", "split"), [(FGVCAircraft, "all"), (StanfordCars, "val"), (OxfordIIITPet, "train"),
                                            (Flowers102, "trainval")])
def test_split_outside_the_allowed_set(cls, split, tmp_path):
    with pytest.raises(ValueError, match="split"):
        cls(tmp_path, split)


@pytest.mark.parametrize(("fixture", "cls", "split"), [("fake_cars", StanfordCars, "train"),
                                                       ("fake_pet", OxfordIIITPet, "test"),
                                                       ("fake_aircraft", FGVCAircraft, "val"),
                                                       ("fake_flowers", Flowers102, "test")])
def test_root_with_a_tilde_is_expanded(request, monkeypatch, fixture, cls, split):
    """StanfordCars("~/data") used to reach torchvision unexpanded and fail with a bare "Dataset not found"."""
    root = request.getfixturevalue(fixture).root
    monkeypatch.setenv("HOME", str(root.parent))
    dataset = cls(f"~/{root.name}", split)
    assert dataset.sample_keys == cls(root, split).sample_keys and len(dataset) > 0
    image, label = dataset[0]
    assert label == dataset.targets[0] == label_of(image)


def copy_pet(fake_pet, tmp_path):
    shutil.copytree(fake_pet.root / "oxford-iiit-pet", tmp_path / "oxford-iiit-pet")
    return tmp_path / "oxford-iiit-pet"


def drop_lines(path, prefix):
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.startswith(prefix)))


def test_pet_split_missing_a_breed_is_refused_naming_it(fake_pet, tmp_path):
    """A partial download whose trainval list lacks a breed used to load 2 classes and fail inside the sampler."""
    base = copy_pet(fake_pet, tmp_path)
    drop_lines(base / "annotations" / "trainval.txt", "american_bulldog_")
    with pytest.raises(FileNotFoundError, match=r"not a complete Oxford-IIIT Pet layout.*annotations/trainval.txt "
                                                r"has no image of 1 of the 3 breeds in annotations/test.txt: "
                                                r"american_bulldog \(2\)"):
        OxfordIIITPet(tmp_path, "trainval")
    with pytest.raises(FileNotFoundError, match=r"annotations/trainval.txt has no image of american_bulldog \(2\), "
                                                r"which annotations/test.txt lists"):
        OxfordIIITPet(tmp_path, "test")


def test_pet_breed_missing_from_both_splits_is_refused(fake_pet, tmp_path):
    base = copy_pet(fake_pet, tmp_path)
    for split in ("trainval", "test"):
        drop_lines(base / "annotations" / f"{split}.txt", "american_bulldog_")
    with pytest.raises(FileNotFoundError, match="has no image of the breeds numbered 2"):
        OxfordIIITPet(tmp_path, "trainval")


def test_pet_missing_image_files_are_named(fake_pet, tmp_path):
    base = copy_pet(fake_pet, tmp_path)
    (base / "images" / "Bengal_2.jpg").unlink()
    (base / "annotations" / "test.txt").unlink()  # the other split's list is optional
    with pytest.raises(FileNotFoundError, match=r"1 of the 21 images of the trainval split are missing "
                                                r"\(images/Bengal_2.jpg\)"):
        OxfordIIITPet(tmp_path, "trainval")
