"""Mixup and CutMix as Diff-II's ``train_classifier.py`` runs them (with its ``utils.py``), drawn for replay.

The authors (``train_classifier.py`` lines 339-342 and 428-438, ``utils.py`` lines 64-117):

- CutMix (``--use_cutmix``): the training set is wrapped in ``CutMix(prob=mixup_probability)``,
  0.3 by default. Each item, when ``r <= p`` for ``r ~ U[0, 1)``, draws ``lam ~ Beta(1, 1)``, a
  partner uniformly from the whole set (itself included) and a box from
  ``cutmix.utils.rand_bbox``: ``int(n * sqrt(1 - lam))`` pixels along each image axis around a
  uniform centre, clipped to the image. The partner's pixels fill the box and the target
  becomes ``lam' t + (1 - lam') t_partner``, ``lam' = 1 - box area / image area``.
  (``rand_bbox`` calls a ``(C, H, W)`` size's ``H`` "W": its first coordinate runs over rows.)
- Mixup (``--use_mixup``): per batch, when ``u < p``: ``lam ~ Beta(1, 1)``, a random
  permutation of the batch, ``x = lam x + (1 - lam) x[perm]``, the same for the targets.
- Either one turns every target into a vector: with Mixup alone the set is wrapped in
  ``CutMix(prob=0)`` just for that (line 342). So the loss takes its soft-target branch for
  every item, and the training accuracy compares the prediction with the target's argmax.

The authors draw from the global NumPy, Python and torch generators (NumPy unseeded in the
main process, per worker in the loaders). Here every draw comes from a generator keyed by
(seed, epoch, item) for CutMix and (seed, epoch, rank) for Mixup, taken in the authors'
order, so a resumed run replays its epochs, and CutMix draws the same boxes whatever the
number of loader workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from diffii_datasets.classify.data import training_target

__all__ = ["CutMixDraw", "CutMixed", "cutmix", "cutmix_box", "cutmix_generator", "draw_cutmix", "draw_mixup",
           "mixup", "mixup_generator"]

_CUTMIX_STREAM, _MIXUP_STREAM = 1, 2  # keep these draws apart from others keyed by the same (seed, epoch, ...)


@dataclass(frozen=True)
class CutMixDraw:
    """The random part of one item's CutMix: ``lam ~ Beta(1, 1)``, the partner item, the box centre (row, column)."""

    lam: float
    partner: int
    row: int
    column: int


def cutmix_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item's CutMix draws in one epoch."""
    return np.random.default_rng([seed, epoch, index, _CUTMIX_STREAM])


def draw_cutmix(rng: np.random.Generator, probability: float, num_items: int, rows: int,
                columns: int) -> CutMixDraw | None:
    """One item's draws in the authors' order (``r``, ``lam``, partner, centre row, centre column); None: no mixing."""
    if rng.random() > probability:  # the authors mix when r <= prob
        return None
    lam = float(rng.beta(1.0, 1.0))
    partner = int(rng.integers(num_items))
    return CutMixDraw(lam, partner, int(rng.integers(rows)), int(rng.integers(columns)))


def cutmix_box(rows: int, columns: int, lam: float, row: int, column: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of ``rand_bbox``'s box: ``int(n * sqrt(1 - lam))`` per axis, clipped."""
    ratio = math.sqrt(1.0 - lam)
    cut_rows, cut_columns = int(rows * ratio), int(columns * ratio)
    top, bottom = (min(max(value, 0), rows) for value in (row - cut_rows // 2, row + cut_rows // 2))
    left, right = (min(max(value, 0), columns) for value in (column - cut_columns // 2, column + cut_columns // 2))
    return top, left, bottom, right


def cutmix(image: torch.Tensor, target: torch.Tensor, partner_image: torch.Tensor, partner_target: torch.Tensor,
           box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` with ``box`` taken from ``partner_image`` (a new tensor) and the target mixed by the box's area."""
    top, left, bottom, right = box
    rows, columns = image.shape[-2:]
    mixed = image.clone()
    mixed[:, top:bottom, left:right] = partner_image[:, top:bottom, left:right]
    lam = 1 - ((bottom - top) * (right - left) / (columns * rows))
    return mixed, target * lam + partner_target * (1.0 - lam)


class CutMixed(Dataset):
    """``dataset`` (items ``(image tensor [C, H, W], target)``) with CutMix at ``probability``; targets as vectors.

    Every target comes out as a float32 probability vector of ``num_classes`` (a class
    index one-hot), also with ``probability=0``: what Mixup needs. The draws of item ``i``
    in epoch ``e`` depend only on ``(seed, e, i)``.
    """

    def __init__(self, dataset: Any, num_classes: int, probability: float, seed: int) -> None:
        self.dataset, self.num_classes, self.probability, self.seed = dataset, num_classes, probability, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.dataset[index]
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise TypeError(f"train_set[{index}] gives a {type(image).__name__}, not an image tensor [C, H, W]: "
                            "CutMix and Mixup work on the transformed images")
        target = training_target(target, f"the target of train_set[{index}]")
        if not isinstance(target, torch.Tensor):
            target = torch.nn.functional.one_hot(torch.tensor(target), self.num_classes).float()
        return image, target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self._item(index)
        if self.probability == 0:
            return image, target
        draw = draw_cutmix(cutmix_generator(self.seed, self.epoch, index), self.probability, len(self),
                           *image.shape[-2:])
        if draw is None:
            return image, target
        partner_image, partner_target = self._item(draw.partner)
        box = cutmix_box(*image.shape[-2:], draw.lam, draw.row, draw.column)
        return cutmix(image, target, partner_image, partner_target, box)


def mixup_generator(seed: int, epoch: int, rank: int) -> np.random.Generator:
    """The generator of one rank's Mixup draws in one epoch."""
    return np.random.default_rng([seed, epoch, rank, _MIXUP_STREAM])


def draw_mixup(rng: np.random.Generator, probability: float, batch_size: int) -> tuple[float, np.ndarray] | None:
    """One batch's draws in the authors' order (``u``, ``lam``, permutation); None: the batch is not mixed."""
    if not rng.random() < probability:
        return None
    lam = float(rng.beta(1.0, 1.0))
    return lam, rng.permutation(batch_size)


def mixup(images: torch.Tensor, targets: torch.Tensor, lam: float,
          permutation: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam x + (1 - lam) x[perm]`` for the images and the (vector) targets, as ``mixup_data`` computes it."""
    index = torch.as_tensor(permutation).to(images.device)
    return lam * images + (1 - lam) * images[index, :], lam * targets + (1 - lam) * targets[index]
