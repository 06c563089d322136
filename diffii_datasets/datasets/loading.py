"""Loading a family or a setting: the training subset, its metaclass and the test set.

What each family is (its splits, metaclass and published settings) is
:mod:`~diffii_datasets.datasets.settings`; this module reads the files with the
dataset classes and draws the subset with the samplers.

Flower-LT follows Diff-Mix, whose numbers the paper compares against: the official
Flowers-102 train and val splits hold only 10 images per class each, too few for a long
tail (with 20 images per class IF 20 and IF 100 would give the same 20-to-1 profile).
So all images are pooled and each class is split 50/50 with :func:`split_per_class`; the
split uses the fixed seed :data:`FLOWER_LT_SPLIT_SEED`, so every run seed shares one
test set, and the run seed only draws the long tail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets.datasets.cub import CUB200
from diffii_datasets.datasets.labeled import LabeledConcat
from diffii_datasets.datasets.sampling import few_shot, long_tail, split_per_class
from diffii_datasets.datasets.settings import FAMILIES, LONG_TAIL_PROFILES, get_setting
from diffii_datasets.datasets.torchvision_adapters import FGVCAircraft, Flowers102, OxfordIIITPet, StanfordCars

__all__ = ["FLOWER_LT_SPLIT_SEED", "SUBSETS", "SettingSplits", "load_family", "load_family_pools", "load_setting"]

FLOWER_LT_SPLIT_SEED = 0
SUBSETS = ("drawn", "released")
"""How :func:`load_setting` gets the training subset: drawn with a seed, or the authors' released lists."""


class SettingSplits(NamedTuple):
    """What :func:`load_family` and :func:`load_setting` return.

    The first two fields are what the augmentation wrapper takes
    (``DiffIIAugmented(splits.train, splits.metaclass)``, or ``DiffIIAugmented(*splits[:2])``);
    ``test`` is for evaluation. Unpacks as ``train, metaclass, test = load_setting(...)``.
    """

    train: Dataset
    metaclass: str
    test: Dataset


# A loader returns (training pool, test set) for (root, transform, test_transform, target_transform, download).
_Loader = Callable[[Path, Callable | None, Callable | None, Callable | None, bool], tuple[Dataset, Dataset]]


def _official_splits(dataset_class: type, train_split: str, test_split: str) -> _Loader:
    def load(root, transform, test_transform, target_transform, download):
        train = dataset_class(root, train_split, transform=transform, target_transform=target_transform,
                              download=download)
        test = dataset_class(root, test_split, transform=test_transform, target_transform=target_transform)
        return train, test

    return load


def _flowers_pooled_halves(root, transform, test_transform, target_transform, download):
    def pooled(image_transform, fetch):
        parts = [Flowers102(root, split, transform=image_transform, target_transform=target_transform,
                            download=fetch and split == "train") for split in ("train", "val", "test")]
        return LabeledConcat(parts)

    train_half, _ = split_per_class(pooled(transform, download), 0.5, seed=FLOWER_LT_SPLIT_SEED)
    _, test_half = split_per_class(pooled(test_transform, False), 0.5, seed=FLOWER_LT_SPLIT_SEED)
    return train_half, test_half


_LOADERS: dict[str, _Loader] = {
    "cub": _official_splits(CUB200, "train", "test"),
    "aircraft": _official_splits(FGVCAircraft, "trainval", "test"),
    "cars": _official_splits(StanfordCars, "train", "test"),
    "pet": _official_splits(OxfordIIITPet, "trainval", "test"),
    "cub-lt": _official_splits(CUB200, "train", "test"),
    "flower-lt": _flowers_pooled_halves,
}


