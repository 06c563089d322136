"""The authors' label-smoothing loss (their ``LabelSmoothing.py``, ``LabelSmoothingLoss``), on hard and soft targets.

Hard targets (class indices): the true class gets ``1 - s`` and each other class
``s / (C - 1)``; PyTorch's built-in ``label_smoothing`` instead gives every class ``s / C``
on top of ``1 - s``, a slightly different target, so the published one is written out here.

Soft targets (probability vectors ``t``, shape ``[N, C]``: Mixup, CutMix, Diff-Mix's soft
labels): ``q = s / (C - 1) + (1 - s) t``, the class's other branch. Diff-II's
``LabelSmoothing.py`` and Diff-Mix's ``downstream_tasks/losses.py`` hold the same class, so
Diff-II's trainer with ``--use_mixup`` / ``--use_cutmix`` and Diff-Mix's ``train_hub.py``
(``--criterion ls``, its default) train on this loss. On a one-hot ``t`` the two branches
do not agree: the soft one gives the true class ``1 - s + s / (C - 1)`` (the target sums to
``1 + s / (C - 1)``), so its loss is larger by ``s / (C - 1)`` times the cross-entropy of
the true class (``5e-4`` times for CUB's 200 classes at ``s = 0.1``, ``2.8e-3`` for Pet's 37).
Each branch is kept as published: a hard target always takes the hard one, and a
run with Mixup or CutMix turns every target into a vector, as the authors' does.
"""

from __future__ import annotations

import torch

__all__ = ["smoothed_cross_entropy"]


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean over the batch of ``-sum_c q_c log softmax(logits)_c`` with the authors' smoothed target ``q``.

    ``target``: class indices ``[N]`` (an integer tensor) or probability vectors ``[N, C]``
    (a float tensor); see the module docstring for ``q`` in each case.
    """
    log_probs = logits.float().log_softmax(dim=-1)
    classes = log_probs.shape[-1]
    with torch.no_grad():
        smoothed = torch.full_like(log_probs, smoothing / (classes - 1))
        if target.dim() == 1:
            smoothed.scatter_(1, target.unsqueeze(1), 1.0 - smoothing)
        else:
            smoothed = smoothed + target.float() * (1.0 - smoothing)
    return (-smoothed * log_probs).sum(dim=-1).mean()
