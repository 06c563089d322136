"""Backbones by name, a new head, and pretrained weights that are missing offline."""

import pytest
import torch

from diffii_datasets.classify import WeightsNotAvailable, build_model


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_missing_torchvision_weights_name_the_weights_the_file_and_how_to_get_them(empty_torch_home):
    with pytest.raises(WeightsNotAvailable) as caught:
        build_model("resnet50", 200, "IMAGENET1K_V1", download=False)
    message = str(caught.value)
    assert "ResNet50_Weights.IMAGENET1K_V1" in message
    assert str(empty_torch_home / "resnet50-0676ba61.pth") in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert "weights=None" in message and "TORCH_HOME" in message
    with pytest.raises(WeightsNotAvailable, match="ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1"):
        build_model("vit_b_16", 200, "IMAGENET1K_SWAG_E2E_V1", download=False)


def test_a_failed_download_is_reported_as_the_missing_weights(empty_torch_home, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", unreachable)
    with pytest.raises(WeightsNotAvailable, match=r"could not be downloaded \(OSError: network is unreachable\)"):
        build_model("resnet18", 3, "IMAGENET1K_V1")


def test_cached_weights_load_without_a_download(empty_torch_home, monkeypatch):
    import torchvision

    source = torchvision.models.resnet18()
    empty_torch_home.mkdir(parents=True)
    torch.save(source.state_dict(), empty_torch_home / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)  # must not be called
    model = build_model("resnet18", 5, "IMAGENET1K_V1")
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 5 and model.fc.in_features == 512


def test_random_initialisation_and_the_head_of_any_torchvision_model():
    resnet = build_model("resnet18", 7)
    assert resnet.fc.out_features == 7
    assert resnet(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    assert build_model("mobilenet_v3_small", 4).classifier[-1].out_features == 4
    vit = build_model("vit_b_16", 5, image_size=384)  # the ViT recipe's size, randomly initialised
    assert vit.image_size == 384 and vit.heads.head.out_features == 5


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="model must be a torchvision classification model"):
        build_model("resnet51", 3)
    with pytest.raises(ValueError, match="weights must be one of IMAGENET1K_V1"):
        build_model("resnet18", 3, "IMAGENET21K")
    with pytest.raises(ValueError, match="num_classes must be"):
        build_model("resnet18", 1)


def test_timm_models_by_name_and_their_missing_weights(tmp_path, monkeypatch):
    model = build_model("timm:resnet18", 6)
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 6)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsNotAvailable, match=r"timm:resnet18 \(timm/resnet18\.a1_in1k on the Hugging Face"):
        build_model("timm:resnet18", 6, "pretrained", download=False)
    with pytest.raises(ValueError, match="weights of a timm model must be 'pretrained' or None"):
        build_model("timm:resnet18", 6, "IMAGENET1K_V1")
