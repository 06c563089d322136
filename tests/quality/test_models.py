"""Loading the metric networks: real ids through the one pretrained loader; offline errors name what is missing."""

import pytest

from diffii_datasets.quality import QualitySettings, load_quality_models
from diffii_datasets.quality import models as quality_models


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Downloads off (as the network guard sets them), an empty torch hub cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_offline_error_names_every_missing_weight(empty_caches):
    with pytest.raises(OSError) as error:
        load_quality_models(QualitySettings(clip_model="openai/clip-vit-large-patch14"), device="cpu")
    message = str(error.value)
    assert "'openai/clip-vit-large-patch14'" in message and "hf download openai/clip-vit-large-patch14" in message
    assert "AlexNet_Weights.IMAGENET1K_V1" in message and "alexnet-owt-7be5be79.pth" in message
    assert "HF_HUB_OFFLINE=1" in message


@pytest.mark.parametrize("net, file", [("vgg", "vgg16-397923af.pth"), ("squeeze", "squeezenet1_1-b8a52dc0.pth")])
def test_lpips_offline_error_names_the_backbone_checkpoint(empty_caches, net, file):
    with pytest.raises(OSError, match=file):
        quality_models.load_lpips(net, device="cpu")
    assert quality_models.lpips_backbone_file(net).name == file


def test_clip_loads_from_a_local_directory_through_the_pretrained_loader(tmp_path, monkeypatch, empty_caches):
    from diffii_datasets.testing.metrics import tiny_clip, tiny_lpips

    model, processor = tiny_clip()
    model.save_pretrained(tmp_path / "clip")
    processor.save_pretrained(tmp_path / "clip")
    # The LPIPS backbone cannot come from anywhere here: stand in the tiny one for it.
    monkeypatch.setattr(quality_models, "_missing_backbone", lambda net: None)
    monkeypatch.setattr(quality_models, "load_lpips", lambda net, device: tiny_lpips())
    loaded = load_quality_models(QualitySettings(clip_model=str(tmp_path / "clip")), device="cpu")
    assert loaded.names["clip"] == str(tmp_path / "clip") and not loaded.random_weights
    assert loaded.clip.config.projection_dim == model.config.projection_dim
    assert loaded.clip_processor.tokenizer.get_vocab() == processor.tokenizer.get_vocab()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="lpips_net must be one of"):
        QualitySettings(lpips_net="resnet")
    with pytest.raises(ValueError, match="lpips_size must be"):
        QualitySettings(lpips_size=16)
    with pytest.raises(TypeError, match="clip_model must be"):
        QualitySettings(clip_model=3)
