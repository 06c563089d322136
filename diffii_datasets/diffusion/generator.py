"""Per-class Diff-II generation: inversion pool, random pairs, circle interpolation, two-stage denoising.

For one class, :func:`invert_class` builds the inversion pool (one x_T per
training image) and :func:`generate_class` turns it into ``int(expansion_rate * N)``
synthetic images, streamed batch by batch with their provenance. All randomness
of a class comes from one CPU ``torch.Generator`` seeded by
:func:`class_seed` ``(seed, class_index)`` and is drawn up front in a fixed
order, so a class's images do not depend on which other classes run, in what
order, in how many processes, on which device, or with which batch size
(beyond float rounding).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffii_datasets.diffusion.denoise import suffix_steps, two_stage_denoise
from diffii_datasets.diffusion.interpolation import (
    INTERPOLATION_METHODS,
    interpolate,
    interpolation_angle,
    lam_upper_bound,
)
from diffii_datasets.diffusion.inversion import ddim_invert
from diffii_datasets.diffusion.pipeline import AUTOCAST_DTYPES, PromptEncoder, check_latents, latent_shape
from diffii_datasets.diffusion.prompts import build_prompt, normalize_suffix

__all__ = [
    "INTERPOLATIONS",
    "ClassPlan",
    "GenerationConfig",
    "SyntheticSample",
    "class_seed",
    "generate_class",
    "invert_class",
    "num_synthetic",
    "plan_class",
]

logger = logging.getLogger(__name__)

INTERPOLATIONS = INTERPOLATION_METHODS


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _is_positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value > 0


@dataclass(frozen=True)
class GenerationConfig:
    """Every knob of the generation engine, with the paper's defaults (5-shot few-shot setting)."""

    expansion_rate: float = 5.0
    split_ratio: float = 0.3
    inversion_steps: int = 200
    inversion_guidance_scale: float = 1.0
    denoising_steps: int = 25
    guidance_scale: float = 7.5
    interpolation: str = "circle"
    batch_size: int = 8
    resolution: int | None = None  # None: the pipeline's own (unet.config.sample_size * vae_scale_factor)
    autocast_dtype: str | None = None  # "bfloat16"/"float16": UNet and VAE under autocast (opt-in speed knob)

    def __post_init__(self) -> None:
        if not _is_number(self.expansion_rate) or self.expansion_rate <= 0:
            raise ValueError(f"expansion_rate must be a finite number > 0, got {self.expansion_rate!r}")
        if not _is_number(self.split_ratio) or not 0 <= self.split_ratio <= 1:
            raise ValueError(f"split_ratio must be a number in [0, 1], got {self.split_ratio!r}")
        for name in ("inversion_steps", "denoising_steps", "batch_size"):
            if not _is_positive_int(getattr(self, name)):
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("inversion_guidance_scale", "guidance_scale"):
            if not _is_number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.resolution is not None and not _is_positive_int(self.resolution):
            raise ValueError(f"resolution must be None or a positive int, got {self.resolution!r}")
        if self.autocast_dtype is not None and self.autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast_dtype must be None or one of {AUTOCAST_DTYPES}, got {self.autocast_dtype!r}")


@dataclass
class SyntheticSample:
    """One generated image and where it came from."""

    index: int  # 0..count-1 within the class, in generation order
    image: Image.Image  # RGB
    source_indices: tuple[int, ...]  # the pair's image indices (sorted); () when started from noise
    lam: float | None  # interpolation strength; None when started from noise
    suffix: str  # normalised suffix of the first stage ("" if none)
    seed: int  # the class seed, class_seed(seed, class_index)


