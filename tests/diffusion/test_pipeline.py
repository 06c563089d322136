"""Pipeline loading (local directory, offline Hub id) and the helpers shared by inversion and denoising."""

import pytest
import torch

from diffii_datasets.diffusion.pipeline import (
    PromptEncoder,
    broadcast_prompts,
    check_latents,
    latent_shape,
    load_pipeline,
    pipeline_resolution,
    predict_noise,
)
from diffii_datasets.testing import tiny_pipeline


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-sd")
    pipe = tiny_pipeline(seed=3)
    pipe.save_pretrained(path)
    return path, pipe


def test_load_local_directory(saved_pipeline):
    path, original = saved_pipeline
    pipe = load_pipeline(path, device="cpu")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.safety_checker is None
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"  # fp32 by default on CPU
    for name in ("unet", "vae", "text_encoder"):
        loaded, saved = getattr(pipe, name).state_dict(), getattr(original, name).state_dict()
        assert loaded.keys() == saved.keys()
        assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert pipe.scheduler.config.steps_offset == 1
    assert pipe.tokenizer("a photo of a bird").input_ids == original.tokenizer("a photo of a bird").input_ids
    # SDPA attention, no slicing
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    # str paths and explicit dtypes work too
    half = load_pipeline(str(path), device="cpu", torch_dtype=torch.bfloat16)
    assert half.unet.dtype == torch.bfloat16 and half.vae.dtype == torch.bfloat16


def test_offline_hub_id_not_cached_gives_instructions():
    with pytest.raises(OSError, match=r"not in the local Hugging Face cache.*hf download nobody/no-such-model"):
        load_pipeline("nobody/no-such-model", device="cpu", local_files_only=True)
    with pytest.raises(OSError, match="stable-diffusion-v1-5/stable-diffusion-v1-5"):
        load_pipeline("runwayml/stable-diffusion-v1-5", device="cpu", local_files_only=True)


def test_offline_is_the_default_under_hf_hub_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match="downloads are disabled"):
        load_pipeline("nobody/no-such-model", device="cpu")


def test_bad_model_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing directory nor a Hub id"):
        load_pipeline(tmp_path / "missing" / "dir", device="cpu")
    with pytest.raises(ValueError, match="model_index.json"):
        load_pipeline(tmp_path, device="cpu")
    with pytest.raises(TypeError, match="model must be"):
        load_pipeline(3, device="cpu")
    with pytest.raises(TypeError, match="torch_dtype"):
        load_pipeline(tmp_path, device="cpu", torch_dtype="float16")


def test_shapes_and_resolution(tiny_pipe):
    assert pipeline_resolution(tiny_pipe) == 32
    assert latent_shape(tiny_pipe) == (4, 16, 16)
    assert latent_shape(tiny_pipe, 64) == (4, 32, 32)
    with pytest.raises(ValueError, match="resolution must be a positive multiple of the VAE scale factor 2"):
        latent_shape(tiny_pipe, 33)
    check_latents(tiny_pipe, torch.zeros(2, 4, 16, 16))
    with pytest.raises(ValueError, match=r"latents must have shape \[B, 4, 16, 16\]"):
        check_latents(tiny_pipe, torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"inversions must have shape"):
        check_latents(tiny_pipe, torch.zeros(4, 16, 16), name="inversions")
    with pytest.raises(TypeError, match="latents must be a torch tensor"):
        check_latents(tiny_pipe, [[0.0]])


def test_argument_checks():
    assert broadcast_prompts("x", 3) == ["x", "x", "x"]
    assert broadcast_prompts(("x", "y"), 2) == ["x", "y"]
    with pytest.raises(ValueError, match=r"prompts must hold one prompt per latent/image \(3\), got 2"):
        broadcast_prompts(["x", "y"], 3)
    with pytest.raises(TypeError, match="suffixed_prompts must be a str or a sequence of str"):
        broadcast_prompts([1, 2], 2, name="suffixed_prompts")


def test_prompt_encoder_encodes_each_distinct_prompt_once(tiny_pipe):
    calls = []
    handle = tiny_pipe.text_encoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        encoder = PromptEncoder(tiny_pipe)
        first = encoder(["a photo of a bird", "a photo of a car", "a photo of a bird"])
        again = encoder(["a photo of a car", ""])
    finally:
        handle.remove()
    assert calls == [2, 1]  # one batched call for the two new prompts, then one for ""
    assert len(encoder) == 3
    assert first.shape == (3, 77, 32)
    torch.testing.assert_close(first[0], first[2])
    torch.testing.assert_close(again[0], first[1])
    reference, _ = tiny_pipe.encode_prompt(["a photo of a car"], torch.device("cpu"), 1, False)
    torch.testing.assert_close(again[0], reference[0], atol=1e-5, rtol=1e-5)


def test_predict_noise_is_one_batched_cfg_call(tiny_pipe):
    encoder = PromptEncoder(tiny_pipe)
    cond, uncond = encoder(["a photo of a bird"] * 2), encoder([""] * 2)
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)
    batches = []
    handle = tiny_pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        guided = predict_noise(tiny_pipe, latents, t, cond, uncond, 7.5)
        plain = predict_noise(tiny_pipe, latents, t, cond, None, 7.5)
    finally:
        handle.remove()
    assert batches == [4, 2]
    with torch.no_grad():
        eps_c = tiny_pipe.unet(latents, t, encoder_hidden_states=cond).sample
        eps_u = tiny_pipe.unet(latents, t, encoder_hidden_states=uncond).sample
    torch.testing.assert_close(plain, eps_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided, eps_u + 7.5 * (eps_c - eps_u), atol=1e-4, rtol=1e-4)
