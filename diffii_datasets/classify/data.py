"""What the trainer reads: the joint-training set, the recipe's transforms on any dataset, per-epoch loaders.

Every random draw of an epoch depends only on (seed, epoch, rank): the shuffle
(``DistributedSampler`` seeded with the recipe's seed), the replacement draws
(:class:`~diffii_datasets.augmented.DiffIIAugmented` keyed by its epoch) and the
augmentations (the loader's generator, and the process's torch generator when
images are transformed in the main process). So an epoch replays exactly after a resume.

A training item's target is a class index (an ``int``) or a probability vector (a float
tensor ``[C]``: a soft label, or one-hot). A dataset with soft labels yields every item's
target as a vector (one-hot for real images), so that its batches collate;
:func:`collate_training` says so when a batch mixes the two.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, default_collate

from diffii_datasets import _checks
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.augmented import DiffIIAugmented
from diffii_datasets.classify.recipes import Recipe
from diffii_datasets.base_dataset import DEFAULT_COLUMNS, parse_item
from diffii_datasets.distributed import World
from diffii_datasets.store import SyntheticStore

__all__ = ["DEFAULT_WORKERS", "PROBABILITY_TOLERANCE", "Transformed", "collate_training", "epoch_loader", "epoch_seed",
           "joint_training_set", "loader_workers", "shard_loader", "training_target"]

PROBABILITY_TOLERANCE = 1e-4
"""How far from 1 the sum of a soft target may be (float32 sums of a few hundred classes are far closer)."""


def joint_training_set(store: SyntheticStore, recipe: Recipe) -> DiffIIAugmented:
    """The paper's joint-training set: the store's real images, each replaced with the recipe's probability.

    Replacement by a synthetic image of the item's own class, or (``recipe.class_balanced``)
    of a class drawn with probability proportional to ``1 / (n_c + 1)``; the draws are
    seeded with ``recipe.seed``. ``synthetic_probability=0`` serves the real images only.
    A store of a method that mixes two classes serves soft labels (``recipe.soft_label_gamma``).
    """
    return DiffIIAugmented.from_store(store, synthetic_probability=recipe.synthetic_probability,
                                      class_balanced=recipe.class_balanced, sampling_seed=recipe.seed,
                                      soft_label_gamma=recipe.soft_label_gamma)


def training_target(value: Any, name: str) -> int | torch.Tensor:
    """A training item's target: a class index as an ``int``, or a probability vector as a float32 tensor ``[C]``.

    A 0-d tensor or NumPy scalar is an index; a 1-d float tensor must be a probability
    vector (finite, non-negative, summing to 1 within :data:`PROBABILITY_TOLERANCE`).
    """
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return _probabilities(value, name)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    return _checks.check_int(value, name, expected="a class index (int) or a probability vector (float tensor [C])")


def _probabilities(vectors: torch.Tensor, name: str) -> torch.Tensor:
    """``vectors`` (``[C]`` or ``[N, C]``) as float32 once checked to be probability vectors."""
    if not vectors.is_floating_point():
        raise TypeError(f"{name} is a {vectors.dtype} vector: a soft target must be a float tensor [C] "
                        "(a probability vector)")
    totals = vectors.sum(dim=-1)
    if not bool(torch.isfinite(vectors).all()) or bool((vectors < 0).any()) or \
            bool(((totals - 1).abs() > PROBABILITY_TOLERANCE).any()):
        raise ValueError(f"{name} must be a probability vector (finite, >= 0, summing to 1); its sums are "
                         f"{', '.join(f'{total:.6g}' for total in totals.reshape(-1)[:4].tolist())} and its smallest "
                         f"entry {float(vectors.min()):.6g}")
    return vectors.float()


def _image_and_target(item: Any, index: int, name: str) -> tuple[Any, int | torch.Tensor]:
    """``parse_item``, but a 1-d tensor label is kept as a soft target."""
    label = item.get(DEFAULT_COLUMNS.label) if isinstance(item, Mapping) else (
        item[1] if isinstance(item, (tuple, list)) and len(item) == 2 else None)
    if isinstance(label, torch.Tensor) and label.dim() == 1:
        image = item[DEFAULT_COLUMNS.image] if isinstance(item, Mapping) else item[0]
        return image, training_target(label, f"the target of {name}[{index}]")
    return parse_item(item, index, name=name)


class Transformed(Dataset):
    """``dataset`` with ``transform`` applied to the PIL image of each item; items come out as ``(tensor, label)``.

    ``soft_targets``: labels may also be probability vectors (a training set; see :func:`training_target`).
    """

    def __init__(self, dataset: Any, transform: Any, name: str, *, soft_targets: bool = False) -> None:
        self.dataset = dataset
        self.transform = transform
        self.name = name
        self.soft_targets = soft_targets

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int | torch.Tensor]:
        item = self.dataset[index]
        image, label = (_image_and_target(item, index, self.name) if self.soft_targets
                        else parse_item(item, index, name=self.name))
        if not isinstance(image, Image.Image):
            raise TypeError(f"{self.name}[{index}] is a {type(image).__name__}, not a PIL image: the recipe's "
                            "transforms apply to PIL images; remove the dataset's own transform, or pass "
                            "apply_transforms=False to use it as it is")
        return self.transform(image.convert("RGB")), label

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one rank's augmentations in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


DEFAULT_WORKERS = 4
"""Data-loading processes per rank unless told otherwise (fewer on a machine with fewer CPUs)."""


def loader_workers(requested: int | None) -> int:
    """``requested`` data-loading processes (``None``: :data:`DEFAULT_WORKERS`), at most the CPUs each rank of this
    machine has; asking for more warns and starts that many."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    ranks_here = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    limit = max(cpus // ranks_here, 1)
    if requested is None:
        return min(DEFAULT_WORKERS, limit)
    _checks.check_int(requested, "workers", minimum=0)
    if requested > limit:
        per_rank = f" for each of its {ranks_here} ranks" if ranks_here > 1 else ""
        warn_at_caller(f"workers={requested}: this machine has {cpus} CPUs, {limit}{per_rank}; starting {limit} "
                       f"data-loading processes (ask for {limit} or fewer to silence this)")
        return limit
    return requested


