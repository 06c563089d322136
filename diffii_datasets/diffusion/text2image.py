"""Text-to-image generation from class prompts, batched: the engine of Real-Gen.

This is diffusers' ``StableDiffusionPipeline`` as Diff-Mix's ``RealGeneration.forward``
(DM:augmentation/real_mix.py:75-128) calls it: Gaussian noise at the sampler's first
timestep (times its ``init_noise_sigma``), the sampler's full schedule with
classifier-free guidance against the empty prompt, decode, and each image resized with
PIL's BILINEAR filter to a given size (Diff-Mix: the size of the real image the task
drew, real_mix.py:124-126). Image ``i`` draws its noise from ``generators[i]``, so its
result does not depend on its batch; ``batch_size`` images share each UNet call. At
batch 1 with a float32 pipeline the result is bit for bit the pipeline's
(``tests/diffusion/test_text2image.py``); batched, equal up to rounding. Latents stay
float32 between steps (the engine's convention), where diffusers keeps the pipeline's dtype.

The authors' run: SD-1.5 in fp16 under ``autocast("cuda")``, safety checker removed,
DPM-Solver++ (``from_config`` of the SD scheduler config) 25 steps, guidance 7.5,
512 x 512 (``--resolution 512``), prompt ``"a photo of a <Class_Name>"`` (real_mix.py:21-22, 84-85).
These are this function's defaults, but for the prompt, which is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from diffii_datasets import _checks
from diffii_datasets.diffusion.denoise import decode_latents
from diffii_datasets.diffusion.pipeline import (
    PromptEncoder,
    check_autocast_dtype,
    execution_device,
    latent_shape,
    model_autocast,
    pipeline_resolution,
)
from diffii_datasets.diffusion.schedulers import check_generators, check_sampler, make_sampler, run_sampler
from diffii_datasets.images import to_pil_rgb

__all__ = ["generate_images"]


def _check_prompts(prompts: Any) -> list[str]:
    expected = "a sequence of str, one prompt per image"
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        _checks.fail(TypeError, "prompts", expected, prompts)
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            _checks.fail(TypeError, f"prompts[{index}]", "a str", prompt)
    return list(prompts)


def _check_size(size: Any, name: str) -> tuple[int, int]:
    if isinstance(size, (str, bytes)) or not isinstance(size, Sequence) or len(size) != 2:
        _checks.fail(TypeError, name, "a (width, height) pair of positive ints", size)
    return (_checks.check_int(size[0], f"{name}[0] (width)", minimum=1),
            _checks.check_int(size[1], f"{name}[1] (height)", minimum=1))


def _check_output_sizes(output_sizes: Any, count: int) -> list[tuple[int, int] | None]:
    """``None`` (keep the generated size) or one ``(width, height)`` per prompt."""
    if output_sizes is None:
        return [None] * count
    if isinstance(output_sizes, (str, bytes)) or not isinstance(output_sizes, Sequence):
        _checks.fail(TypeError, "output_sizes", "None or a sequence of (width, height), one per prompt", output_sizes)
    if len(output_sizes) != count:
        raise ValueError(f"output_sizes must hold one (width, height) per prompt ({count}), got {len(output_sizes)}")
    return [_check_size(size, f"output_sizes[{index}]") for index, size in enumerate(output_sizes)]


@torch.no_grad()
def generate_images(
    pipe,
    prompts: Sequence[str],
    *,
    generators: Sequence[torch.Generator],
    output_sizes: Sequence[tuple[int, int]] | None = None,
    num_inference_steps: int = 25,
    guidance_scale: float = 7.5,
    sampler: str = "dpm-solver++",
    resolution: int | None = None,
    batch_size: int = 8,
    prompt_encoder: PromptEncoder | None = None,
    autocast_dtype: str | torch.dtype | None = None,
    on_step: Callable[[float], None] | None = None,
) -> list[Image.Image]:
    """One RGB image per prompt, generated from noise.

    ``generators``: one distinct ``torch.Generator`` per prompt (on the CPU or the
    pipeline's device type), the only source of randomness. ``output_sizes``:
    ``None`` keeps the generated ``resolution`` square; a sequence of
    ``(width, height)``, one per prompt, resizes each image to its own (BILINEAR).
    ``num_inference_steps``, ``guidance_scale`` (none at ``<= 1``), ``sampler``
    (one of :data:`~diffii_datasets.diffusion.schedulers.SAMPLERS`), ``resolution``
    (default: the pipeline's), ``batch_size``, ``prompt_encoder``,
    ``autocast_dtype`` and ``on_step``: as for
    :func:`~diffii_datasets.diffusion.img2img.edit_images`.
    """
    prompts = _check_prompts(prompts)
    count = len(prompts)
    device = execution_device(pipe)
    generators = check_generators(generators, count, device)
    sizes = _check_output_sizes(output_sizes, count)
    _checks.check_int(num_inference_steps, "num_inference_steps", minimum=1)
    guidance_scale = _checks.check_number(guidance_scale, "guidance_scale", minimum=0)
    check_sampler(sampler)
    resolution = pipeline_resolution(pipe) if resolution is None else resolution
    shape = latent_shape(pipe, resolution)  # checks the resolution
    _checks.check_int(batch_size, "batch_size", minimum=1)
    check_autocast_dtype(autocast_dtype)

    from diffusers.utils.torch_utils import randn_tensor

    encoder = prompt_encoder if prompt_encoder is not None else PromptEncoder(pipe)
    results: list[Image.Image] = []
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        scheduler = make_sampler(pipe, sampler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        # diffusers draws the noise in the prompt embeddings' dtype, one [1, C, h, w] draw per generator.
        noise = torch.cat([randn_tensor((1, *shape), generator=generator, device=device, dtype=pipe.text_encoder.dtype)
                           for generator in generators[start:stop]])
        latents = (noise * scheduler.init_noise_sigma).float()
        cond = encoder(prompts[start:stop])
        uncond = encoder([""]).expand(stop - start, -1, -1) if guidance_scale > 1 else None
        with model_autocast(pipe, autocast_dtype):
            latents = run_sampler(pipe, scheduler, scheduler.timesteps, latents, cond, uncond, guidance_scale,
                                  on_step=on_step)
            decoded = decode_latents(pipe, latents)
        for image, size in zip(decoded, sizes[start:stop]):
            image = to_pil_rgb(image.cpu(), name="decoded image")
            results.append(image if size is None else image.resize(size, Image.Resampling.BILINEAR))
    return results
