"""The paper's benchmark settings by name: the training subset, its metaclass and the test set.

Two levels of names:

- benchmarks (:data:`BENCHMARKS`): ``cub``, ``aircraft``, ``cars``, ``pet`` (few-shot: pass
  ``shots``) and ``cub-lt``, ``flower-lt`` (long-tail: pass ``imbalance_factor``), for
  :func:`load_benchmark`;
- settings (:func:`list_benchmarks`): the paper's 14 fixed combinations, ``cub-5shot`` ...
  ``pet-10shot``, ``cub-lt-if100`` ... ``flower-lt-if10``, for :func:`load_setting`, the Hub
  builder's configs and the command line.

Splits (the training subset is drawn from the first, evaluation uses the second):

======================  =============================================  ==========================
benchmark               training pool                                  test set
======================  =============================================  ==========================
cub, cub-lt             CUB-200-2011 ``train`` (5,994 images)          ``test`` (5,794)
aircraft                FGVC-Aircraft variants ``trainval`` (6,667)    ``test`` (3,333)
cars                    Stanford Cars ``train`` (8,144)                ``test`` (8,041)
pet                     Oxford-IIIT Pet ``trainval`` (3,680)           ``test`` (3,669)
flower-lt               half of every class of all 8,189 Flowers-102   the other half
                        images (official train + val + test pooled)
======================  =============================================  ==========================

Flower-LT follows Diff-Mix, whose numbers the paper compares against: the official
Flowers-102 train and val splits hold only 10 images per class each, too few for a long
tail (with 20 images per class IF 20 and IF 100 would give the same 20-to-1 profile).
So all images are pooled and each class is split 50/50 with :func:`split_per_class`; the
split uses the fixed seed :data:`FLOWER_LT_SPLIT_SEED`, so every run seed shares one
test set, and the run seed only draws the long tail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from torch.utils.data import Dataset

from diffii_datasets.benchmarks.cub import CUB200
from diffii_datasets.benchmarks.labeled import LabeledConcat
from diffii_datasets.benchmarks.sampling import (
    LONG_TAIL_PROFILES,
    _check_imbalance_factor,
    _check_positive_int,
    _check_seed,
    few_shot,
    long_tail,
    split_per_class,
)
from diffii_datasets.benchmarks.torchvision_adapters import FGVCAircraft, Flowers102, OxfordIIITPet, StanfordCars

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkSetting",
    "FLOWER_LT_SPLIT_SEED",
    "list_benchmarks",
    "load_benchmark",
    "load_setting",
]

FLOWER_LT_SPLIT_SEED = 0


class Benchmark(NamedTuple):
    """What :func:`load_benchmark` returns.

    The first two fields are what the augmentation wrapper takes
    (``DiffIIAugmented(bench.train, bench.metaclass)``, or ``DiffIIAugmented(*bench[:2])``);
    ``test`` is for evaluation. Unpacks as ``train, metaclass, test = load_benchmark(...)``.
    """

    train: Dataset
    metaclass: str
    test: Dataset


@dataclass(frozen=True)
class BenchmarkSetting:
    """One of the paper's settings: a benchmark with a fixed shot count or imbalance factor."""

    name: str
    benchmark: str
    metaclass: str
    num_classes: int
    train_split: str
    test_split: str
    shots: int | None = None
    imbalance_factor: int | None = None

    @property
    def split_ratio(self) -> float:
        """The paper's two-stage split ratio for this setting: 0.3 (5-shot), 0.1 (10-shot), 1.0 (long-tail)."""
        if self.imbalance_factor is not None:
            return 1.0
        return 0.3 if self.shots <= 5 else 0.1

    def load(self, root: str | Path, seed: int = 0, **kwargs) -> Benchmark:
        """Same as ``load_setting(self.name, root, seed, **kwargs)``."""
        return load_benchmark(self.benchmark, root, shots=self.shots, imbalance_factor=self.imbalance_factor,
                              seed=seed, **kwargs)


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


@dataclass(frozen=True)
class _Spec:
    kind: str  # "few-shot" or "long-tail"
    metaclass: str
    num_classes: int
    train_split: str
    test_split: str
    load: _Loader
    settings: tuple[int, ...]


