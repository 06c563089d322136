"""Diversity as the paper measures it (Table 4, Fig. 7): the mean LPIPS over all pairs of a set's images.

Each image goes through the LPIPS backbone once; the distance of every pair is
then taken from the cached features with the network's own layers, exactly as
``lpips.LPIPS.forward`` combines them (unit-normalised features, squared
difference, the calibrated 1x1 linear layers, spatial mean, sum over layers),
so n images cost n backbone passes instead of n(n-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from diffii_datasets import _checks
from diffii_datasets.quality.images import square_crop

__all__ = ["lpips_features", "lpips_input", "mean_pairwise_lpips", "pairwise_lpips"]


def lpips_input(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """``[N, 3, size, size]`` in [-1, 1] (LPIPS's input range), each image :func:`square_crop`-ped to ``size``."""
    import numpy as np

    arrays = [np.asarray(square_crop(image.convert("RGB"), size), dtype=np.float32) for image in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1


@torch.no_grad()
def lpips_features(net: Any, batch: torch.Tensor) -> list[torch.Tensor]:
    """The unit-normalised backbone features of each LPIPS layer for a ``[-1, 1]`` batch."""
    import lpips

    inputs = net.scaling_layer(batch) if net.version == "0.1" else batch
    return [lpips.normalize_tensor(layer) for layer in net.net.forward(inputs)]


@torch.no_grad()
def _distances(net: Any, first: list[torch.Tensor], second: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS between features ``first[k][i]`` and ``second[k][i]``, as ``lpips.LPIPS.forward`` sums it: ``[N]``."""
    import lpips

    total = 0
    for layer, (a, b) in enumerate(zip(first, second)):
        total = total + lpips.spatial_average(net.lins[layer]((a - b) ** 2), keepdim=False)
    return total.flatten()


@torch.no_grad()
def pairwise_lpips(net: Any, images: Sequence[Image.Image], *, size: int = 256, batch_size: int = 32) -> torch.Tensor:
    """LPIPS of every pair ``i < j`` of ``images``, in ``torch.triu_indices(n, n, 1)`` order, float32 on the CPU."""
    _checks.check_int(size, "size", minimum=32)
    _checks.check_int(batch_size, "batch_size", minimum=1)
    count = len(images)
    if count < 2:
        return torch.zeros(0)
    device = next(net.parameters()).device
    chunks = [lpips_features(net, lpips_input(images[start:start + batch_size], size).to(device))
              for start in range(0, count, batch_size)]
    features = [torch.cat(layer) for layer in zip(*chunks)]
    first, second = torch.triu_indices(count, count, 1, device=device)
    distances = []
    for start in range(0, first.numel(), batch_size):
        i, j = first[start:start + batch_size], second[start:start + batch_size]
        distances.append(_distances(net, [f[i] for f in features], [f[j] for f in features]))
    return torch.cat(distances).float().cpu()


def mean_pairwise_lpips(net: Any, images: Sequence[Image.Image], *, size: int = 256, batch_size: int = 32,
                        max_images: int | None = None, seed: int = 0) -> float | None:
    """The mean LPIPS over all pairs of ``images`` (None for fewer than two).

    With ``max_images``, a larger set is first reduced to a random subset of that
    many images, drawn with ``seed`` (the pairs grow quadratically).
    """
    images = list(images)
    if max_images is not None and len(images) > _checks.check_int(max_images, "max_images", minimum=2):
        generator = torch.Generator().manual_seed(_checks.check_seed(seed))
        keep = torch.randperm(len(images), generator=generator)[:max_images].sort().values.tolist()
        images = [images[i] for i in keep]
    if len(images) < 2:
        return None
    return float(pairwise_lpips(net, images, size=size, batch_size=batch_size).double().mean())
