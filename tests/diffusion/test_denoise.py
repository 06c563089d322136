"""Two-stage denoising against diffusers' DDIMScheduler run as a plain loop and through the pipeline."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image

from diffii_datasets.diffusion.denoise import decode_latents, denoising_timesteps, suffix_steps, two_stage_denoise
from diffii_datasets.diffusion.pipeline import PromptEncoder
from diffii_datasets.testing import tiny_pipeline

PLAIN = "a photo of a red circle"
SUFFIXED = "a photo of a red circle on the grass."


def _latents(count=2, seed=0, side=16):
    return torch.randn(count, 4, side, side, generator=torch.Generator().manual_seed(seed))


def _plain_ddim_loop(pipe, latents, prompt, steps, guidance_scale=7.5):
    """DDIM with classifier-free guidance written out with diffusers' scheduler and the pipeline's text encoder."""
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    cond, uncond = pipe.encode_prompt([prompt] * latents.shape[0], torch.device("cpu"), 1, True)
    x = latents
    with torch.no_grad():
        for t in scheduler.timesteps:
            noise = pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
            eps_u, eps_c = noise.chunk(2)
            x = scheduler.step(eps_u + guidance_scale * (eps_c - eps_u), t, x).prev_sample
    return x


def assert_relatively_close(actual, expected, tol=1e-4):
    assert actual.shape == expected.shape
    assert float((actual - expected).norm() / expected.norm()) < tol


def test_sd15_timesteps(tiny_pipe):
    assert denoising_timesteps(tiny_pipe, 25) == list(range(961, 0, -40))
    assert suffix_steps(tiny_pipe, 25, 0.3) == [True] * 7 + [False] * 18
    assert suffix_steps(tiny_pipe, 25, 0.0) == [False] * 25
    assert suffix_steps(tiny_pipe, 25, 1.0) == [True] * 25
    # the rule t >= 1000 * (1 - s), at its edges: 961 is the only step at or above 960
    assert suffix_steps(tiny_pipe, 25, 0.04) == [True] + [False] * 24
    assert suffix_steps(tiny_pipe, 25, 0.5) == [t >= 500 for t in range(961, 0, -40)]


def test_split_zero_equals_plain_ddim(tiny_pipe):
    latents = _latents()
    expected = _plain_ddim_loop(tiny_pipe, latents, PLAIN, 25)
    result = two_stage_denoise(tiny_pipe, latents, PLAIN, SUFFIXED, 0.0, output_type="latent")
    assert result.dtype == torch.float32
    assert_relatively_close(result, expected)
    # decoding is the pipeline's: VAE decode of latents / scaling factor, mapped from [-1, 1] to [0, 1]
    with torch.no_grad():
        decoded = (tiny_pipe.vae.decode(expected / tiny_pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(decode_latents(tiny_pipe, result), decoded, atol=1e-3, rtol=1e-3)


def test_split_one_equals_plain_ddim_with_the_suffixed_prompt(tiny_pipe):
    latents = _latents(seed=1)
    expected = _plain_ddim_loop(tiny_pipe, latents, SUFFIXED, 10)
    result = two_stage_denoise(tiny_pipe, latents, PLAIN, SUFFIXED, 1.0, num_inference_steps=10, output_type="latent")
    assert_relatively_close(result, expected)
    assert not torch.allclose(result, _plain_ddim_loop(tiny_pipe, latents, PLAIN, 10), atol=1e-3)


def test_split_zero_equals_the_diffusers_pipeline_with_ddim(tiny_pipe):
    ddim_pipe = StableDiffusionPipeline(
        **{**tiny_pipe.components, "scheduler": DDIMScheduler.from_config(tiny_pipe.scheduler.config)},
        requires_safety_checker=False)
    ddim_pipe.set_progress_bar_config(disable=True)
    latents = _latents(seed=2)
    expected = ddim_pipe([PLAIN] * 2, latents=latents.clone(), num_inference_steps=10, guidance_scale=7.5,
                         output_type="latent").images
    result = two_stage_denoise(tiny_pipe, latents, PLAIN, None, 0.0, num_inference_steps=10, output_type="latent")
    assert_relatively_close(result, expected)


def test_the_switch_happens_at_the_rule_timesteps(tiny_pipe):
    encoder = PromptEncoder(tiny_pipe)
    plain, suffixed, empty = encoder([PLAIN]), encoder([SUFFIXED]), encoder([""])
    seen = []

    def record(module, args, kwargs):
        hidden = kwargs["encoder_hidden_states"]
        assert hidden.shape[0] == 2 * 2  # CFG as one batched call: [uncond; cond] for 2 latents
        torch.testing.assert_close(hidden[:2], empty.expand(2, -1, -1))
        cond = hidden[2:]
        if torch.allclose(cond, suffixed.expand(2, -1, -1)):
            seen.append((int(args[1]), "suffix"))
        else:
            torch.testing.assert_close(cond, plain.expand(2, -1, -1))
            seen.append((int(args[1]), "plain"))

    handle = tiny_pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        two_stage_denoise(tiny_pipe, _latents(), PLAIN, SUFFIXED, 0.3, num_inference_steps=25, output_type="latent",
                          prompt_encoder=encoder)
    finally:
        handle.remove()
    assert [t for t, _ in seen] == list(range(961, 0, -40))
    assert [kind for _, kind in seen] == ["suffix"] * 7 + ["plain"] * 18
    assert [t for t, kind in seen if kind == "suffix"] == [961, 921, 881, 841, 801, 761, 721]


def test_batched_equals_unbatched_and_prompts_per_latent(tiny_pipe):
    latents = _latents(count=3, seed=3)
    prompts = [PLAIN, "a photo of a blue square", PLAIN]
    suffixed = [SUFFIXED, "a photo of a blue square in the snow.", "a photo of a red circle in the sky."]
    together = two_stage_denoise(tiny_pipe, latents, prompts, suffixed, 0.5, num_inference_steps=6,
                                 output_type="latent", batch_size=3)
    for i in range(3):
        alone = two_stage_denoise(tiny_pipe, latents[i:i + 1], prompts[i], suffixed[i], 0.5, num_inference_steps=6,
                                  output_type="latent")
        assert_relatively_close(together[i:i + 1], alone)
    uneven = two_stage_denoise(tiny_pipe, latents, prompts, suffixed, 0.5, num_inference_steps=6,
                               output_type="latent", batch_size=2)
    assert_relatively_close(uneven, together)


def test_text_is_encoded_once_per_distinct_prompt_and_cfg_is_one_unet_call(tiny_pipe):
    text_rows, unet_batches = [], []
    hooks = [tiny_pipe.text_encoder.register_forward_pre_hook(lambda m, args: text_rows.append(args[0].shape[0])),
             tiny_pipe.unet.register_forward_pre_hook(lambda m, args: unet_batches.append(args[0].shape[0]))]
    try:
        two_stage_denoise(tiny_pipe, _latents(count=5), PLAIN, [SUFFIXED] * 4 + ["a photo of a red circle in snow."],
                          0.3, num_inference_steps=4, output_type="latent", batch_size=2)
    finally:
        for hook in hooks:
            hook.remove()
    # 4 distinct prompts (plain, 2 suffixed, empty) over 3 batches, each encoded exactly once
    assert sum(text_rows) == 4
    # 3 batches x 4 steps, each one UNet call on [uncond; cond]
    assert unet_batches == [4] * 4 + [4] * 4 + [2] * 4


def test_output_types(tiny_pipe):
    latents = _latents(count=2, seed=4)
    final = two_stage_denoise(tiny_pipe, latents, PLAIN, SUFFIXED, 0.3, num_inference_steps=3, output_type="latent")
    pt = two_stage_denoise(tiny_pipe, latents, PLAIN, SUFFIXED, 0.3, num_inference_steps=3, output_type="pt")
    pil = two_stage_denoise(tiny_pipe, latents, PLAIN, SUFFIXED, 0.3, num_inference_steps=3)
    assert final.shape == (2, 4, 16, 16)
    assert pt.shape == (2, 3, 32, 32) and pt.dtype == torch.float32 and 0 <= pt.min() and pt.max() <= 1
    torch.testing.assert_close(pt, decode_latents(tiny_pipe, final))
    assert isinstance(pil, list) and len(pil) == 2
    assert all(isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (32, 32) for im in pil)
    expected = (pt[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert (np.asarray(pil[0]) == expected).all()
    # an explicit resolution changes the expected latent size; no latents gives no output
    small = two_stage_denoise(tiny_pipe, _latents(1, side=8), PLAIN, None, 0.0, num_inference_steps=2,
                              output_type="pt", resolution=16)
    assert small.shape == (1, 3, 16, 16)
    assert two_stage_denoise(tiny_pipe, _latents(0), PLAIN, None, 0.0) == []
    assert two_stage_denoise(tiny_pipe, _latents(0), PLAIN, None, 0.0, output_type="pt").shape == (0, 3, 32, 32)


def test_no_guidance_at_scale_one(tiny_pipe):
    batches = []
    handle = tiny_pipe.unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        two_stage_denoise(tiny_pipe, _latents(2), PLAIN, None, 0.0, num_inference_steps=2, guidance_scale=1.0,
                          output_type="latent")
    finally:
        handle.remove()
    assert batches == [2, 2]


def test_half_precision_pipeline_runs_the_unet_in_its_dtype():
    pipe = tiny_pipeline(seed=0, torch_dtype=torch.bfloat16)
    dtypes = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda m, args, kwargs: dtypes.append((args[0].dtype, kwargs["encoder_hidden_states"].dtype)), with_kwargs=True)
    try:
        final = two_stage_denoise(pipe, _latents(2), PLAIN, SUFFIXED, 0.3, num_inference_steps=3, output_type="latent")
        images = two_stage_denoise(pipe, _latents(2), PLAIN, SUFFIXED, 0.3, num_inference_steps=3, output_type="pt")
    finally:
        handle.remove()
    assert set(dtypes) == {(torch.bfloat16, torch.bfloat16)}
    # latents stay float32 between steps; the result is close to the float32 pipeline's
    assert final.dtype == torch.float32 and images.dtype == torch.float32 and torch.isfinite(images).all()
    reference = two_stage_denoise(tiny_pipeline(seed=0), _latents(2), PLAIN, SUFFIXED, 0.3, num_inference_steps=3,
                                  output_type="latent")
    assert float((final - reference).norm() / reference.norm()) < 0.1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"split_ratio": -0.1}, ValueError, r"split_ratio must be a finite number in \[0, 1\]"),
        ({"split_ratio": 1.5}, ValueError, r"split_ratio must be a finite number in \[0, 1\]"),
        ({"split_ratio": "0.3"}, TypeError, "split_ratio"),
        ({"latents": torch.zeros(2, 3, 16, 16)}, ValueError, r"latents must have shape \[B, 4, 16, 16\]"),
        ({"latents": torch.zeros(2, 4, 8, 8)}, ValueError, r"latents must have shape \[B, 4, 16, 16\]"),
        ({"latents": torch.zeros(4, 16, 16)}, ValueError, "latents must have shape"),
        ({"prompts": [PLAIN] * 3}, ValueError, r"prompts must hold one prompt per latent/image \(2\), got 3"),
        ({"suffixed_prompts": [SUFFIXED]}, ValueError, "suffixed_prompts must hold one prompt"),
        ({"suffixed_prompts": None}, ValueError, "suffixed_prompts is required when split_ratio > 0"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps must be a positive int"),
        ({"guidance_scale": float("nan")}, ValueError, "guidance_scale"),
        ({"output_type": "np"}, ValueError, "output_type must be one of"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
    ],
)
def test_bad_input(tiny_pipe, kwargs, error, match):
    arguments = {"latents": torch.zeros(2, 4, 16, 16), "prompts": PLAIN, "suffixed_prompts": SUFFIXED,
                 "split_ratio": 0.3, "num_inference_steps": 2, **kwargs}
    with pytest.raises(error, match=match):
        two_stage_denoise(tiny_pipe, **arguments)
