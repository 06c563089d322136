"""Distance between the synthetic and the real distribution: KID (Binkowski et al., 2018) via torchmetrics.

KID is an unbiased estimate (the squared MMD with the polynomial kernel
``k(x, y) = (x.y / d + 1)^3``), so it is meaningful with a handful of images, where
FID is not. Its usual features come from an Inception network whose weights would
be one more download; the features here are the CLIP image embeddings the
faithfulness measures already computed, scaled to norm ``sqrt(d)`` so that the
kernel reads ``(cos(x, y) + 1)^3`` whatever CLIP model is used. The subsets are
drawn with a fixed seed, so a report is reproducible.
"""

from __future__ import annotations

import math
import warnings

import torch

from diffii_datasets import _checks

__all__ = ["kernel_inception_distance", "kid_features"]


def kid_features(unit_embeddings: torch.Tensor) -> torch.Tensor:
    """Unit-norm embeddings ``[N, d]`` scaled to norm ``sqrt(d)``: the polynomial kernel becomes ``(cos + 1)^3``."""
    return unit_embeddings.float() * math.sqrt(unit_embeddings.shape[-1])


def kernel_inception_distance(real: torch.Tensor, synthetic: torch.Tensor, *, subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """``(mean, std)`` of torchmetrics' KID over ``subsets`` random subsets of features ``[N, d]``.

    Each subset holds ``min(max_subset_size, len(real), len(synthetic))`` images of
    each side; None when that is below 2 (the estimate needs pairs).
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    _checks.check_int(subsets, "subsets", minimum=1)
    _checks.check_int(max_subset_size, "max_subset_size", minimum=2)
    size = min(max_subset_size, real.shape[0], synthetic.shape[0])
    if size < 2:
        return None
    with warnings.catch_warnings():  # it warns that it keeps every feature in memory: ours are already there
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=subsets, subset_size=size)
    metric.update(real.float().cpu(), real=True)
    metric.update(synthetic.float().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):  # the subsets come from the global generator: seed it, then restore it
        torch.manual_seed(_checks.check_seed(seed))
        mean, std = metric.compute()
    return float(mean), float(std)
