"""Few-shot and long-tail subsets, reproducible from a seed alone.

Every draw works per class, in class-index order, with its own generator
``numpy.random.default_rng([seed, class_index])``. A class's candidates are first
sorted by their stable key (``sample_keys``: the image path relative to the
dataset folder, or an ``ImageFolder`` path; datasets without keys fall back to
index order), and the draw keeps the first ``k`` of one random permutation of
them. Consequences worth relying on:

- the subset depends on (seed, class index, the set of files, k), not on the order
  in which the dataset lists its files, nor on the other classes;
- for one seed, smaller draws are contained in larger ones (the 5-shot subset is
  part of the 10-shot subset; the IF-100 long tail is part of the IF-10 one);
- the same call on the same data gives the same subset, so the concept learner and
  the classifier see the same images (Diff-Mix's code draws them with two seeds).

Items of the returned :class:`~diffii_datasets.image_datasets.labeled.LabeledSubset`
are ordered by class, then by key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.base_dataset import class_names, dataset_sample_keys, dataset_targets
from diffii_datasets.image_datasets.labeled import LabeledSubset
from diffii_datasets.settings.base import LONG_TAIL_PROFILES

__all__ = ["few_shot", "long_tail", "long_tail_counts", "split_per_class"]

logger = logging.getLogger(__name__)


def few_shot(dataset: Dataset, shots: int, seed: int = 0) -> LabeledSubset:
    """Keep ``shots`` images of every class.

    Args:
        dataset: A torchvision-style dataset (``classes`` and ``targets``, or a ``Subset`` of one).
        shots: Images per class, at least 1. A class with fewer keeps all it has, with a warning
            that lists such classes.
        seed: Non-negative int; see the module docstring for how the draw uses it.
    """
    shots = _checks.check_int(shots, "shots", minimum=1)
    classes, candidates = _candidates_by_class(dataset)
    return _subset(dataset, classes, candidates, [shots] * len(classes), _checks.check_seed(seed), "few_shot")


def long_tail_counts(class_sizes: Sequence[int], imbalance_factor: float, profile: str = "exponential") -> list[int]:
    """Images to keep per class (in class-index order) for a long-tailed subset.

    Classes are ranked by their number of available images, largest first, ties by class
    index (so on a balanced dataset rank ``r`` is class ``r``). With ``C`` classes:

    - ``"exponential"`` (the common definition): rank ``r`` keeps
      ``n_r = round(n_max * IF ** (-r / (C - 1)))``, at least 1, where ``n_max`` is the
      largest class size and ``round`` rounds halves up. Rank 0 keeps ``n_max`` and the last
      rank ``round(n_max / IF)``, so the achieved max/min ratio is IF whenever ``n_max`` is a
      multiple of IF (it is smaller when ``n_max < IF``: the tail cannot go below one image).
    - ``"diffmix"`` (Diff-Mix's code, kept for comparability with published numbers):
      ``n_r = max(int(avg * (1 / IF) ** (r / (C - 2))), 1)`` with ``avg = N / C`` the mean class
      size. It starts from the mean rather than the largest class, truncates instead of
      rounding and divides the exponent by ``C - 2``, so the last class falls below
      ``avg / IF`` and the real max/min ratio is not IF: on CUB's train split (5,994 images,
      200 classes), IF 10 keeps 29 images for the head class and 2 for the tail, a ratio
      of 14.5.
    """
    sizes = [int(size) for size in class_sizes]
    if not sizes or any(size < 0 for size in sizes):
        raise ValueError(f"class_sizes must be non-empty non-negative ints, got {list(class_sizes)!r}")
    if max(sizes) == 0:
        raise ValueError("class_sizes are all 0: there is nothing to draw a long tail from")
    imbalance_factor = _checks.check_number(imbalance_factor, "imbalance_factor", minimum=1)
    _checks.check_choice(profile, "profile", LONG_TAIL_PROFILES)
    num_classes = len(sizes)
    ranked = sorted(range(num_classes), key=lambda c: (-sizes[c], c))
    counts = [0] * num_classes
    if profile == "exponential":
        n_max = max(sizes)
        for rank, c in enumerate(ranked):
            exponent = -rank / (num_classes - 1) if num_classes > 1 else 0.0
            counts[c] = max(1, math.floor(n_max * imbalance_factor**exponent + 0.5))
    else:
        if num_classes < 3:
            raise ValueError(
                f"profile='diffmix' needs at least 3 classes (its exponent divides by C - 2), got {num_classes}"
            )
        average = sum(sizes) / num_classes
        for rank, c in enumerate(ranked):
            counts[c] = max(int(average * (1.0 / imbalance_factor) ** (rank / (num_classes - 2))), 1)
    return counts


def long_tail(
    dataset: Dataset, imbalance_factor: float, seed: int = 0, profile: str = "exponential"
) -> LabeledSubset:
    """Keep a long-tailed subset: per-class counts from :func:`long_tail_counts`.

    Args:
        dataset: A torchvision-style dataset (``classes`` and ``targets``, or a ``Subset`` of one).
        imbalance_factor: IF >= 1, the intended ratio of the largest to the smallest class.
        seed: Non-negative int; see the module docstring for how the draw uses it.
        profile: ``"exponential"`` or ``"diffmix"``; :func:`long_tail_counts` gives both formulas
            and how they differ.

    A class with fewer images than its count keeps all it has (warning listing them). When the
    achieved max/min ratio is more than 10 % away from ``imbalance_factor`` (too few images in the
    head class, or the Diff-Mix formula) a warning says so with the numbers.
    """
    classes, candidates = _candidates_by_class(dataset)
    seed = _checks.check_seed(seed)
    counts = long_tail_counts([len(c) for c in candidates], imbalance_factor, profile)
    subset = _subset(dataset, classes, candidates, counts, seed, "long_tail")
    kept = [min(count, len(c)) for count, c in zip(counts, candidates) if min(count, len(c)) > 0]
    ratio = max(kept) / min(kept)
    if abs(ratio / float(imbalance_factor) - 1.0) > 0.1:
        warn_at_caller(
            f"long_tail(imbalance_factor={imbalance_factor}, profile={profile!r}) achieved a max/min class ratio of "
            f"{max(kept)}/{min(kept)} = {ratio:.3g} on this dataset (largest class: {max(len(c) for c in candidates)} "
            "images; a class keeps at least 1)")
    return subset


def split_per_class(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[LabeledSubset, LabeledSubset]:
    """Split every class in two disjoint parts: ``floor(fraction * n_c)`` images, and the rest.

    The same per-class draw as :func:`few_shot`, so the first part of a class is a random
    ``fraction`` of it, reproducible from ``seed``.
    """
    fraction = _checks.check_number(fraction, "fraction", above=0)
    if fraction >= 1:
        _checks.fail(ValueError, "fraction", "a number strictly between 0 and 1", fraction)
    classes, candidates = _candidates_by_class(dataset)
    seed = _checks.check_seed(seed)
    first = [_draw(c, math.floor(fraction * len(c)), seed, i) for i, c in enumerate(candidates)]
    chosen = {index for part in first for index in part}
    rest = [[index for index in c if index not in chosen] for c in candidates]
    return (LabeledSubset(dataset, [i for part in first for i in part]),
            LabeledSubset(dataset, [i for part in rest for i in part]))


def _candidates_by_class(dataset: Dataset) -> tuple[list[str], list[list[int]]]:
    """Each class's item indices, sorted by stable key (index order when the dataset has no keys)."""
    classes = class_names(dataset)
    targets = dataset_targets(dataset)
    keys = dataset_sample_keys(dataset)
    if keys is None:
        logger.info("%s has no sample keys; draws follow its item order", type(dataset).__name__)
    candidates: list[list[int]] = [[] for _ in classes]
    for index, target in enumerate(targets):
        if not 0 <= target < len(classes):
            raise ValueError(f"dataset item {index} has label {target}, outside [0, {len(classes)}) of its classes")
        candidates[target].append(index)
    if keys is not None:
        candidates = [sorted(c, key=lambda i: (keys[i], i)) for c in candidates]
    return classes, candidates


def _draw(candidates: list[int], k: int, seed: int, class_index: int) -> list[int]:
    """The first ``k`` of a seeded permutation of ``candidates``, back in candidate (key) order."""
    permutation = np.random.default_rng([seed, class_index]).permutation(len(candidates))
    return [candidates[j] for j in sorted(permutation[:k].tolist())]


def _subset(
    dataset: Dataset, classes: list[str], candidates: list[list[int]], counts: list[int], seed: int, caller: str
) -> LabeledSubset:
    short = [f"{classes[c]!r} ({len(cands)} of {count})"
             for c, (cands, count) in enumerate(zip(candidates, counts)) if len(cands) < count]
    if short:
        warn_at_caller(
            f"{caller}: {len(short)} classes have fewer images than asked and keep all they have: {', '.join(short)}")
    indices = [i for c, (cands, count) in enumerate(zip(candidates, counts)) for i in _draw(cands, count, seed, c)]
    logger.info("%s: kept %d of %d items over %d classes (seed %d)", caller, len(indices), len(dataset),
                len(classes), seed)
    return LabeledSubset(dataset, indices)
