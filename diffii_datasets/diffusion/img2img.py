"""Image-to-image editing ("SDEdit"): a real image, noised part of the way, denoised towards a prompt.

This is diffusers' ``StableDiffusionImg2ImgPipeline`` as Diff-Mix
(``DreamboothLoraMixup.forward``, DM:augmentation/diff_mix.py:134-175) and
DA-Fusion (``RealGuidance.forward``, DAF:semantic_aug/augmentations/real_guidance.py:64-127)
call it, batched across images. For each image:

1. resize to a ``resolution`` square with PIL's BILINEAR filter (no aspect
   preservation), as both codebases do before calling the pipeline;
2. VAE-encode to a *sample* of the posterior (mean + std * eps) times the scaling
   factor, as diffusers' ``retrieve_latents`` does (not the mean, as inversion does);
3. add noise at the first of the last ``int(num_inference_steps * strength)`` timesteps
   of the sampler (diffusers' ``get_timesteps`` and ``scheduler.add_noise``);
4. denoise over those timesteps with classifier-free guidance against the empty prompt;
5. decode, and resize back to the image's own size with BILINEAR (diff_mix.py:172-174,
   real_guidance.py:124-125).

Image ``i`` draws its randomness from ``generators[i]`` in diffusers' order (eps of the
posterior, then the noise), so its result does not depend on the batch it is in. Images
whose strengths give the same number of steps are denoised ``batch_size`` at a time, one
UNet call per step for the whole batch. At batch 1 with a float32 pipeline the result is
bit for bit the pipeline's (``tests/diffusion/test_img2img.py``); batching changes float
reductions, so batched results agree up to rounding. Latents stay float32 between steps
(the engine's convention, see :mod:`~diffii_datasets.diffusion.pipeline`), where diffusers
keeps them in the pipeline's dtype: fp16 pipelines differ from diffusers by that rounding.

The authors' runs: Diff-Mix, SD-1.5 in fp16 under ``autocast("cuda")``, DPM-Solver++
25 steps, guidance 7.5, resolution 512; DA-Fusion, SD-1.4 (``revision="fp16"``) in fp16
under autocast, the pipeline's default PNDM sampler and 50 steps, guidance 7.5, 512 px.
Both remove the safety checker (its NSFW retry loop then never runs); so does
:func:`~diffii_datasets.diffusion.pipeline.load_pipeline`. Use ``sampler="pndm",
num_inference_steps=50`` for DA-Fusion's settings; ``autocast_dtype="float16"`` is the
closest to their autocast on a float32 pipeline.

A strength whose ``int(num_inference_steps * strength)`` is 0 runs no step and adds no
noise: the result is the image's VAE round trip. (diffusers there returns no image for
DPM-Solver++ and DDIM, and runs PNDM's extra step at t = 1.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffii_datasets import _checks
from diffii_datasets.diffusion.denoise import decode_latents
from diffii_datasets.diffusion.pipeline import (
    PromptEncoder,
    broadcast_prompts,
    check_autocast_dtype,
    execution_device,
    latent_shape,
    model_autocast,
    pipeline_resolution,
)
from diffii_datasets.diffusion.schedulers import check_generators, check_sampler, make_sampler, run_sampler
from diffii_datasets.images import to_pil_rgb

__all__ = ["edit_images", "edit_steps", "edit_timesteps"]


def edit_steps(num_inference_steps: int, strength: float) -> int:
    """How many of the sampler's ``num_inference_steps`` an edit of ``strength`` runs (diffusers' rule)."""
    return min(int(num_inference_steps * strength), num_inference_steps)


def edit_timesteps(scheduler, num_inference_steps: int, strength: float, device: torch.device) -> torch.Tensor:
    """Set the sampler's timesteps and return the tail an edit of ``strength`` runs (empty for no step).

    diffusers' ``get_timesteps``: the last ``edit_steps`` steps of the schedule (times
    the scheduler's order), with the scheduler's begin index set to the first of them,
    where noise is added. PNDM's schedule holds one timestep more than it has steps,
    so an edit runs one UNet call more than ``edit_steps``, as in diffusers.
    """
    scheduler.set_timesteps(num_inference_steps, device=device)
    steps = edit_steps(num_inference_steps, strength)
    if steps == 0:
        return scheduler.timesteps[:0]
    begin = (num_inference_steps - steps) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


def _check_images(images: Any) -> list[Image.Image]:
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        _checks.fail(TypeError, "images", "a sequence of images (PIL, numpy arrays or tensors)", images)
    return [to_pil_rgb(image, name=f"images[{index}]") for index, image in enumerate(images)]


def _check_strengths(strengths: Any, count: int) -> list[float]:
    if isinstance(strengths, Sequence) and not isinstance(strengths, (str, bytes)):
        if len(strengths) != count:
            raise ValueError(f"strengths must hold one strength per image ({count}), got {len(strengths)}")
        return [_checks.check_number(s, f"strengths[{i}]", minimum=0, maximum=1) for i, s in enumerate(strengths)]
    return [_checks.check_number(strengths, "strengths", minimum=0, maximum=1)] * count


def _pixels(images: Sequence[Image.Image], resolution: int) -> torch.Tensor:
    """``[b, 3, resolution, resolution]`` in [-1, 1], laid out as diffusers' ``VaeImageProcessor.preprocess`` does.

    The layout matters for bit-identical results: preprocess stacks HWC arrays and
    transposes them, so the VAE sees a channels-last tensor.
    """
    size = (resolution, resolution)
    arrays = [np.array(image.resize(size, Image.Resampling.BILINEAR)).astype(np.float32) / 255.0 for image in images]
    return 2.0 * torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2)) - 1.0


@torch.no_grad()
def edit_images(
    pipe,
    images: Sequence[Any],
    prompts: str | Sequence[str],
    strengths: float | Sequence[float],
    *,
    generators: Sequence[torch.Generator],
    num_inference_steps: int = 25,
    guidance_scale: float = 7.5,
    sampler: str = "dpm-solver++",
    resolution: int | None = None,
    batch_size: int = 8,
    prompt_encoder: PromptEncoder | None = None,
    autocast_dtype: str | torch.dtype | None = None,
    on_step: Callable[[float], None] | None = None,
) -> list[Image.Image]:
    """Edit each of ``images`` towards its prompt; returns RGB images, each at its source's own size.

    ``images``: a sequence of anything :func:`~diffii_datasets.images.to_pil_rgb`
    takes. ``prompts`` and ``strengths`` (in [0, 1]): one for all images or one
    per image. ``generators``: one distinct ``torch.Generator`` per image (on the
    CPU or the pipeline's device type), the only source of randomness.
    ``num_inference_steps``: the sampler's full schedule, of which an edit of
    strength ``s`` runs the last ``int(num_inference_steps * s)`` steps.
    ``guidance_scale``: classifier-free guidance with the empty prompt (none at
    ``<= 1``). ``sampler``: one of :data:`~diffii_datasets.diffusion.schedulers.SAMPLERS`,
    built from the pipeline's scheduler config. ``resolution``: the square side the
    images are edited at, by default the pipeline's (512 for SD-1.5). ``batch_size``
    images share each UNet call; a shared ``prompt_encoder`` reuses text embeddings
    across calls. ``autocast_dtype`` (``"bfloat16"`` or ``"float16"``) runs the UNet
    and the VAE under autocast; ``None`` runs them in the pipeline's dtype.
    ``on_step(images)`` is called after every UNet step with the images' worth of
    work it did (an image that runs no step counts once, when decoded); with it,
    the pipeline's own step bar is not shown.
    """
    sources = _check_images(images)
    count = len(sources)
    prompts = broadcast_prompts(prompts, count)
    strengths = _check_strengths(strengths, count)
    device = execution_device(pipe)
    generators = check_generators(generators, count, device)
    _checks.check_int(num_inference_steps, "num_inference_steps", minimum=1)
    guidance_scale = _checks.check_number(guidance_scale, "guidance_scale", minimum=0)
    check_sampler(sampler)
    resolution = pipeline_resolution(pipe) if resolution is None else resolution
    shape = latent_shape(pipe, resolution)  # checks the resolution
    _checks.check_int(batch_size, "batch_size", minimum=1)
    check_autocast_dtype(autocast_dtype)

    run = _Run(pipe, num_inference_steps, guidance_scale, sampler, resolution, shape,
               prompt_encoder if prompt_encoder is not None else PromptEncoder(pipe), autocast_dtype, on_step)
    results: list[Image.Image | None] = [None] * count
    steps_of = [edit_steps(num_inference_steps, strength) for strength in strengths]
    # Images sharing a number of steps share a schedule; the stable sort keeps input order within each group.
    order = sorted(range(count), key=lambda index: -steps_of[index])
    for _, group in groupby(order, key=steps_of.__getitem__):
        group = list(group)
        for start in range(0, len(group), batch_size):
            batch = group[start:start + batch_size]
            edited = run.edit([sources[i] for i in batch], [prompts[i] for i in batch], strengths[batch[0]],
                              [generators[i] for i in batch])
            for index, image in zip(batch, edited):
                results[index] = image
    return results


@dataclass(frozen=True)
class _Run:
    """The settings of one :func:`edit_images` call, shared by its batches."""

    pipe: Any
    num_inference_steps: int
    guidance_scale: float
    sampler: str
    resolution: int
    shape: tuple[int, int, int]
    encoder: PromptEncoder
    autocast_dtype: str | torch.dtype | None
    on_step: Callable[[float], None] | None

    def edit(self, sources: list[Image.Image], prompts: list[str], strength: float,
             generators: list[torch.Generator]) -> list[Image.Image]:
        """One batch of images whose strengths share a schedule."""
        from diffusers.utils.torch_utils import randn_tensor

        pipe, vae, count = self.pipe, self.pipe.vae, len(sources)
        device = execution_device(pipe)
        scheduler = make_sampler(pipe, self.sampler)
        timesteps = edit_timesteps(scheduler, self.num_inference_steps, strength, device)
        cond = self.encoder(prompts)
        uncond = self.encoder([""]).expand(count, -1, -1) if self.guidance_scale > 1 else None
        with model_autocast(pipe, self.autocast_dtype):
            posterior = vae.encode(_pixels(sources, self.resolution).to(device, vae.dtype)).latent_dist
            # Per image, diffusers' order: the posterior's eps (in the VAE's dtype), then the noise (in the
            # prompt embeddings' dtype); full precision under autocast too.
            eps, noise = [], []
            for generator in generators:
                eps.append(randn_tensor((1, *self.shape), generator=generator, device=posterior.mean.device,
                                        dtype=vae.dtype))
                noise.append(randn_tensor((1, *self.shape), generator=generator, device=device,
                                          dtype=pipe.text_encoder.dtype))
            latents = ((posterior.mean + posterior.std * torch.cat(eps)) * vae.config.scaling_factor).float()
            if len(timesteps):
                latents = scheduler.add_noise(latents, torch.cat(noise).float(), timesteps[:1].repeat(count))
                latents = run_sampler(pipe, scheduler, timesteps, latents, cond, uncond, self.guidance_scale,
                                      on_step=self.on_step)
            decoded = decode_latents(pipe, latents)
        if self.on_step is not None and not len(timesteps):
            self.on_step(float(count))
        return [to_pil_rgb(image.cpu(), name="decoded image").resize(source.size, Image.Resampling.BILINEAR)
                for image, source in zip(decoded, sources)]
