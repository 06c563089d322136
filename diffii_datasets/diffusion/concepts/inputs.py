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
only the crop offsets are on a grid of ``f`` pixels instead of every pixel: each
within ``f / 2`` px of a published offset, a Kolmogorov-Smirnov distance of
0.02-0.11 between the two offset distributions for CUB-like sizes at 224 px
(``ConceptConfig`` has the figures; the README's "Class concepts" section says why
the latents are not cropped from one encoding of the whole image). An image with
more than ``max_crop_positions`` grid offsets (a panorama; at 224 px with the
default 64, an aspect ratio above about 3.3) gets that many evenly spaced offsets
over the published range, so its cost stays bounded; an image whose aspect ratio
exceeds ``max_aspect_ratio`` is refused (:func:`check_image_sizes`).
``crop="center"`` encodes the centre crop, as published with ``--center_crop``;
``crop="squash"`` the whole image resized to a square (0.1), ``"squash_bicubic"``
the same with PIL bicubic (DA-Fusion).

Images are drawn in epochs (``image_order="epochs"``, published): a fresh shuffle of
the images each epoch, each step the next ``batch_size`` of it. That is what Diff-Mix's
shuffled ``DataLoader`` gives under ``accelerate`` on any number of GPUs: its global
batch is a contiguous slice of the epoch's permutation (each rank's ``batch / ranks``
consecutive ones), and the epoch's last, short batch is completed with the first
images of the same permutation (``even_batches``); the next epoch starts a fresh
shuffle. ``"replacement"`` draws each image independently (0.2); class-balanced draws
(``balance_classes``) are always with replacement, as the published
``WeightedRandomSampler``. Draws come from the trainer's CPU generator in a fixed
order, the whole global batch on every rank, so a data-parallel run draws what one
process would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.diffusion.concepts.config import ConceptConfig
from diffii_datasets.diffusion.concepts.writing import format_bytes
from diffii_datasets.images import to_pil_rgb, to_rgb_tensor

__all__ = [
    "Draw",
    "TrainingInputs",
    "check_image_sizes",
    "class_balanced_weights",
    "crop_offsets",
    "resized_size",
]


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


