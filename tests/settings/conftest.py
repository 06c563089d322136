"""Fake benchmark datasets in their official layouts, written once per session (read-only use)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from tests.helpers.fakedata import CUB_CLASSES, write_aircraft, write_cars, write_cub, write_flowers, write_pet


@pytest.fixture(scope="session")
def fake_cub(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    return SimpleNamespace(root=root, splits=write_cub(root, CUB_CLASSES, order_seed=0))


@pytest.fixture(scope="session")
def fake_aircraft(tmp_path_factory):
    root = tmp_path_factory.mktemp("aircraft")
    variants = {"707-320": (4, 3, 3), "A300B4": (5, 4, 2), "F/A-18": (3, 3, 2), "Cessna 172": (3, 2, 2)}
    return SimpleNamespace(root=root, splits=write_aircraft(root, variants), classes=list(variants))


@pytest.fixture(scope="session")
def fake_cars(tmp_path_factory):
    root = tmp_path_factory.mktemp("cars")
    classes = {"AM General Hummer SUV 2000": (7, 3), "Acura RL Sedan 2012": (6, 4), "Audi TT RS Coupe 2012": (8, 2)}
    return SimpleNamespace(root=root, splits=write_cars(root, classes), classes=list(classes))


@pytest.fixture(scope="session")
def fake_pet(tmp_path_factory):
    root = tmp_path_factory.mktemp("pet")
    breeds = {"Abyssinian": (7, 3), "american_bulldog": (6, 2), "Bengal": (8, 3)}
    return SimpleNamespace(root=root, splits=write_pet(root, breeds),
                           classes=["Abyssinian", "American Bulldog", "Bengal"])


@pytest.fixture(scope="session")
def _flowers_on_disk(tmp_path_factory):
    root = tmp_path_factory.mktemp("flowers")
    # All 102 classes (torchvision's class list is fixed); unequal test splits give unequal pooled sizes.
    counts = [(2, 2, 2 + (c * 5) % 17) for c in range(102)]
    return SimpleNamespace(root=root, splits=write_flowers(root, counts), counts=counts)


@pytest.fixture
def fake_flowers(_flowers_on_disk, monkeypatch):
    """The fake Flowers-102, with torchvision's MD5 check of the two official ``.mat`` files relaxed.

    Fake ``.mat`` files cannot have the official checksums; torchvision's own dataset tests
    patch ``check_integrity`` the same way. The existence check stays.
    """
    monkeypatch.setattr("torchvision.datasets.flowers102.check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))
    return _flowers_on_disk
