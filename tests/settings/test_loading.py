"""load_family / load_setting / list_settings / get_setting on the fake datasets."""

import shutil
import subprocess
import sys
import warnings
from collections import Counter

import pytest

from diffii_datasets.image_datasets import CUB200, LabeledSubset, long_tail_counts
from diffii_datasets.settings import (
    FAMILIES,
    SettingSplits,
    custom_setting,
    get_setting,
    list_settings,
    load_family,
    load_setting,
)

PAPER_SETTINGS = [
    "cub-5shot", "cub-10shot", "aircraft-5shot", "aircraft-10shot", "cars-5shot", "cars-10shot",
    "pet-5shot", "pet-10shot", "cub-lt-if100", "cub-lt-if20", "cub-lt-if10",
    "flower-lt-if100", "flower-lt-if20", "flower-lt-if10",
]


def counts(dataset, num_classes):
    per_class = Counter(dataset.targets)
    return [per_class[c] for c in range(num_classes)]


def test_settings_list_is_the_papers():
    settings = list_settings()
    assert [s.name for s in settings] == PAPER_SETTINGS
    by_name = {s.name: s for s in settings}
    assert by_name["cub-5shot"].shots == 5 and by_name["cub-5shot"].imbalance_factor is None
    assert by_name["flower-lt-if20"].imbalance_factor == 20 and by_name["flower-lt-if20"].shots is None
    metaclasses = {s.family: s.metaclass for s in settings}
    assert metaclasses == {"cub": "bird", "aircraft": "aircraft", "cars": "car", "pet": "animal",
                           "cub-lt": "bird", "flower-lt": "flower"}
    assert {s.family for s in settings} == set(FAMILIES)
    assert by_name["aircraft-10shot"].train_split == "FGVC-Aircraft (variant) trainval"
    assert all(get_setting(name) == by_name[name] for name in PAPER_SETTINGS)
    assert [by_name[n].split_ratio for n in ("cub-5shot", "cub-10shot", "cub-lt-if10")] == [0.3, 0.1, 1.0]


def test_custom_settings_are_named_like_the_papers():
    assert custom_setting("cub", 5) == get_setting("cub-5shot")
    assert custom_setting("cub", 7).name == "cub-7shot" and custom_setting("cub", 7).split_ratio == 0.1
    assert custom_setting("cub-lt", 50).name == "cub-lt-if50" and custom_setting("cub-lt", 2.5).name == "cub-lt-if2.5"
    with pytest.raises(ValueError, match="shots must be a positive int"):
        custom_setting("cub", 0)
    with pytest.raises(ValueError, match="family must be one of cub, aircraft"):
        custom_setting("birds", 5)


def test_cub_few_shot(fake_cub):
    bench = load_family("cub", fake_cub.root, shots=2, seed=0, transform=lambda im: ("train", im.size),
                        test_transform=lambda im: ("test", im.size))
    assert isinstance(bench, SettingSplits) and bench[:2] == (bench.train, "bird")
    train, metaclass, test = bench
    assert isinstance(train, LabeledSubset) and isinstance(train.dataset, CUB200) and train.dataset.split == "train"
    assert isinstance(test, CUB200) and test.split == "test" and len(test) == len(fake_cub.splits["test"])
    assert counts(train, 4) == [2, 2, 2, 2]
    assert set(train.sample_keys) <= set(fake_cub.splits["train"])
    assert set(train.sample_keys).isdisjoint(test.sample_keys)
    assert train[0][0] == ("train", (8, 8)) and test[0][0] == ("test", (8, 8))
    assert load_family("cub", fake_cub.root, shots=2).train.sample_keys == train.sample_keys


def test_cub_long_tail(fake_cub):
    sizes = [n_train for n_train, _ in fake_cub_sizes(fake_cub)]
    with pytest.warns(UserWarning, match="12/1 = 12"):  # head class of 12 images: the tail stops at 1
        bench = load_setting("cub-lt-if10", fake_cub.root, seed=1)
    assert bench.metaclass == "bird"
    assert counts(bench.train, 4) == [min(n, s) for n, s in zip(long_tail_counts(sizes, 10), sizes)]
    diffmix = load_family("cub-lt", fake_cub.root, imbalance_factor=10, profile="diffmix")
    assert counts(diffmix.train, 4) == [min(n, s) for n, s in zip(long_tail_counts(sizes, 10, "diffmix"), sizes)]


def fake_cub_sizes(fake_cub):
    train, test = Counter(fake_cub.splits["train"].values()), Counter(fake_cub.splits["test"].values())
    return [(train[c], test[c]) for c in range(4)]


