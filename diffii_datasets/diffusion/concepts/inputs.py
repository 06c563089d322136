"""What one concept-learning step sees: which images, cropped and flipped how, and their latents.

The published recipe (Diff-Mix's ``train_lora.py --resolution 224 --random_flip``)
does this every step for every drawn image: resize the short side to 224 (PIL
bilinear), cut a fresh random 224 x 224 crop, flip with probability 1/2, run the
VAE encoder and take a fresh sample of its posterior. The VAE pass is what costs,
so here it runs once per crop the learner can draw, not once per step: with
``crop="random"`` every crop whose offset along the long side is a multiple of the
VAE's downsampling factor ``f`` (8 for SD-1.5), and its mirror image, is encoded
once (the long side first trimmed, centred, to a multiple of ``f``), and the
posterior's mean and standard deviation are kept (times the VAE scaling factor, in
the VAE's dtype). A step draws an image, one of its crops and a flip, and samples
``mean + std * eps`` with a fresh ``eps`` (``vae_posterior="sample"``; ``"mean"``
takes the mean). Each input is so exactly one the published pipeline produces;
only the crop offsets are on a grid of ``f`` pixels instead of every pixel (the
README's "Class concepts" section has the figures, and why the latents are not
cropped from one encoding of the whole image). ``crop="center"`` encodes the
centre crop, as published with ``--center_crop``; ``crop="squash"`` the whole
image resized to a square (0.1).

Draws come from the trainer's CPU generator in a fixed order, the whole global
batch on every rank, so a data-parallel run draws what one process would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from diffii_datasets.diffusion.concepts.config import ConceptConfig
from diffii_datasets.images import to_pil_rgb, to_rgb_tensor

__all__ = ["Draw", "TrainingInputs", "class_balanced_weights", "crop_offsets", "resized_size"]


@dataclass(frozen=True)
class Draw:
    """The images of one step's batch: ``index`` into the training images, ``flip`` (0/1) and ``crop``, the
    index of the crop among the image's :func:`crop_offsets` (0 without random crops)."""

    index: torch.Tensor
    flip: torch.Tensor
    crop: torch.Tensor

    def rows(self, rows: torch.Tensor) -> Draw:
        return Draw(self.index[rows], self.flip[rows], self.crop[rows])


def resized_size(width: int, height: int, side: int) -> tuple[int, int]:
    """``(width, height)`` after resizing the short side to ``side``, as torchvision's ``Resize(side)`` computes it."""
    if width <= height:
        return side, int(side * height / width)
    return int(side * width / height), side


def crop_offsets(long_side: int, side: int, factor: int) -> list[int]:
    """Pixel offsets along a resized image's long side of the crops ``crop="random"`` draws from.

    The long side is trimmed (centred) to a multiple of ``factor``; the crops start at
    every multiple of ``factor`` within it. The published offsets are every pixel of
    ``[0, long_side - side]``; each of these is within ``factor / 2`` of one of them.
    """
    kept = long_side - long_side % factor
    trim = (long_side - kept) // 2
    return [trim + step for step in range(0, kept - side + 1, factor)]


def class_balanced_weights(labels: Sequence[int]) -> torch.Tensor:
    """Per-image draw weights ``1 / n_c`` (float64), as the published long-tail sampler (alpha 1)."""
    labels = torch.as_tensor(labels)
    counts = torch.bincount(labels).double()
    return 1.0 / counts[labels]


