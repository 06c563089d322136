"""The authors' label-smoothing loss (their ``LabelSmoothing.py``, ``LabelSmoothingLoss``).

The true class gets ``1 - s`` and each other class ``s / (C - 1)``; PyTorch's built-in
``label_smoothing`` instead gives every class ``s / C`` on top of ``1 - s``, a slightly
different target, so the published one is written out here.
"""

from __future__ import annotations

import torch

__all__ = ["smoothed_cross_entropy"]


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean over the batch of ``-sum_c q_c log softmax(logits)_c`` with the authors' smoothed target ``q``."""
    log_probs = logits.float().log_softmax(dim=-1)
    classes = log_probs.shape[-1]
    with torch.no_grad():
        smoothed = torch.full_like(log_probs, smoothing / (classes - 1))
        smoothed.scatter_(1, target.unsqueeze(1), 1.0 - smoothing)
    return (-smoothed * log_probs).sum(dim=-1).mean()