@pytest.mark.parametrize(("setting", "fixture", "metaclass", "pool_split", "test_split"), [
    ("aircraft-5shot", "fake_aircraft", "aircraft", "trainval", "test"),
    ("cars-5shot", "fake_cars", "car", "train", "test"),
    ("pet-5shot", "fake_pet", "animal", "trainval", "test"),
])
def test_few_shot_settings(request, setting, fixture, metaclass, pool_split, test_split):
    fake = request.getfixturevalue(fixture)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every fake class has at least 5 images in the pool
        train, got_metaclass, test = load_setting(setting, fake.root, seed=2)
    assert got_metaclass == metaclass
    assert counts(train, len(train.classes)) == [5] * len(fake.classes)
    assert set(train.sample_keys) <= set(fake.splits[pool_split])
    assert dict(zip(test.sample_keys, test.targets)) == fake.splits[test_split]
    assert set(train.sample_keys).isdisjoint(test.sample_keys)


def test_flower_lt_pools_all_splits_and_halves_each_class(fake_flowers):
    everything = {**fake_flowers.splits["train"], **fake_flowers.splits["val"], **fake_flowers.splits["test"]}
    pooled_sizes = [sum(split) for split in fake_flowers.counts]
    with pytest.warns(UserWarning):
        train, metaclass, test = load_setting("flower-lt-if10", fake_flowers.root, seed=0)
    assert metaclass == "flower" and len(train.classes) == 102
    assert counts(test, 102) == [n - n // 2 for n in pooled_sizes]
    halves = [n // 2 for n in pooled_sizes]
    assert counts(train, 102) == [min(n, s) for n, s in zip(long_tail_counts(halves, 10), halves)]
    assert set(train.sample_keys).isdisjoint(test.sample_keys)
    assert set(train.sample_keys) | set(test.sample_keys) <= set(everything)
    assert all(everything[key] == label for key, label in zip(test.sample_keys, test.targets))

    with pytest.warns(UserWarning):
        other_seed = load_setting("flower-lt-if10", fake_flowers.root, seed=1)
    assert other_seed.test.sample_keys == test.sample_keys, "the 50/50 split does not depend on the run seed"
    assert other_seed.train.sample_keys != train.sample_keys
    assert set(other_seed.train.sample_keys).isdisjoint(test.sample_keys)


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="cub, aircraft, cars, pet, cub-lt, flower-lt"):
        load_family("birds", tmp_path, shots=5)
    with pytest.raises(ValueError, match="cub-5shot, cub-10shot"):
        load_setting("cub-3shot", tmp_path)
    with pytest.raises(ValueError, match="setting must be one of cub-5shot"):
        get_setting("cub")


@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("cub", {"shots": 0}, "shots must be a positive int"),
    ("cub", {}, "shots is required"),
    ("cub", {"shots": 5, "imbalance_factor": 10}, "not imbalance_factor"),
    ("cub-lt", {"imbalance_factor": 0.5}, "imbalance_factor must be"),
    ("cub-lt", {}, "imbalance_factor is required"),
    ("flower-lt", {"shots": 5}, "not shots"),
    ("cub", {"shots": 5, "seed": -3}, "seed"),
    ("cub-lt", {"imbalance_factor": 10, "profile": "step"}, "profile"),
])
def test_bad_arguments_fail_before_any_data_is_read(tmp_path, name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_family(name, tmp_path, **kwargs)


def test_missing_or_partial_data(tmp_path, fake_cub):
    with pytest.raises(RuntimeError, match="download=True"):
        load_setting("cub-5shot", tmp_path)
    with pytest.raises(RuntimeError, match="kaggle"):
        load_setting("cars-5shot", tmp_path)
    with pytest.raises(ValueError, match="7545"):
        load_setting("cars-5shot", tmp_path, download=True)
    shutil.copytree(fake_cub.root / "CUB_200_2011", tmp_path / "CUB_200_2011")
    (tmp_path / "CUB_200_2011" / "images.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing images.txt"):
        load_family("cub-lt", tmp_path, imbalance_factor=10)


def test_datasets_do_not_import_the_diffusion_code():
    code = ("import sys, diffii_datasets.settings as s, diffii_datasets.image_datasets as d; "
            "s.load_setting, d.CUB200, d.few_shot; "
            "print(sorted(m for m in sys.modules if m.startswith(('diffii_datasets.diffusion', 'diffusers'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_settings_table_needs_no_torch():
    code = ("import sys; from diffii_datasets.settings import get_setting, list_settings; "
            "list_settings(), get_setting('cub-5shot'); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