def crop_offsets(long_side: int, side: int, factor: int, max_positions: int | None = None) -> list[int]:
    """Pixel offsets along a resized image's long side of the crops ``crop="random"`` draws from.

    The long side is trimmed (centred) to a multiple of ``factor``; the crops start at
    every multiple of ``factor`` within it. The published offsets are every pixel of
    ``[0, long_side - side]``; each of these is within ``factor / 2`` of one of them.
    When there are more than ``max_positions`` of them, ``max_positions`` offsets evenly
    spaced over the whole published range are taken instead (rounded to the pixel).
    """
    kept = long_side - long_side % factor
    trim = (long_side - kept) // 2
    grid = [trim + step for step in range(0, kept - side + 1, factor)]
    if max_positions is None or len(grid) <= max_positions:
        return grid
    span, gaps = long_side - side, max_positions - 1
    return [(2 * i * span + gaps) // (2 * gaps) for i in range(max_positions)]  # round(i * span / gaps), half up


def check_image_sizes(sizes: Sequence[tuple[int, int]], names: Sequence[str], config: ConceptConfig,
                      resolution: int, factor: int, latent_channels: int, latent_itemsize: int) -> None:
    """Refuse images wider or taller than ``config.max_aspect_ratio`` to one; warn about those whose crops are bounded.

    ``sizes`` are the images' ``(width, height)``. With ``crop="random"`` an image with more
    grid offsets than ``config.max_crop_positions`` (or, with no bound, than the default
    bound) gets one warning for all such images, naming the largest and its cost: VAE
    encodings and cached latent memory.
    """
    for (width, height), name in zip(sizes, names):
        ratio = max(width, height) / min(width, height)
        if config.max_aspect_ratio is not None and ratio > config.max_aspect_ratio:
            raise ValueError(
                f"{name} is {width} x {height} pixels, an aspect ratio of {ratio:.3g}:1; concept learning accepts "
                f"at most {config.max_aspect_ratio:g}:1 (ConceptConfig.max_aspect_ratio, --concept-max-aspect-ratio): "
                f"a square {resolution} px input shows a 1/{ratio:.3g} slice of it or squashes it {ratio:.3g}-fold. "
                "Crop the image to its subject, or raise max_aspect_ratio")
    if config.crop != "random":
        return
    bound = config.max_crop_positions
    limit = bound or ConceptConfig().max_crop_positions
    counts = [len(crop_offsets(max(resized_size(width, height, resolution)), resolution, factor))
              for width, height in sizes]
    over = [i for i, count in enumerate(counts) if count > limit]
    if not over:
        return
    worst = max(over, key=lambda i: counts[i])
    width, height = sizes[worst]
    per_crop = 2 * (2 if config.vae_posterior == "sample" else 1) * latent_channels \
        * (resolution // factor) ** 2 * latent_itemsize  # both flips, mean (and std)

    def cost(positions: int) -> str:
        return f"{2 * positions:,} VAE encodings and {format_bytes(positions * per_crop)} of cached latents"

    resized = resized_size(width, height, resolution)
    what = (f"{len(over)} training image(s) have more than {limit} crop offsets, e.g. {names[worst]} "
            f"({width} x {height} px, {resized[0]} x {resized[1]} at {resolution} px: {counts[worst]:,} offsets, "
            f"{cost(counts[worst])})")
    if bound is None:
        warn_at_caller(f"{what}; max_crop_positions=None encodes every one of them. Set max_crop_positions "
                       f"(default {limit}) to bound the cost")
    else:
        warn_at_caller(f"{what}; each gets {bound} evenly spaced offsets instead ({cost(bound)} per image), "
                       "a little further from the published crops (ConceptConfig.max_crop_positions)")


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
        self.epochs = config.image_order == "epochs" and self.weights is None
        self.order = torch.empty(0, dtype=torch.long)  # image_order="epochs": this epoch's shuffled images
        self.position = 0  # how many of them have been drawn

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
        if self.config.crop == "squash_bicubic":  # DA-Fusion's TextualInversionDataset
            return [to_rgb_tensor(pil.resize((side, side), Image.Resampling.BICUBIC), name=name)]
        size = resized_size(*pil.size, side)
        if size != pil.size:
            pil = pil.resize(size, Image.Resampling.BILINEAR)
        width, height = pil.size
        long_side = max(width, height)
        if self.config.crop == "center":  # torchvision's CenterCrop
            offsets = [int(round((long_side - side) / 2.0))]
        else:
            offsets = crop_offsets(long_side, side, factor, self.config.max_crop_positions)
        # Cut in PIL: only the crops become float tensors, never the whole (maybe very long) resized image.
        boxes = [(o, 0, o + side, side) if width >= height else (0, o, side, o + side) for o in offsets]
        return [to_rgb_tensor(pil.crop(box), name=name) for box in boxes]

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
        """The batch's images, mirror flags and crops (see the module: epochs, with replacement, or balanced)."""
        if self.weights is not None:
            index = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        elif self.epochs:
            index = self._next_in_epoch(batch_size, generator)
        else:
            index = torch.randint(len(self), (batch_size,), generator=generator)
        flip = (torch.randint(2, (batch_size,), generator=generator) if self.config.random_flip
                else torch.zeros(batch_size, dtype=torch.long))
        if self.config.crop == "random":
            crop = (torch.rand(batch_size, generator=generator) * self.crops[index]).long()
        else:
            crop = torch.zeros(batch_size, dtype=torch.long)
        return Draw(index, flip, crop)

    def _next_in_epoch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """The epoch's next ``batch_size`` images; a short last batch is completed from the epoch's start."""
        if self.position >= len(self.order):
            self.order = torch.randperm(len(self), generator=generator)
            self.position = 0
        index = self.order[self.position:self.position + batch_size]
        self.position += batch_size
        if len(index) < batch_size:  # accelerate's even_batches: loop back (round and round, if the batch is larger)
            cycled = self.order.repeat(-(-batch_size // len(self.order)))
            index = torch.cat([index, cycled[:batch_size - len(index)]])
        return index

    def order_state(self) -> dict[str, torch.Tensor]:
        """Where the epoch stands, for a checkpoint (nothing unless drawing in epochs)."""
        if not self.epochs:
            return {}
        return {"order": self.order.clone(), "order_position": torch.tensor(self.position)}

    def load_order_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.epochs:
            self.order, self.position = tensors["order"].clone(), int(tensors["order_position"])

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
