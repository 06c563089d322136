"""DDIM inversion against diffusers' own DDIMInverseScheduler, run as a plain loop and through the pipeline."""

import numpy as np
import pytest
import torch
from diffusers import DDIMInverseScheduler, StableDiffusionPipeline
from PIL import Image

from diffii_datasets.diffusion.denoise import two_stage_denoise
from diffii_datasets.diffusion.inversion import ddim_invert, encode_images, load_image_batch
from diffii_datasets.testing import tiny_image_dataset

PROMPT = "a photo of a red circle"


@pytest.fixture(scope="module")
def images():
    """Three 32x32 images as a float tensor [3, 3, 32, 32] in [0, 1]."""
    dataset = tiny_image_dataset(num_classes=1, per_class=3, size=32, seed=1)
    arrays = [np.asarray(dataset[i][0], dtype=np.float32) / 255 for i in range(3)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def assert_relatively_close(actual, expected, tol=1e-3):
    """Batch composition changes float rounding, which inversion through random weights amplifies a little."""
    assert actual.shape == expected.shape
    assert float((actual - expected).norm() / expected.norm()) < tol


def _vae_latents(pipe, images):
    with torch.no_grad():
        return pipe.vae.encode(images * 2 - 1).latent_dist.mean * pipe.vae.config.scaling_factor


def _plain_inversion_loop(pipe, images, prompt, steps):
    """DDIM inversion written out with diffusers' DDIMInverseScheduler, no guidance."""
    scheduler = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    tokens = pipe.tokenizer([prompt] * images.shape[0], padding="max_length",
                            max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        cond = pipe.text_encoder(tokens.input_ids)[0]
        latents = _vae_latents(pipe, images)
        for t in scheduler.timesteps:
            noise = pipe.unet(latents, t, encoder_hidden_states=cond).sample
            latents = scheduler.step(noise, t, latents).prev_sample
    return latents


def test_equals_plain_ddim_inverse_loop(tiny_pipe, images):
    expected = _plain_inversion_loop(tiny_pipe, images, PROMPT, 10)
    result = ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=10)
    assert result.shape == (3, 4, 16, 16) and result.dtype == torch.float32
    torch.testing.assert_close(result, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(result, _vae_latents(tiny_pipe, images), atol=0.1)


def test_equals_the_pipeline_run_with_the_inverse_scheduler(tiny_pipe, images):
    """What the authors' code does: swap in DDIMInverseScheduler and call the pipeline on the image latents."""
    scheduler = DDIMInverseScheduler.from_config(tiny_pipe.scheduler.config)
    inverse_pipe = StableDiffusionPipeline(**{**tiny_pipe.components, "scheduler": scheduler},
                                           requires_safety_checker=False)
    inverse_pipe.set_progress_bar_config(disable=True)
    x0 = _vae_latents(tiny_pipe, images[:2])
    expected = inverse_pipe([PROMPT] * 2, latents=x0, num_inference_steps=10, guidance_scale=1.0,
                            output_type="latent").images
    result = ddim_invert(tiny_pipe, images[:2], PROMPT, num_inference_steps=10)
    torch.testing.assert_close(result, expected, atol=1e-4, rtol=1e-4)


def test_deterministic_and_batch_independent(tiny_pipe, images):
    one_batch = ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=5, batch_size=3)
    singles = ddim_invert(tiny_pipe, images, [PROMPT] * 3, num_inference_steps=5, batch_size=1)
    uneven = ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=5, batch_size=2)
    assert_relatively_close(singles, one_batch)
    assert_relatively_close(uneven, one_batch)
    again = ddim_invert(tiny_pipe, images[:1], PROMPT, num_inference_steps=5, batch_size=1)
    torch.testing.assert_close(again, singles[:1], atol=0, rtol=0)  # no randomness anywhere


def test_prompts_per_image(tiny_pipe, images):
    prompts = [PROMPT, "a photo of a blue square", PROMPT]
    mixed = ddim_invert(tiny_pipe, images, prompts, num_inference_steps=5)
    other = ddim_invert(tiny_pipe, images[1:2], "a photo of a blue square", num_inference_steps=5)
    same = ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=5)
    assert_relatively_close(mixed[1:2], other)
    assert_relatively_close(mixed[[0, 2]], same[[0, 2]])
    assert not torch.allclose(mixed[1], same[1], atol=1e-3)


