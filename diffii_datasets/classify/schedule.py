"""The published learning-rate schedule: linear warm-up, then cosine annealing, stepped once per optimiser step.

The authors (``train_classifier.py`` lines 371-373 and 466-467) wrap
``CosineAnnealingLR(T_max=T)`` in ``pytorch_warmup.LinearWarmup(warmup_period=W)`` and
step both after every optimiser step, with ``T = epochs * len(train_set) // batch_size``
and ``W = max(int(0.1 * T), 1)``. The dampening multiplies the cosine value by
``min(1, (k + 1) / W)``, already before the first step, so step ``k`` (from 0) runs at::

    lr_k = lr * min(1, (k + 1) / W) * (1 + cos(pi * k / T)) / 2

``T`` counts whole batches of the dataset, while an epoch also runs the last partial
batch, so a run takes more steps than ``T`` and the cosine runs past its period and
rises again at the end, exactly as the authors' does. How far depends on how much of a
batch the last one is: on the few-shot ResNet-50 settings, Pet (185 or 370 images in
batches of 256: ``T`` = 92 of 128 steps, 185 of 256) ends at about 32 % of ``lr``, Cars
at 0.45 %, CUB and Aircraft at 0.1 to 0.13 %; with ViT-B/16 (batch 32) at most 0.35 %; on
the long tail (batch 128) about 1 % or less, depending on the subset's size.
"""

from __future__ import annotations

import math
from typing import Any

from diffii_datasets import _checks

__all__ = ["lr_factor", "published_total_steps", "warmup_cosine", "warmup_steps"]


def published_total_steps(epochs: int, num_items: int, batch_size: int) -> int:
    """``T`` of the cosine: ``epochs * num_items // batch_size`` (at least 1), as the authors compute it."""
    epochs = _checks.check_int(epochs, "epochs", minimum=1)
    num_items = _checks.check_int(num_items, "num_items", minimum=1)
    batch_size = _checks.check_int(batch_size, "batch_size", minimum=1)
    return max(epochs * num_items // batch_size, 1)


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    """``W`` of the warm-up: ``max(int(warmup_fraction * total_steps), 1)``."""
    return max(int(warmup_fraction * total_steps), 1)


def lr_factor(step: int, total_steps: int, warmup: int) -> float:
    """The multiple of the peak learning rate at optimiser step ``step`` (counted from 0)."""
    return min(1.0, (step + 1) / warmup) * (1 + math.cos(math.pi * step / total_steps)) / 2


def warmup_cosine(optimizer: Any, total_steps: int, warmup_fraction: float) -> Any:
    """A ``LambdaLR`` on ``optimizer`` that follows :func:`lr_factor`; call ``step()`` after each optimiser step."""
    from torch.optim.lr_scheduler import LambdaLR

    warmup = warmup_steps(total_steps, warmup_fraction)
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup))