class TrainingInputs:
    """The training images' cached VAE posteriors (one per crop and flip), and each step's draws and latents."""

    def __init__(self, labels: Sequence[int], config: ConceptConfig, resolution: int) -> None:
        self.labels = torch.as_tensor(list(labels))
        self.config = config
        self.resolution = resolution
        self.weights = class_balanced_weights(self.labels) if config.balance_classes else None
        self.means: list[torch.Tensor] = []  # per image [crops, 2 (mirror), C, side / f, side / f]
        self.stds: list[torch.Tensor] = []  # the same shapes; empty with vae_posterior="mean"
        self.crops = torch.ones(len(self.labels), dtype=torch.long)  # crops per image

    def __len__(self) -> int:
        return len(self.labels)

    # -- once: the crops and the VAE -------------------------------------------------------------------------------

    def image_crops(self, image: Any, name: str, factor: int) -> list[torch.Tensor]:
        """The float32 ``[3, side, side]`` crops in [0, 1] of one image that may be drawn (before any flip)."""
        side = self.resolution
        if self.config.crop == "squash":  # 0.1's path, kept as it was
            tensor = to_rgb_tensor(image, name=name)
            if tensor.shape[-2:] != (side, side):
                tensor = F.interpolate(tensor[None], size=(side, side), mode="bilinear", antialias=True,
                                       align_corners=False)[0]
            return [tensor]
        pil = to_pil_rgb(image, name=name)
        size = resized_size(*pil.size, side)
        if size != pil.size:
            pil = pil.resize(size, Image.Resampling.BILINEAR)
        tensor = to_rgb_tensor(pil, name=name)
        height, width = tensor.shape[-2:]
        axis = -1 if width >= height else -2
        if self.config.crop == "center":  # torchvision's CenterCrop
            offsets = [int(round((max(height, width) - side) / 2.0))]
        else:
            offsets = crop_offsets(max(height, width), side, factor)
        return [tensor.narrow(axis, offset, side) for offset in offsets]

    @torch.no_grad()
    def encode(self, images: Sequence[Any], names: Sequence[str], vae: Any, device: torch.device,
               factor: int, progress: bool) -> None:
        """VAE-encode every crop of every image and its mirror image once, ``batch_size`` crops at a time."""
        if self.resolution % factor:
            raise ValueError(f"the concept resolution {self.resolution} must be a multiple of the VAE's "
                             f"downsampling factor {factor}")
        means: list[list[torch.Tensor]] = [[] for _ in images]
        stds: list[list[torch.Tensor]] = [[] for _ in images]
        sample = self.config.vae_posterior == "sample"
        bar = tqdm(total=len(images), desc="Encoding images", disable=not progress)
        for chunk in self._crop_batches(images, names, factor, bar):
            pixels = torch.stack([crop for _, crop in chunk])
            pixels = torch.cat([pixels, pixels.flip(-1)]).to(device, vae.dtype) * 2 - 1
            posterior = vae.encode(pixels).latent_dist
            scale = vae.config.scaling_factor
            # kept in the VAE's dtype: the float32 copy made at each step holds the same values
            chunk_means = (posterior.mean * scale).cpu().unflatten(0, (2, -1))
            chunk_stds = (posterior.std * scale).cpu().unflatten(0, (2, -1)) if sample else None
            for row, (index, _) in enumerate(chunk):
                means[index].append(chunk_means[:, row])
                if sample:
                    stds[index].append(chunk_stds[:, row])
        bar.close()
        self.means = [torch.stack(crops).contiguous() for crops in means]
        self.stds = [torch.stack(crops).contiguous() if sample else torch.empty(0) for crops in stds]
        self.crops = torch.tensor([len(crops) for crops in means])

    def _crop_batches(self, images: Sequence[Any], names: Sequence[str], factor: int,
                      bar: tqdm) -> Iterator[list[tuple[int, torch.Tensor]]]:
        """``(image index, crop)`` in order, ``batch_size`` at a time, one image's pixels in memory at once."""
        pending: list[tuple[int, torch.Tensor]] = []
        for index, (image, name) in enumerate(zip(images, names)):
            pending += [(index, crop) for crop in self.image_crops(image, name, factor)]
            while len(pending) >= self.config.batch_size:
                yield pending[:self.config.batch_size]
                pending = pending[self.config.batch_size:]
            bar.update(1)
        if pending:
            yield pending

    # -- every step ------------------------------------------------------------------------------------------------

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(C, side / f, side / f)``: one input latent."""
        return tuple(self.means[0].shape[2:])

    def draw(self, batch_size: int, generator: torch.Generator) -> Draw:
        """The batch's images, mirror flags and crops (images uniform, or class-balanced with replacement)."""
        if self.weights is None:
            index = torch.randint(len(self), (batch_size,), generator=generator)
        else:
            index = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        flip = (torch.randint(2, (batch_size,), generator=generator) if self.config.random_flip
                else torch.zeros(batch_size, dtype=torch.long))
        if self.config.crop == "random":
            crop = (torch.rand(batch_size, generator=generator) * self.crops[index]).long()
        else:
            crop = torch.zeros(batch_size, dtype=torch.long)
        return Draw(index, flip, crop)

    def posterior_noise(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | None:
        """The step's posterior sample noise ``eps`` (``None`` when latents are the posterior mean)."""
        if self.config.vae_posterior != "sample":
            return None
        return torch.randn((batch_size, *self.latent_shape), generator=generator)

    def latents(self, draw: Draw, eps: torch.Tensor | None) -> torch.Tensor:
        """The batch's float32 latents ``[b, C, side / f, side / f]`` on the CPU: the mean, plus ``std * eps``."""
        index, crop, flip = draw.index, draw.crop, draw.flip
        means = torch.stack([self.means[i][c, f] for i, c, f in zip(index.tolist(), crop.tolist(), flip.tolist())])
        if eps is None:
            return means.float()
        stds = torch.stack([self.stds[i][c, f] for i, c, f in zip(index.tolist(), crop.tolist(), flip.tolist())])
        return means.float() + stds.float() * eps
