"""THE BASELINE: the authors' published per-image procedure, re-implemented on the same pipeline and settings.

This is what the project's engine is measured against, not part of the project.
It follows the reference scripts step by step, on the same pipeline object (or a
copy of it reloaded from disk) and with the same settings as the engine:

- generation: the pipeline is reloaded from disk for every class; then, for each
  synthetic image separately, the pair is interpolated, the plain prompt, the
  suffixed prompt and the empty prompt are encoded with the text encoder, 25
  DDIM steps run with classifier-free guidance as a UNet batch of 2
  (unconditional and conditional), the latent is decoded by the VAE and converted
  to a PIL image;
- inversion: each image separately is preprocessed, VAE-encoded and inverted
  with ``DDIMInverseScheduler`` (200 steps, guidance 1.0: a UNet batch of 1), its
  prompt encoded for it.

Every random draw comes from the engine's own plan, so both produce the same
images (up to float rounding), which the benchmarks check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image


def reload_pipeline(model_dir: str, device: torch.device, dtype: torch.dtype):
    """``StableDiffusionPipeline.from_pretrained`` as the reference scripts call it, once per class."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model_dir, torch_dtype=dtype, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@torch.no_grad()
def generate_one(pipe, latent: torch.Tensor, prompt: str, suffixed_prompt: str, split_ratio: float,
                 num_inference_steps: int = 25, guidance_scale: float = 7.5) -> Image.Image:
    """One synthetic image from one x_T, exactly as the reference's per-image loop does it."""
    from diffusers import DDIMScheduler

    device = pipe._execution_device
    plain, _ = pipe.encode_prompt(prompt, device, 1, False)
    suffixed, _ = pipe.encode_prompt(suffixed_prompt, device, 1, False)
    uncond, _ = pipe.encode_prompt("", device, 1, False)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps, device=device)
    threshold = scheduler.config.num_train_timesteps * (1 - split_ratio)
    latents = latent[None].to(device, torch.float32)
    for t in scheduler.timesteps:
        cond = suffixed if t >= threshold else plain
        model_input = torch.cat([latents, latents]).to(pipe.unet.dtype)
        noise = pipe.unet(model_input, t, encoder_hidden_states=torch.cat([uncond, cond])).sample.float()
        noise_uncond, noise_cond = noise.chunk(2)
        noise = noise_uncond + guidance_scale * (noise_cond - noise_uncond)
        latents = scheduler.step(noise, t, latents).prev_sample
    image = pipe.vae.decode(latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(image.float(), output_type="pil")[0]


def generate_class(model_dir: str, device: torch.device, dtype: torch.dtype, inversions: torch.Tensor, plan: Any,
                   prompt: str, suffixed_prompts: Sequence[str], config: Any) -> list[Image.Image]:
    """All synthetic images of one class: reload the pipeline, then one image at a time.

    ``plan`` is the engine's :class:`~diffii_datasets.diffusion.ClassPlan` (pairs, lam
    uniforms, suffix choices), ``config`` its ``GenerationConfig``.
    """
    from diffii_datasets.diffusion.interpolation import interpolate, interpolation_angle, lam_upper_bound

    pipe = reload_pipeline(model_dir, device, dtype)
    images = []
    for index in range(plan.count):
        if plan.pairs is None:  # a class with one image starts from noise
            latent = plan.noise[index]
        else:
            a, b = inversions[plan.pairs[index, 0]], inversions[plan.pairs[index, 1]]
            lam = float(plan.uniforms[index] * lam_upper_bound(interpolation_angle(a, b), config.interpolation))
            latent = interpolate(a, b, lam, config.interpolation)
        suffixed = suffixed_prompts[int(plan.suffix_choices[index])]
        images.append(generate_one(pipe, latent, prompt, suffixed, config.split_ratio, config.denoising_steps,
                                   config.guidance_scale))
    return images


@torch.no_grad()
def invert_one(pipe, image: Image.Image, prompt: str, num_inference_steps: int = 200,
               resolution: int | None = None) -> torch.Tensor:
    """x_T of one image (guidance 1.0), as the reference inverts: one image, one prompt, a UNet batch of 1."""
    from diffusers import DDIMInverseScheduler

    device = pipe._execution_device
    resolution = resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
    cond, _ = pipe.encode_prompt(prompt, device, 1, False)
    pixels = pipe.image_processor.preprocess(image.convert("RGB").resize((resolution, resolution),
                                                                         Image.Resampling.BILINEAR))
    # preprocess returns a channels-last view; the reference's ToTensor/Normalize gave a contiguous batch
    pixels = pixels.contiguous().to(device, pipe.vae.dtype)
    latents = pipe.vae.encode(pixels).latent_dist.mean.float() * pipe.vae.config.scaling_factor
    scheduler = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps, device=device)
    for t in scheduler.timesteps:
        noise = pipe.unet(latents.to(pipe.unet.dtype), t, encoder_hidden_states=cond).sample.float()
        latents = scheduler.step(noise, t, latents).prev_sample
    return latents[0]