def test_guidance_above_one_uses_the_empty_prompt(tiny_pipe, images):
    guided = ddim_invert(tiny_pipe, images[:1], PROMPT, num_inference_steps=5, guidance_scale=3.0)
    scheduler = DDIMInverseScheduler.from_config(tiny_pipe.scheduler.config)
    scheduler.set_timesteps(5)
    cond, uncond = tiny_pipe.encode_prompt([PROMPT], torch.device("cpu"), 1, True)
    with torch.no_grad():
        latents = _vae_latents(tiny_pipe, images[:1])
        for t in scheduler.timesteps:
            eps_u, eps_c = tiny_pipe.unet(torch.cat([latents] * 2), t,
                                          encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
            latents = scheduler.step(eps_u + 3.0 * (eps_c - eps_u), t, latents).prev_sample
    torch.testing.assert_close(guided, latents, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_invert_then_denoise_gets_closer_with_more_steps(tiny_pipe, images):
    """Reconstruction improves with the step count.

    Random tiny weights keep the error large: the tiny VAE's latents are small
    (std ~0.05) next to the UNet's noise predictions, so the relative error is
    far above 1 here (about 35 at 10 steps, 26 at 200) and only the trend is tested.
    """
    x0 = _vae_latents(tiny_pipe, images[:2])
    errors = {}
    for steps in (10, 200):
        x_t = ddim_invert(tiny_pipe, images[:2], PROMPT, num_inference_steps=steps)
        back = two_stage_denoise(tiny_pipe, x_t, PROMPT, None, 0.0, num_inference_steps=steps, guidance_scale=1.0,
                                 output_type="latent")
        errors[steps] = float((back - x0).norm() / x0.norm())
    assert errors[200] < 0.85 * errors[10], errors


def test_image_inputs_are_converted(tiny_pipe, images):
    reference = ddim_invert(tiny_pipe, images[:1], PROMPT, num_inference_steps=3)
    as_uint8 = (images[:1] * 255).round().to(torch.uint8)
    torch.testing.assert_close(ddim_invert(tiny_pipe, as_uint8, PROMPT, num_inference_steps=3), reference,
                               atol=1e-2, rtol=1e-2)
    pil = Image.fromarray(as_uint8[0].permute(1, 2, 0).numpy())
    from_pil = ddim_invert(tiny_pipe, [pil], PROMPT, num_inference_steps=3)
    torch.testing.assert_close(from_pil, ddim_invert(tiny_pipe, as_uint8, PROMPT, num_inference_steps=3))
    # RGBA drops alpha; grayscale is repeated to three channels, as a PIL "L" image or a 1-channel tensor
    rgba = pil.convert("RGBA")
    torch.testing.assert_close(ddim_invert(tiny_pipe, [rgba], PROMPT, num_inference_steps=3), from_pil)
    gray = pil.convert("L")
    gray_tensor = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255)[None, None]
    from_gray_pil = ddim_invert(tiny_pipe, [gray], PROMPT, num_inference_steps=3)
    from_gray_tensor = ddim_invert(tiny_pipe, gray_tensor, PROMPT, num_inference_steps=3)
    from_gray_rgb = ddim_invert(tiny_pipe, gray_tensor.expand(-1, 3, -1, -1), PROMPT, num_inference_steps=3)
    torch.testing.assert_close(from_gray_tensor, from_gray_rgb)
    torch.testing.assert_close(from_gray_pil, from_gray_rgb)
    # other sizes are resized to the pipeline's resolution; a mixed-size list works
    mixed = ddim_invert(tiny_pipe, [pil.resize((48, 40)), pil], PROMPT, num_inference_steps=3)
    assert mixed.shape == (2, 4, 16, 16)
    assert_relatively_close(mixed[1:], from_pil)
    # an explicit resolution sets the latent size
    assert ddim_invert(tiny_pipe, [pil], PROMPT, num_inference_steps=3, resolution=16).shape == (1, 4, 8, 8)
    assert ddim_invert(tiny_pipe, [], PROMPT, num_inference_steps=3).shape == (0, 4, 16, 16)


def test_images_of_another_size_are_resized_with_lanczos_as_the_authors_do(tiny_pipe):
    pil = tiny_image_dataset(num_classes=1, per_class=1, size=64, seed=2)[0][0].resize((48, 40))
    lanczos = torch.from_numpy(np.asarray(pil.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32) / 255)
    assert torch.equal(load_image_batch([pil], 0, 1, 32)[0], lanczos.permute(2, 0, 1))  # PIL images: exactly
    bilinear = pil.resize((32, 32), Image.Resampling.BILINEAR)
    torch.testing.assert_close(ddim_invert(tiny_pipe, [pil], PROMPT, num_inference_steps=3),
                               ddim_invert(tiny_pipe, [pil.resize((32, 32), Image.Resampling.LANCZOS)], PROMPT,
                                           num_inference_steps=3), atol=0, rtol=0)
    assert not torch.equal(load_image_batch([pil], 0, 1, 32), load_image_batch([bilinear], 0, 1, 32))
    # a float tensor is resized with the same filter in 32-bit float, channel by channel
    as_tensor = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    torch.testing.assert_close(load_image_batch(as_tensor, 0, 1, 32)[0], lanczos.permute(2, 0, 1), atol=2e-2, rtol=0)


def test_encode_images_is_the_scaled_posterior_mean(tiny_pipe, images):
    torch.testing.assert_close(encode_images(tiny_pipe, images), _vae_latents(tiny_pipe, images))


def test_bad_input(tiny_pipe, images):
    with pytest.raises(ValueError, match=r"images as a tensor must have shape \[B, C, H, W\] with C in \(1, 3, 4\)"):
        ddim_invert(tiny_pipe, images[:, :2], PROMPT, num_inference_steps=2)
    with pytest.raises(ValueError, match="images as a tensor must have shape"):
        ddim_invert(tiny_pipe, images[0], PROMPT, num_inference_steps=2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        ddim_invert(tiny_pipe, images * 2 - 1, PROMPT, num_inference_steps=2)
    with pytest.raises(TypeError, match="images must be a tensor"):
        ddim_invert(tiny_pipe, "image.png", PROMPT, num_inference_steps=2)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        ddim_invert(tiny_pipe, [images[0], torch.zeros(2, 8, 8)], PROMPT, num_inference_steps=2)
    with pytest.raises(ValueError, match=r"prompts must hold one prompt per latent/image \(3\), got 2"):
        ddim_invert(tiny_pipe, images, [PROMPT, PROMPT], num_inference_steps=2)
    with pytest.raises(ValueError, match="num_inference_steps must be a positive int"):
        ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=2, batch_size=0)
    with pytest.raises(ValueError, match="guidance_scale"):
        ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=2, guidance_scale=-1.0)
    with pytest.raises(ValueError, match="resolution"):
        ddim_invert(tiny_pipe, images, PROMPT, num_inference_steps=2, resolution=31)
