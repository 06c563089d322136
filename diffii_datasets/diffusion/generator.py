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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffii_datasets import _checks
from diffii_datasets.diffusion.config import GenerationConfig
from diffii_datasets.diffusion.denoise import suffix_steps, two_stage_denoise
from diffii_datasets.diffusion.interpolation import interpolate, interpolation_angle, lam_upper_bound
from diffii_datasets.diffusion.inversion import ddim_invert
from diffii_datasets.diffusion.pipeline import PromptEncoder, check_latents, latent_shape
from diffii_datasets.diffusion.prompts import build_prompt, check_prompt_length, normalize_suffix

__all__ = [
    "ClassPlan",
    "SyntheticSample",
    "class_seed",
    "generate_class",
    "invert_class",
    "num_synthetic",
    "plan_class",
]

logger = logging.getLogger(__name__)


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
    _checks.check_seed(seed)
    _checks.check_int(class_index, "class_index", minimum=0)
    state = np.random.SeedSequence([int(seed), int(class_index)]).generate_state(2, dtype=np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) >> 1


def num_synthetic(num_images: int, expansion_rate: float) -> int:
    """How many synthetic images a class of ``num_images`` gets: ``int(expansion_rate * num_images)``."""
    _checks.check_int(num_images, "num_images", minimum=0)
    _checks.check_number(expansion_rate, "expansion_rate", above=0)
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
        _checks.fail(TypeError, "config", "a GenerationConfig", config)
    return config


def invert_class(pipe, images: Sequence[Any], tokens: str, metaclass: str, config: GenerationConfig, *,
                 on_step: Callable[[float], None] | None = None) -> torch.Tensor:
    """The inversion pool of one class: x_T ``[N, C, h, w]``, float32 on the CPU, one row per image.

    Each image (anything :func:`~diffii_datasets.images.to_rgb_tensor` accepts)
    is inverted with the prompt ``"a photo of a <tokens> <metaclass>"``. ``on_step``:
    see :func:`~diffii_datasets.diffusion.inversion.ddim_invert`.
    """
    config = _check_config(config)
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a sequence of images, got {type(images).__name__}")
    prompt = build_prompt(tokens, metaclass)
    inversions = ddim_invert(pipe, images, prompt, config.inversion_steps, config.inversion_guidance_scale,
                             config.batch_size, resolution=config.resolution, autocast_dtype=config.autocast_dtype,
                             on_step=on_step)
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
    on_step: Callable[[float], None] | None = None,
) -> Iterator[SyntheticSample]:
    """Stream the synthetic images of one class from its inversion pool.

    Arguments are checked now; the images come as the returned iterator is
    consumed, one denoising batch at a time, so the caller can store each
    sample and drop it. A class with no image yields nothing; a class with one
    image starts every sample from Gaussian noise. With ``split_ratio > 0`` at
    least one suffix is required; with ``split_ratio == 0`` suffixes are unused.
    ``on_step``: see :func:`~diffii_datasets.diffusion.denoise.two_stage_denoise`.
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
    suffixed_prompts = [build_prompt(tokens, metaclass, suffix) for suffix in suffix_list]
    # An overlong suffix would be cut by the tokenizer without a word: refuse it before any denoising.
    check_prompt_length(pipe.tokenizer, [_expanded(pipe, prompt) for prompt in suffixed_prompts])
    logger.info("class %d: %d synthetic images from %d inversions", class_index, count, num_images)
    return _generate(pipe, inversions.float().cpu(), build_prompt(tokens, metaclass), suffixed_prompts, suffix_list,
                     plan, config, class_seed_value, on_step)


def _expanded(pipe: Any, prompt: str) -> str:
    """``prompt`` as the text encoder sees it: multi-vector concept tokens expanded, as ``encode_prompt`` does."""
    convert = getattr(pipe, "maybe_convert_prompt", None)
    return convert(prompt, pipe.tokenizer) if convert is not None else prompt


def _generate(pipe, inversions: torch.Tensor, prompt: str, suffixed_prompts: list[str], suffixes: list[str],
              plan: ClassPlan, config: GenerationConfig, class_seed_value: int,
              on_step: Callable[[float], None] | None) -> Iterator[SyntheticSample]:
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
                                   prompt_encoder=encoder, autocast_dtype=config.autocast_dtype, on_step=on_step)
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
