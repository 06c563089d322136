"""Loading a family or a setting: the training subset, its metaclass and the test set.

What each family is (its pools, metaclass and published settings) is its declaration in
:mod:`diffii_datasets.settings.families`; this module reads the pools with the family's
loader and draws the subset with the samplers of :mod:`diffii_datasets.image_datasets`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets.image_datasets.sampling import few_shot, long_tail
from diffii_datasets.settings.base import FAMILIES, LONG_TAIL_PROFILES, get_setting
from diffii_datasets.settings.families.flower_lt import SPLIT_SEED as FLOWER_LT_SPLIT_SEED

__all__ = ["FLOWER_LT_SPLIT_SEED", "SUBSETS", "SettingSplits", "load_family", "load_family_pools", "load_setting"]

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
        name: One of :data:`~diffii_datasets.settings.FAMILIES`.
        root: Folder holding the datasets in torchvision's layout (``CUB_200_2011/``,
            ``fgvc-aircraft-2013b/``, ``stanford_cars/``, ``oxford-iiit-pet/``, ``flowers-102/``).
        shots: Images per class, for the few-shot families.
        imbalance_factor: IF >= 1, for the long-tail families.
        seed: Draws the subset (see :mod:`~diffii_datasets.image_datasets.sampling`).
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
    """A family's whole training pool and its test set, before any subset is drawn (its declaration's
    ``load_pools``; Flower-LT: the two halves of the pooled Flowers-102)."""
    if name not in FAMILIES:
        raise ValueError(f"name must be one of {', '.join(FAMILIES)}; got {name!r}")
    return FAMILIES[name].load_pools(root, transform, test_transform, target_transform, download)


def load_setting(name: str, root: str | Path, seed: int = 0, *, subset: str = "drawn", **kwargs) -> SettingSplits:
    """Load one of the paper's settings by name, e.g. ``load_setting("cub-5shot", root)``.

    ``subset="drawn"`` (the default) draws the training subset with ``seed``; ``kwargs`` are
    :func:`load_family`'s transforms, ``download`` and ``profile``. ``subset="released"`` takes the
    authors' released training and test lists instead, mapped onto the dataset under ``root``
    (downloaded from the Hub on first use: :func:`diffii_datasets.released.released_splits`, whose
    keywords ``kwargs`` are: the transforms, ``download``, ``revision``, ``cache_dir``, ``progress``,
    ``released_from`` for a local copy of their archives);
    the released subset is fixed, so ``seed`` must stay 0.
    """
    _checks.check_choice(subset, "subset", SUBSETS)
    if subset == "released":
        if seed != 0:
            raise ValueError(f"seed does not apply to subset='released' (the authors' lists are fixed), got {seed}")
        from diffii_datasets.released import released_splits

        return released_splits(name, root, **kwargs)
    return get_setting(name).load(root, seed, **kwargs)
