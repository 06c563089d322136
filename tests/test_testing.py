"""The offline fixtures: tiny pipeline, tokenizer and image dataset."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from diffii_datasets.testing import TOKENIZER_WORDS, tiny_clip_tokenizer, tiny_image_dataset, tiny_pipeline


def _unet_output(pipe, seed=0):
    g = torch.Generator().manual_seed(seed)
    size = pipe.unet.config.sample_size
    latents = torch.randn(2, 4, size, size, generator=g)
    ids = pipe.tokenizer(["a photo of a bird", "a red circle"], padding="max_length",
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = pipe.text_encoder(ids)[0]
        return pipe.unet(latents, torch.tensor([500, 10]), encoder_hidden_states=hidden).sample


def test_tiny_pipeline_is_a_real_sd_pipeline_with_sd15_scheduler(tiny_pipe):
    assert isinstance(tiny_pipe, StableDiffusionPipeline)
    cfg = tiny_pipe.scheduler.config
    assert (cfg.num_train_timesteps, cfg.beta_schedule) == (1000, "scaled_linear")
    assert (cfg.beta_start, cfg.beta_end) == (0.00085, 0.012)
    assert (cfg.steps_offset, cfg.set_alpha_to_one, cfg.clip_sample) == (1, False, False)
    assert tiny_pipe.vae_scale_factor * tiny_pipe.unet.config.sample_size == 32


def test_tiny_pipeline_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b = tiny_pipeline(seed=0), tiny_pipeline(seed=0)
    assert torch.equal(torch.rand(1), expected_next)
    for (name, pa), (_, pb) in zip(a.unet.state_dict().items(), b.unet.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert torch.equal(_unet_output(a), _unet_output(b))
    other = tiny_pipeline(seed=1)
    assert not torch.equal(_unet_output(a), _unet_output(other))


def test_tiny_pipeline_round_trips_through_save_pretrained(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path / "tiny")
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path / "tiny", local_files_only=True)
    assert loaded.tokenizer("a photo of a bird").input_ids == tiny_pipe.tokenizer("a photo of a bird").input_ids
    assert torch.equal(_unet_output(loaded), _unet_output(tiny_pipe))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    out1 = tiny_pipe("a photo of a bird", num_inference_steps=3, generator=g1, output_type="np").images
    out2 = loaded("a photo of a bird", num_inference_steps=3, generator=g2, output_type="np").images
    assert out1.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(out1, out2)


def test_tokenizer_knows_its_words_as_single_tokens_and_falls_back_to_bytes():
    tok = tiny_clip_tokenizer()
    for word in TOKENIZER_WORDS:
        ids = tok(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, word
    assert len(tok("zqxv", add_special_tokens=False).input_ids) > 1
    ids = tok("a photo of a bird").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "a photo of a bird"


def test_tiny_image_dataset_is_torchvision_style_and_deterministic():
    ds = tiny_image_dataset(num_classes=3, per_class=[2, 3, 1], size=24, seed=5,
                            transform=lambda im: np.asarray(im), target_transform=lambda t: t + 10)
    assert len(ds) == 6
    assert ds.targets == [0, 0, 1, 1, 1, 2]
    assert ds.class_to_idx == {name: i for i, name in enumerate(ds.classes)}
    assert len(set(ds.classes)) == 3
    image, target = ds[3]
    assert image.shape == (24, 24, 3) and target == 11
    again = tiny_image_dataset(num_classes=3, per_class=[2, 3, 1], size=24, seed=5)
    np.testing.assert_array_equal(np.asarray(again[3][0]), image)
    assert not np.array_equal(np.asarray(again[2][0]), image)
    with pytest.raises(IndexError):
        ds[6]


def test_tiny_image_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        tiny_image_dataset(num_classes=0)
    with pytest.raises(ValueError, match="per_class"):
        tiny_image_dataset(num_classes=2, per_class=[1])
    with pytest.raises(ValueError, match="classes"):
        tiny_image_dataset(num_classes=2, classes=["only one"])