def load_family(
    name: str,
    root: str | Path,
    *,
    shots: int | None = None,
    imbalance_factor: float | None = None,
    seed: int = 0,
    profile: str = "exponential",
    transform: Callable | None = None,
    test_transform: Callable | None = None,
    target_transform: Callable | None = None,
    download: bool = False,
) -> SettingSplits:
    """Load a family's training subset, metaclass and test set.

    Args:
        name: One of :data:`~diffii_datasets.datasets.FAMILIES`.
        root: Folder holding the datasets in torchvision's layout (``CUB_200_2011/``,
            ``fgvc-aircraft-2013b/``, ``stanford_cars/``, ``oxford-iiit-pet/``, ``flowers-102/``).
        shots: Images per class, for the few-shot families.
        imbalance_factor: IF >= 1, for the long-tail families.
        seed: Draws the subset (see :mod:`~diffii_datasets.datasets.sampling`).
        profile: Long-tail profile, ``"exponential"`` or ``"diffmix"``.
        transform: Image transform of the training subset.
        test_transform: Image transform of the test set.
        target_transform: Label transform of both.
        download: Fetch missing datasets (not possible for Stanford Cars; see its error).
    """
    family = FAMILIES.get(name)
    if family is None:
        raise ValueError(f"name must be one of {', '.join(FAMILIES)}; got {name!r}. "
                         "Fixed paper settings such as 'cub-5shot' load with load_setting().")
    if family.kind == "few-shot":
        if imbalance_factor is not None:
            raise ValueError(f"{name!r} is a few-shot family: pass shots, not imbalance_factor")
        if shots is None:
            raise ValueError(f"{name!r} is a few-shot family: shots is required (the paper uses 5 and 10)")
        _checks.check_int(shots, "shots", minimum=1)
    else:
        if shots is not None:
            raise ValueError(f"{name!r} is a long-tail family: pass imbalance_factor, not shots")
        if imbalance_factor is None:
            raise ValueError(f"{name!r} is a long-tail family: imbalance_factor is required "
                             "(the paper uses 100, 20 and 10)")
        _checks.check_number(imbalance_factor, "imbalance_factor", minimum=1)
    _checks.check_seed(seed)
    _checks.check_choice(profile, "profile", LONG_TAIL_PROFILES)
    pool, test = load_family_pools(name, root, transform=transform, test_transform=test_transform,
                                   target_transform=target_transform, download=download)
    if family.kind == "few-shot":
        train = few_shot(pool, shots, seed)
    else:
        train = long_tail(pool, imbalance_factor, seed, profile=profile)
    return SettingSplits(train, family.metaclass, test)


def load_family_pools(
    name: str,
    root: str | Path,
    *,
    transform: Callable | None = None,
    test_transform: Callable | None = None,
    target_transform: Callable | None = None,
    download: bool = False,
) -> tuple[Dataset, Dataset]:
    """A family's whole training pool and its test set, before any subset is drawn (see the table in
    :mod:`~diffii_datasets.datasets.settings`; Flower-LT: the two halves of the pooled Flowers-102)."""
    if name not in FAMILIES:
        raise ValueError(f"name must be one of {', '.join(FAMILIES)}; got {name!r}")
    return _LOADERS[name](root, transform, test_transform, target_transform, download)


def load_setting(name: str, root: str | Path, seed: int = 0, *, subset: str = "drawn", **kwargs) -> SettingSplits:
    """Load one of the paper's settings by name, e.g. ``load_setting("cub-5shot", root)``.

    ``subset="drawn"`` (the default) draws the training subset with ``seed``; ``kwargs`` are
    :func:`load_family`'s transforms, ``download`` and ``profile``. ``subset="released"`` takes the
    authors' released training and test lists instead, mapped onto the dataset under ``root``
    (downloaded from the Hub on first use: :func:`diffii_datasets.released.released_splits`, whose
    keywords ``kwargs`` are: the transforms, ``download``, ``revision``, ``cache_dir``, ``progress``);
    the released subset is fixed, so ``seed`` must stay 0.
    """
    _checks.check_choice(subset, "subset", SUBSETS)
    if subset == "released":
        if seed != 0:
            raise ValueError(f"seed does not apply to subset='released' (the authors' lists are fixed), got {seed}")
        from diffii_datasets.released import released_splits

        return released_splits(name, root, **kwargs)
    return get_setting(name).load(root, seed, **kwargs)