def epoch_loader(dataset: Any, recipe: Recipe, world: World, epoch: int, workers: int | None) -> DataLoader:
    """This rank's loader for ``epoch`` (from 0): its part of a seeded shuffle, ``batch_size // world.size`` a batch."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=recipe.seed)
    sampler.set_epoch(epoch)
    seed = epoch_seed(recipe.seed, epoch, world.rank)
    torch.manual_seed(seed)  # augmentations drawn in this process (workers=0)
    return DataLoader(dataset, batch_size=recipe.batch_size // world.size, sampler=sampler,
                      num_workers=loader_workers(workers), pin_memory=world.device.type == "cuda",
                      generator=torch.Generator().manual_seed(seed), collate_fn=collate_training)


def collate_training(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images stacked; targets as class indices ``[N]`` or, when the items give vectors, ``[N, C]``."""
    if not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in batch):
        raise TypeError("train_set must yield (image tensor, target) pairs once transformed")
    images = default_collate([image for image, _ in batch])
    targets = [target for _, target in batch]
    vectors = [isinstance(target, torch.Tensor) and target.dim() == 1 for target in targets]
    if not any(vectors):
        return images, default_collate(targets)
    if not all(vectors) or len({tuple(target.shape) for target in targets}) != 1:
        kinds = sorted({f"a vector of {target.shape[0]}" if vector else type(target).__name__
                        for target, vector in zip(targets, vectors)})
        raise TypeError(f"train_set gives targets of several kinds in one batch ({', '.join(kinds)}): a dataset with "
                        "soft labels must yield every item's target as a float tensor [C] (one-hot for real images)")
    return images, _probabilities(torch.stack(targets), "a soft target of train_set")


def shard_loader(dataset: Any, batch_size: int, world: World, workers: int | None) -> DataLoader:
    """This rank's share of ``dataset`` for evaluation: items ``rank, rank + size, ...``, unpadded, in order."""
    shard = Subset(dataset, range(world.rank, len(dataset), world.size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=loader_workers(workers),
                      pin_memory=world.device.type == "cuda")
