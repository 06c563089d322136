"""DiffIIConfig: paper defaults, validation naming the field, JSON round trip, stable hash."""

import subprocess
import sys

import pytest

from diffii_datasets import DiffIIConfig


def test_paper_defaults():
    c = DiffIIConfig()
    assert c.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (c.resolution, c.expansion_rate, c.split_ratio) == (512, 5.0, 0.3)
    assert (c.inversion_steps, c.inversion_guidance_scale) == (200, 1.0)
    assert (c.denoising_steps, c.guidance_scale, c.interpolation) == (25, 7.5, "circle")
    assert (c.concept_train_steps, c.lora_rank, c.concept_learning_rate) == (35000, 10, 5e-5)
    assert c.generation_config().split_ratio == 0.3 and c.concept_config().train_steps == 35000


def test_json_round_trip_and_stable_hash():
    c = DiffIIConfig(split_ratio=1.0, suffixes=["on a branch", "in the sky"], seed=3)
    again = DiffIIConfig.from_json(c.to_json())
    assert again == c and again.hash() == c.hash()
    assert DiffIIConfig(seed=4).hash() != DiffIIConfig(seed=3).hash()
    code = "from diffii_datasets import DiffIIConfig; print(DiffIIConfig(seed=3).hash())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == DiffIIConfig(seed=3).hash()
    assert c.differences(DiffIIConfig()) == {"split_ratio": (1.0, 0.3), "seed": (3, 0),
                                             "suffixes": (["on a branch", "in the sky"], "builtin")}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"split_ratio": 1.5}, ValueError, "split_ratio"),
    ({"expansion_rate": 0}, ValueError, "expansion_rate"),
    ({"inversion_steps": 0}, ValueError, "inversion_steps"),
    ({"interpolation": "cubic"}, ValueError, "interpolation"),
    ({"resolution": 500}, ValueError, "resolution"),
    ({"concept_train_steps": -1}, ValueError, "train_steps"),
    ({"image_format": "gif"}, ValueError, "image_format"),
    ({"suffixes": "nonsense:spec"}, ValueError, "builtin"),
    ({"suffixes": []}, ValueError, "empty"),
    ({"seed": "0"}, TypeError, "seed"),
    ({"denoising_steps": 2.5}, TypeError, "denoising_steps"),
])
def test_bad_values_name_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        DiffIIConfig(**kwargs)


def test_unknown_fields_are_listed():
    with pytest.raises(ValueError, match="unknown DiffIIConfig fields: \\['steps'\\]"):
        DiffIIConfig.from_dict({"steps": 3})