_SPECS: dict[str, _Spec] = {
    "cub": _Spec("few-shot", "bird", 200, "CUB-200-2011 train", "CUB-200-2011 test",
                 _official_splits(CUB200, "train", "test"), (5, 10)),
    "aircraft": _Spec("few-shot", "aircraft", 100, "FGVC-Aircraft (variant) trainval", "FGVC-Aircraft (variant) test",
                      _official_splits(FGVCAircraft, "trainval", "test"), (5, 10)),
    "cars": _Spec("few-shot", "car", 196, "Stanford Cars train", "Stanford Cars test",
                  _official_splits(StanfordCars, "train", "test"), (5, 10)),
    "pet": _Spec("few-shot", "animal", 37, "Oxford-IIIT Pet trainval", "Oxford-IIIT Pet test",
                 _official_splits(OxfordIIITPet, "trainval", "test"), (5, 10)),
    "cub-lt": _Spec("long-tail", "bird", 200, "CUB-200-2011 train", "CUB-200-2011 test",
                    _official_splits(CUB200, "train", "test"), (100, 20, 10)),
    "flower-lt": _Spec("long-tail", "flower", 102,
                       "Flowers-102, all splits pooled, first half of each class (fixed split seed 0)",
                       "Flowers-102, all splits pooled, second half of each class",
                       _flowers_pooled_halves, (100, 20, 10)),
}

BENCHMARKS: tuple[str, ...] = tuple(_SPECS)


def list_benchmarks() -> list[BenchmarkSetting]:
    """The paper's settings, in a stable order: few-shot (5 and 10 shots), then long-tail (IF 100, 20, 10)."""
    settings = []
    for benchmark, spec in _SPECS.items():
        for value in spec.settings:
            if spec.kind == "few-shot":
                name, extra = f"{benchmark}-{value}shot", {"shots": value}
            else:
                name, extra = f"{benchmark}-if{value}", {"imbalance_factor": value}
            settings.append(BenchmarkSetting(name, benchmark, spec.metaclass, spec.num_classes,
                                             spec.train_split, spec.test_split, **extra))
    return settings


def load_benchmark(
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
) -> Benchmark:
    """Load a benchmark's training subset, metaclass and test set.

    Args:
        name: One of :data:`BENCHMARKS`.
        root: Folder holding the datasets in torchvision's layout (``CUB_200_2011/``,
            ``fgvc-aircraft-2013b/``, ``stanford_cars/``, ``oxford-iiit-pet/``, ``flowers-102/``).
        shots: Images per class, for the few-shot benchmarks.
        imbalance_factor: IF >= 1, for the long-tail benchmarks.
        seed: Draws the subset (see :mod:`~diffii_datasets.benchmarks.sampling`).
        profile: Long-tail profile, ``"exponential"`` or ``"diffmix"``.
        transform: Image transform of the training subset.
        test_transform: Image transform of the test set.
        target_transform: Label transform of both.
        download: Fetch missing datasets (not possible for Stanford Cars; see its error).
    """
    spec = _SPECS.get(name)
    if spec is None:
        raise ValueError(f"name must be one of {', '.join(BENCHMARKS)}; got {name!r}. "
                         "Fixed paper settings such as 'cub-5shot' load with load_setting().")
    if spec.kind == "few-shot":
        if imbalance_factor is not None:
            raise ValueError(f"{name!r} is a few-shot benchmark: pass shots, not imbalance_factor")
        if shots is None:
            raise ValueError(f"{name!r} is a few-shot benchmark: shots is required (the paper uses 5 and 10)")
        _check_positive_int(shots, "shots")
    else:
        if shots is not None:
            raise ValueError(f"{name!r} is a long-tail benchmark: pass imbalance_factor, not shots")
        if imbalance_factor is None:
            raise ValueError(f"{name!r} is a long-tail benchmark: imbalance_factor is required "
                             "(the paper uses 100, 20 and 10)")
        _check_imbalance_factor(imbalance_factor)
    _check_seed(seed)
    if profile not in LONG_TAIL_PROFILES:
        raise ValueError(f"profile must be one of {LONG_TAIL_PROFILES}, got {profile!r}")
    pool, test = spec.load(root, transform, test_transform, target_transform, download)
    if spec.kind == "few-shot":
        train = few_shot(pool, shots, seed)
    else:
        train = long_tail(pool, imbalance_factor, seed, profile=profile)
    return Benchmark(train, spec.metaclass, test)


def load_setting(name: str, root: str | Path, seed: int = 0, **kwargs) -> Benchmark:
    """Load one of :func:`list_benchmarks`'s settings by name, e.g. ``load_setting("cub-5shot", root)``.

    ``kwargs`` are :func:`load_benchmark`'s transforms, ``download`` and ``profile``.
    """
    for setting in list_benchmarks():
        if setting.name == name:
            return setting.load(root, seed, **kwargs)
    names = ", ".join(s.name for s in list_benchmarks())
    raise ValueError(f"name must be one of the settings {names}; got {name!r}")
