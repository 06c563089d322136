"""Accuracy of a classifier on a dataset: overall, per class and per group, exactly over every item.

Each rank predicts its share of the items (:func:`~diffii_datasets.classify.data.shard_loader`)
and the predictions are summed into one vector on every rank, so the figure counts
every item once (the authors' ``DistributedSampler`` pads the last batch with repeats
and averages per-batch accuracies; the two agree up to those repeats).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from diffii_datasets.classify.data import shard_loader
from diffii_datasets.distributed import World

__all__ = ["Evaluation", "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    """Predictions and labels of every item, in dataset order."""

    predictions: list[int]
    labels: list[int]

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy in percent."""
        return 100.0 * sum(p == t for p, t in zip(self.predictions, self.labels)) / len(self.labels)

    def class_correct(self, num_classes: int) -> list[int]:
        """Correct predictions per true class."""
        return _count(self.labels, [p == t for p, t in zip(self.predictions, self.labels)], num_classes)

    def group_correct(self, groups: list[int], num_groups: int) -> list[int]:
        """Correct predictions per group, ``groups[i]`` being the group of item ``i``."""
        return _count(groups, [p == t for p, t in zip(self.predictions, self.labels)], num_groups)


def _count(keys: list[int], correct: list[bool], size: int) -> list[int]:
    counts = [0] * size
    for key, hit in zip(keys, correct):
        counts[key] += int(hit)
    return counts


def evaluate(model: Any, dataset: Any, *, batch_size: int, world: World | None = None, workers: int | None = 0,
             autocast_dtype: torch.dtype | None = None) -> Evaluation:
    """Predict every item of ``dataset`` (yielding ``(tensor, label)``) with ``model`` on ``world.device``.

    Under a launch every rank must call this; each gets the whole :class:`Evaluation`.
    """
    world = world or World()
    device = world.device
    coded = torch.zeros(2, len(dataset), dtype=torch.long, device=device)  # prediction + 1 and label + 1; 0: other rank
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    position = world.rank
    with torch.no_grad():
        for images, labels in shard_loader(dataset, batch_size, world, workers):
            images = images.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                predicted = model(images).argmax(dim=1)
            indices = torch.arange(position, position + world.size * len(labels), world.size, device=device)
            coded[0, indices] = predicted + 1
            coded[1, indices] = labels.to(device) + 1
            position += world.size * len(labels)
    model.train(was_training)
    coded = world.all_reduce_sum(coded).cpu()
    return Evaluation((coded[0] - 1).tolist(), (coded[1] - 1).tolist())
