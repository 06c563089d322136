"""Two-stage denoising (paper Sec. 3.3): DDIM with the suffixed prompt early and the plain prompt late.

The split follows the authors' code: the step at timestep ``t`` is conditioned
on the suffixed prompt when ``t >= num_train_timesteps * (1 - split_ratio)``.
``split_ratio = 0`` is plain DDIM with ``prompts``, ``split_ratio = 1`` plain DDIM
with ``suffixed_prompts``; larger ratios give the suffix (the context) more of
the noisy, layout-defining steps and so more diversity (paper Fig. 7). The
paper's sentence "first stage from T to sT" reads the other way round; the
code is what produced the published numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from diffii_datasets import _checks
from diffii_datasets.diffusion.pipeline import (
    PromptEncoder,
    broadcast_prompts,
    check_autocast_dtype,
    check_latents,
    execution_device,
    make_scheduler,
    model_autocast,
    predict_noise,
)
from diffii_datasets.images import to_pil_rgb

__all__ = ["OUTPUT_TYPES", "decode_latents", "denoising_timesteps", "suffix_steps", "two_stage_denoise"]

OUTPUT_TYPES = ("pil", "pt", "latent")


def _scheduler(pipe, num_inference_steps: int, device: torch.device | None = None):
    from diffusers import DDIMScheduler

    scheduler = make_scheduler(pipe, DDIMScheduler)
    scheduler.set_timesteps(num_inference_steps, device=device)
    return scheduler


def denoising_timesteps(pipe, num_inference_steps: int = 25) -> list[int]:
    """The DDIM timesteps of the sampler, first (noisiest) to last: 961, 921, ..., 1 for SD-1.5 at 25 steps."""
    _checks.check_int(num_inference_steps, "num_inference_steps", minimum=1)
    return [int(t) for t in _scheduler(pipe, num_inference_steps).timesteps]


def suffix_steps(pipe, num_inference_steps: int, split_ratio: float) -> list[bool]:
    """For each DDIM step, whether it uses the suffixed prompt (``t >= num_train_timesteps * (1 - split_ratio)``)."""
    split_ratio = _checks.check_number(split_ratio, "split_ratio", minimum=0, maximum=1)
    threshold = pipe.scheduler.config.num_train_timesteps * (1 - split_ratio)
    return [t >= threshold for t in denoising_timesteps(pipe, num_inference_steps)]


@torch.no_grad()
def decode_latents(pipe, latents: torch.Tensor) -> torch.Tensor:
    """VAE-decode latents to float32 images ``[b, 3, H, W]`` in [0, 1]."""
    vae = pipe.vae
    images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return (images.float() / 2 + 0.5).clamp(0, 1)


@torch.no_grad()
def two_stage_denoise(
    pipe,
    latents: torch.Tensor,
    prompts: str | Sequence[str],
    suffixed_prompts: str | Sequence[str] | None,
    split_ratio: float,
    num_inference_steps: int = 25,
    guidance_scale: float = 7.5,
    output_type: str = "pil",
    batch_size: int = 8,
    *,
    resolution: int | None = None,
    prompt_encoder: PromptEncoder | None = None,
    autocast_dtype: str | torch.dtype | None = None,
    on_step: Callable[[float], None] | None = None,
):
    """Denoise x_T ``latents`` ``[B, C, h, w]`` with DDIM and classifier-free guidance in two prompt stages.

    ``prompts`` and ``suffixed_prompts`` are one string for all latents or one
    per latent; ``suffixed_prompts`` may be ``None`` only when ``split_ratio`` is
    0. The unconditional branch is the empty prompt, run in the same UNet call
    as the conditional one (no guidance at all when ``guidance_scale <= 1``).
    ``batch_size`` latents are denoised at once. ``resolution`` (pixels) sets the
    expected latent size, by default the pipeline's. ``autocast_dtype``
    (``"bfloat16"`` or ``"float16"``) runs the UNet and the VAE under autocast
    (see :func:`~diffii_datasets.diffusion.pipeline.model_autocast`); ``None``, the
    default, runs them in the pipeline's own dtype. ``on_step(images)`` is called after
    every UNet step with the images' worth of work it did (the batch over the steps);
    with it, the pipeline's own step bar is not shown.

    Returns a list of RGB ``PIL.Image`` (``"pil"``), a float32 tensor
    ``[B, 3, H, W]`` in [0, 1] (``"pt"``) or the final float32 latents
    (``"latent"``), tensors on the pipeline's device.
    """
    split_ratio = _checks.check_number(split_ratio, "split_ratio", minimum=0, maximum=1)
    check_latents(pipe, latents, resolution)
    count = latents.shape[0]
    prompts = broadcast_prompts(prompts, count)
    if suffixed_prompts is None:
        if split_ratio > 0:
            raise ValueError("suffixed_prompts is required when split_ratio > 0")
        suffixed_prompts = prompts
    suffixed_prompts = broadcast_prompts(suffixed_prompts, count, name="suffixed_prompts")
    _checks.check_int(num_inference_steps, "num_inference_steps", minimum=1)
    guidance_scale = _checks.check_number(guidance_scale, "guidance_scale", minimum=0)
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    _checks.check_int(batch_size, "batch_size", minimum=1)
    check_autocast_dtype(autocast_dtype)

    device = execution_device(pipe)
    if count == 0:
        side = latents.shape[-1] * int(pipe.vae_scale_factor)
        empty = {"pil": [], "pt": torch.empty((0, 3, side, side), device=device), "latent": latents.to(device).float()}
        return empty[output_type]
    scheduler = _scheduler(pipe, num_inference_steps, device)
    use_suffix = suffix_steps(pipe, num_inference_steps, split_ratio)
    encoder = prompt_encoder if prompt_encoder is not None else PromptEncoder(pipe)
    guided = guidance_scale > 1
    results: list[Any] = []
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        x = latents[start:stop].to(device, torch.float32)
        # Encode only the stages that run: s = 0 never needs the suffixed prompts, s = 1 never the plain ones.
        plain = encoder(prompts[start:stop]) if not all(use_suffix) else None
        suffixed = encoder(suffixed_prompts[start:stop]) if any(use_suffix) else None
        uncond = encoder([""]).expand(stop - start, -1, -1) if guided else None
        timesteps = scheduler.timesteps if on_step is not None else pipe.progress_bar(scheduler.timesteps)
        per_step = (stop - start) / len(scheduler.timesteps)
        with model_autocast(pipe, autocast_dtype):
            for t, with_suffix in zip(timesteps, use_suffix):
                noise = predict_noise(pipe, x, t, suffixed if with_suffix else plain, uncond, guidance_scale)
                x = scheduler.step(noise, t, x, return_dict=False)[0]
                if on_step is not None:
                    on_step(per_step)
            if output_type == "latent":
                results.append(x)
                continue
            images = decode_latents(pipe, x)
        if output_type == "pt":
            results.append(images)
        else:
            results.extend(to_pil_rgb(image.cpu(), name="decoded image") for image in images)
    return results if output_type == "pil" else torch.cat(results)