def class_seed(seed: int, class_index: int) -> int:
    """A 63-bit seed for one class, mixed from the run's seed and the class index (NumPy ``SeedSequence``)."""
    for name, value in (("seed", seed), ("class_index", class_index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    state = np.random.SeedSequence([int(seed), int(class_index)]).generate_state(2, dtype=np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) >> 1


def num_synthetic(num_images: int, expansion_rate: float) -> int:
    """How many synthetic images a class of ``num_images`` gets: ``int(expansion_rate * num_images)``."""
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
        raise ValueError(f"num_images must be a non-negative int, got {num_images!r}")
    if not _is_number(expansion_rate) or expansion_rate <= 0:
        raise ValueError(f"expansion_rate must be a finite number > 0, got {expansion_rate!r}")
    return int(expansion_rate * num_images)


@dataclass(frozen=True)
class ClassPlan:
    """The random draws of one class, made before any diffusion work.

    ``pairs`` ``[count, 2]`` (sorted image indices) and ``uniforms`` ``[count]``
    (``lam = u * lam_upper_bound(alpha)``) when the class has at least two images;
    ``noise`` ``[count, C, h, w]`` when it has one; ``suffix_choices`` ``[count]``
    when the suffixed stage runs.
    """

    count: int
    pairs: torch.Tensor | None
    uniforms: torch.Tensor | None
    suffix_choices: torch.Tensor | None
    noise: torch.Tensor | None


def plan_class(num_images: int, count: int, num_suffixes: int, latent_size: tuple[int, int, int],
               generator: torch.Generator) -> ClassPlan:
    """Draw, in this order: pairs, lam uniforms, suffix choices (if ``num_suffixes``), noise (if one image).

    Pairs are uniformly random unordered pairs of distinct images, drawn
    independently for every synthetic image.
    """
    pairs = uniforms = suffix_choices = noise = None
    if num_images >= 2:
        first = torch.randint(0, num_images, (count,), generator=generator)
        second = torch.randint(0, num_images - 1, (count,), generator=generator)
        second = second + (second >= first).long()  # uniform over the other images
        pairs = torch.sort(torch.stack([first, second], dim=1), dim=1).values
        uniforms = torch.rand(count, generator=generator, dtype=torch.float64)
    if num_suffixes:
        suffix_choices = torch.randint(0, num_suffixes, (count,), generator=generator)
    if num_images == 1:
        noise = torch.randn((count, *latent_size), generator=generator)
    return ClassPlan(count, pairs, uniforms, suffix_choices, noise)


def _check_config(config: Any) -> GenerationConfig:
    if not isinstance(config, GenerationConfig):
        raise TypeError(f"config must be a GenerationConfig, got {type(config).__name__}")
    return config


def invert_class(pipe, images: Sequence[Any], tokens: str, metaclass: str, config: GenerationConfig) -> torch.Tensor:
    """The inversion pool of one class: x_T ``[N, C, h, w]``, float32 on the CPU, one row per image.

    Each image (anything :func:`~diffii_datasets.images.to_rgb_tensor` accepts)
    is inverted with the prompt ``"a photo of a <tokens> <metaclass>"``.
    """
    config = _check_config(config)
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a sequence of images, got {type(images).__name__}")
    prompt = build_prompt(tokens, metaclass)
    inversions = ddim_invert(pipe, images, prompt, config.inversion_steps, config.inversion_guidance_scale,
                             config.batch_size, resolution=config.resolution, autocast_dtype=config.autocast_dtype)
    return inversions.float().cpu()


def _normalized_suffixes(suffixes: Sequence[str], metaclass: str) -> list[str]:
    if isinstance(suffixes, str) or not isinstance(suffixes, Sequence):
        raise TypeError(f"suffixes must be a sequence of str, got {type(suffixes).__name__}")
    normalized = [normalize_suffix(suffix, metaclass) for suffix in suffixes]
    empty = [suffix for suffix, text in zip(suffixes, normalized) if not text]
    if empty:
        raise ValueError(f"suffixes must contain text besides the 'a photo of a <metaclass>' prefix, got {empty!r}")
    return normalized


def generate_class(
    pipe,
    inversions: torch.Tensor,
    tokens: str,
    metaclass: str,
    suffixes: Sequence[str],
    config: GenerationConfig,
    *,
    seed: int,
    class_index: int,
) -> Iterator[SyntheticSample]:
    """Stream the synthetic images of one class from its inversion pool.

    Arguments are checked now; the images come as the returned iterator is
    consumed, one denoising batch at a time, so the caller can store each
    sample and drop it. A class with no image yields nothing; a class with one
    image starts every sample from Gaussian noise. With ``split_ratio > 0`` at
    least one suffix is required; with ``split_ratio == 0`` suffixes are unused.
    """
    config = _check_config(config)
    if not isinstance(inversions, torch.Tensor) or inversions.ndim == 0:
        raise TypeError(f"inversions must be a torch tensor [N, C, h, w], got {type(inversions).__name__}")
    num_images = inversions.shape[0]
    suffix_list = _normalized_suffixes(suffixes, metaclass)
    if config.split_ratio > 0 and not suffix_list:
        raise ValueError(f"suffixes must not be empty when split_ratio > 0 (got split_ratio={config.split_ratio}); "
                         "pass at least one suffix or set split_ratio=0")
    if not any(suffix_steps(pipe, config.denoising_steps, config.split_ratio)):
        # No step reaches the suffix threshold (split_ratio 0, or too few steps for the ratio):
        # the suffixed stage never runs, so no suffix is drawn or reported.
        suffix_list = []
    class_seed_value = class_seed(seed, class_index)
    if num_images == 0:
        return iter(())
    check_latents(pipe, inversions, config.resolution, name="inversions")
    count = num_synthetic(num_images, config.expansion_rate)
    generator = torch.Generator(device="cpu").manual_seed(class_seed_value)
    plan = plan_class(num_images, count, len(suffix_list), latent_shape(pipe, config.resolution), generator)
    logger.info("class %d: %d synthetic images from %d inversions", class_index, count, num_images)
    return _generate(pipe, inversions.float().cpu(), build_prompt(tokens, metaclass),
                     [build_prompt(tokens, metaclass, suffix) for suffix in suffix_list], suffix_list, plan, config,
                     class_seed_value)


def _generate(pipe, inversions: torch.Tensor, prompt: str, suffixed_prompts: list[str], suffixes: list[str],
              plan: ClassPlan, config: GenerationConfig, class_seed_value: int) -> Iterator[SyntheticSample]:
    encoder = PromptEncoder(pipe)  # one per class: each distinct prompt is encoded once
    for start in range(0, plan.count, config.batch_size):
        stop = min(start + config.batch_size, plan.count)
        if plan.pairs is not None:
            a, b = inversions[plan.pairs[start:stop, 0]], inversions[plan.pairs[start:stop, 1]]
            alpha = interpolation_angle(a, b, batched=True)
            lams = plan.uniforms[start:stop] * lam_upper_bound(alpha, config.interpolation)
            latents = interpolate(a, b, lams, config.interpolation)
        else:
            lams, latents = None, plan.noise[start:stop]
        if plan.suffix_choices is not None:
            chosen = plan.suffix_choices[start:stop].tolist()
            batch_suffixes = [suffixes[c] for c in chosen]
            batch_suffixed = [suffixed_prompts[c] for c in chosen]
        else:
            batch_suffixes, batch_suffixed = [""] * (stop - start), None
        split_ratio = config.split_ratio if batch_suffixed is not None else 0.0
        images = two_stage_denoise(pipe, latents, prompt, batch_suffixed, split_ratio, config.denoising_steps,
                                   config.guidance_scale, "pil", stop - start, resolution=config.resolution,
                                   prompt_encoder=encoder, autocast_dtype=config.autocast_dtype)
        for offset, image in enumerate(images):
            index = start + offset
            yield SyntheticSample(
                index=index,
                image=image,
                source_indices=tuple(plan.pairs[index].tolist()) if plan.pairs is not None else (),
                lam=float(lams[offset]) if lams is not None else None,
                suffix=batch_suffixes[offset],
                seed=class_seed_value,
            )
