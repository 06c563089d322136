"""What the trainer reads: the joint-training set, the recipe's transforms on any dataset, per-epoch loaders.

Every random draw of an epoch depends only on (seed, epoch, rank): the shuffle
(``DistributedSampler`` seeded with the recipe's seed), the replacement draws
(:class:`~diffii_datasets.augmented.DiffIIAugmented` keyed by its epoch) and the
augmentations (the loader's generator, and the process's torch generator when
images are transformed in the main process). So an epoch replays exactly after a resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from diffii_datasets.augmented import DiffIIAugmented
from diffii_datasets.classify.recipes import Recipe
from diffii_datasets.data import parse_item
from diffii_datasets.distributed import World
from diffii_datasets.store import SyntheticStore

__all__ = ["Transformed", "epoch_loader", "epoch_seed", "joint_training_set", "shard_loader"]


def joint_training_set(store: SyntheticStore, recipe: Recipe) -> DiffIIAugmented:
    """The paper's joint-training set: the store's real images, each replaced with the recipe's probability.

    Replacement by a synthetic image of the item's own class, or (``recipe.class_balanced``)
    of a class drawn with probability proportional to ``1 / (n_c + 1)``; the draws are
    seeded with ``recipe.seed``. ``synthetic_probability=0`` serves the real images only.
    """
    return DiffIIAugmented.from_store(store, synthetic_probability=recipe.synthetic_probability,
                                      class_balanced=recipe.class_balanced, sampling_seed=recipe.seed)


class Transformed(Dataset):
    """``dataset`` with ``transform`` applied to the PIL image of each item; items come out as ``(tensor, label)``."""

    def __init__(self, dataset: Any, transform: Any, name: str) -> None:
        self.dataset = dataset
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = parse_item(self.dataset[index], index, name=self.name)
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


def epoch_loader(dataset: Any, recipe: Recipe, world: World, epoch: int, workers: int) -> DataLoader:
    """This rank's loader for ``epoch`` (from 0): its part of a seeded shuffle, ``batch_size // world.size`` a batch."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=recipe.seed)
    sampler.set_epoch(epoch)
    seed = epoch_seed(recipe.seed, epoch, world.rank)
    torch.manual_seed(seed)  # augmentations drawn in this process (workers=0)
    return DataLoader(dataset, batch_size=recipe.batch_size // world.size, sampler=sampler, num_workers=workers,
                      pin_memory=world.device.type == "cuda", generator=torch.Generator().manual_seed(seed))


def shard_loader(dataset: Any, batch_size: int, world: World, workers: int) -> DataLoader:
    """This rank's share of ``dataset`` for evaluation: items ``rank, rank + size, ...``, unpadded, in order."""
    shard = Subset(dataset, range(world.rank, len(dataset), world.size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=world.device.type == "cuda")
