"""DDIM inversion: training images to the x_T that regenerate them (paper Sec. 3.2.1).

Each image is resized with PIL's LANCZOS filter (square, no aspect preservation,
as the authors' ``get_inversion.py`` does) to the generation resolution, encoded
to the VAE posterior mean times the VAE
scaling factor, and run forward through ``DDIMInverseScheduler`` conditioned on
its prompt. This is the loop ``StableDiffusionPipeline`` runs when its scheduler
is swapped for the inverse one, which is how the authors' code inverts, but
batched, deterministic (no noise is drawn) and without building a pipeline per
call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffii_datasets import _checks
from diffii_datasets.diffusion.pipeline import (
    PromptEncoder,
    broadcast_prompts,
    check_autocast_dtype,
    execution_device,
    latent_shape,
    make_scheduler,
    model_autocast,
    pipeline_resolution,
    predict_noise,
)
from diffii_datasets.images import to_pil_rgb, to_rgb_tensor

__all__ = ["ddim_invert", "encode_images", "load_image_batch"]


def _check_images(images: Any) -> int:
    """Validate the container of ``images`` and return how many there are."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
            raise ValueError(f"images as a tensor must have shape [B, C, H, W] with C in (1, 3, 4), "
                             f"got {tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
        if images.is_floating_point() and images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(f"images as a floating point tensor must lie in [0, 1], "
                             f"got [{float(images.min()):.3g}, {float(images.max()):.3g}]")
        return images.shape[0]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a tensor [B, C, H, W] or a sequence of images, got {type(images).__name__}")
    return len(images)


def load_image_batch(images: Any, start: int, stop: int, resolution: int) -> torch.Tensor:
    """Images ``start:stop`` as float32 ``[b, 3, resolution, resolution]`` in [0, 1].

    Images of another size are resized with PIL's LANCZOS filter, as the authors do:
    PIL images (and anything else :func:`diffii_datasets.images.to_pil_rgb` takes)
    as RGB images, so in 8-bit steps like theirs; a tensor batch channel by channel
    in 32-bit float, so it keeps its precision. Images of the right size keep their
    exact values (one channel repeated, alpha dropped).
    """
    size = (resolution, resolution)
    if isinstance(images, torch.Tensor):
        batch = images[start:stop].detach().cpu()
        batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
        batch = batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch[:, :3]
        items = [item if tuple(item.shape[1:]) == size else _lanczos_float(item, resolution) for item in batch]
    else:
        items = []
        for i in range(start, stop):
            image = to_pil_rgb(images[i], name=f"images[{i}]")
            items.append(to_rgb_tensor(image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)))
    return torch.stack(items).contiguous()


def _lanczos_float(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """A float ``[3, H, W]`` image resized with PIL's LANCZOS filter, one 32-bit channel at a time, in [0, 1]."""
    channels = [Image.fromarray(channel.numpy()).resize((resolution, resolution), Image.Resampling.LANCZOS)
                for channel in image.contiguous()]
    return torch.from_numpy(np.stack([np.asarray(c, dtype=np.float32) for c in channels])).clamp(0, 1)


@torch.no_grad()
def encode_images(pipe, pixels: torch.Tensor) -> torch.Tensor:
    """VAE posterior mean times the scaling factor, float32, for images ``[b, 3, H, W]`` in [0, 1]."""
    vae = pipe.vae
    pixels = pixels.to(execution_device(pipe), vae.dtype) * 2 - 1
    return vae.encode(pixels).latent_dist.mean.float() * vae.config.scaling_factor


@torch.no_grad()
def ddim_invert(
    pipe,
    images: torch.Tensor | Sequence[Any],
    prompts: str | Sequence[str],
    num_inference_steps: int = 200,
    guidance_scale: float = 1.0,
    batch_size: int = 8,
    *,
    resolution: int | None = None,
    prompt_encoder: PromptEncoder | None = None,
    autocast_dtype: str | torch.dtype | None = None,
    on_step: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """DDIM-invert ``images`` conditioned on ``prompts``; returns x_T, float32 on the pipeline's device.

    ``images`` is a tensor ``[B, C, H, W]`` (uint8, or float in [0, 1]; C = 1
    and 4 are converted to RGB) or a sequence of anything
    :func:`~diffii_datasets.images.to_rgb_tensor` accepts; ``prompts`` is one
    string for all or one per image. ``resolution`` defaults to the pipeline's.
    With ``guidance_scale > 1`` the empty prompt is the unconditional branch
    (the reference inverts with 1.0, i.e. no guidance). ``batch_size`` images
    are inverted at once; text embeddings are computed once per distinct prompt
    (pass a shared ``prompt_encoder`` to reuse them across calls).
    ``autocast_dtype`` (``"bfloat16"`` or ``"float16"``) runs the UNet under
    autocast (the VAE encodes in the pipeline's dtype); ``None``, the default,
    runs everything in the pipeline's own dtype. ``on_step(images)`` is called after
    every UNet step with the images' worth of work it did (the batch over the steps),
    so a caller's bar counts images smoothly; with it, the pipeline's own step bar
    is not shown.
    """
    from diffusers import DDIMInverseScheduler

    count = _check_images(images)
    prompts = broadcast_prompts(prompts, count)
    _checks.check_int(num_inference_steps, "num_inference_steps", minimum=1)
    guidance_scale = _checks.check_number(guidance_scale, "guidance_scale", minimum=0)
    _checks.check_int(batch_size, "batch_size", minimum=1)
    check_autocast_dtype(autocast_dtype)
    resolution = pipeline_resolution(pipe) if resolution is None else resolution
    shape = latent_shape(pipe, resolution)
    device = execution_device(pipe)
    if count == 0:
        return torch.empty((0, *shape), device=device)

    scheduler = make_scheduler(pipe, DDIMInverseScheduler)
    scheduler.set_timesteps(num_inference_steps, device=device)
    encoder = prompt_encoder if prompt_encoder is not None else PromptEncoder(pipe)
    guided = guidance_scale > 1
    results = []
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        cond = encoder(prompts[start:stop])
        uncond = encoder([""]).expand(stop - start, -1, -1) if guided else None
        # The image is encoded once in the pipeline's dtype: its latent is what 200 steps build on.
        latents = encode_images(pipe, load_image_batch(images, start, stop, resolution))
        per_step = (stop - start) / len(scheduler.timesteps)
        with model_autocast(pipe, autocast_dtype):
            for t in scheduler.timesteps if on_step is not None else pipe.progress_bar(scheduler.timesteps):
                noise = predict_noise(pipe, latents, t, cond, uncond, guidance_scale)
                latents = scheduler.step(noise, t, latents, return_dict=False)[0]
                if on_step is not None:
                    on_step(per_step)
        results.append(latents)
    return torch.cat(results)
