"""DiffIIConfig: paper defaults, validation naming the field, JSON round trip, stable hash."""

import subprocess
import sys

import pytest

from diffii_datasets import DiffIIConfig


def test_paper_defaults():
    c = DiffIIConfig()
    assert c.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (c.resolution, c.expansion_rate, c.split_ratio) == (None, 5.0, 0.3)  # None: the pipeline's own, 512
    assert (c.inversion_steps, c.inversion_guidance_scale) == (200, 1.0)
    assert (c.denoising_steps, c.guidance_scale, c.interpolation) == (25, 7.5, "circle")
    assert (c.concept_train_steps, c.concept_lora_rank, c.concept_learning_rate) == (35000, 10, 5e-5)
    assert c.generation.split_ratio == 0.3 and c.concepts.train_steps == 35000


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
    ({"concept_train_steps": -1}, ValueError, "^concept_train_steps must be a positive int"),
    ({"concept_batch_size": 0}, ValueError, "^concept_batch_size must be a positive int, got 0"),
    ({"seed": -1}, ValueError, "^seed"),
    ({"seed": 2**64}, ValueError, "^seed must be a non-negative int below 2\\*\\*63"),
    ({"split_ratio": "0.5"}, TypeError, "^split_ratio must be a finite number"),
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
    with pytest.raises(TypeError, match="unknown knob.*'lora_rank'.*did you mean 'concept_lora_rank'"):
        DiffIIConfig(lora_rank=4)


def test_knobs_are_declared_once_in_the_layer_that_uses_them():
    from diffii_datasets.diffusion import GenerationConfig
    from diffii_datasets.diffusion.concepts import ConceptConfig

    knobs = {item.name: item for item in DiffIIConfig.knobs()}
    assert knobs["split_ratio"].owner is GenerationConfig and knobs["split_ratio"].flag == "--split-ratio"
    assert knobs["concept_lora_rank"].owner is ConceptConfig and knobs["concept_lora_rank"].field == "lora_rank"
    assert set(DiffIIConfig().to_dict()) == set(knobs)
    for item in knobs.values():  # every default passes its own check, and is what a fresh config holds
        assert item.help and DiffIIConfig().to_dict()[item.name] == (
            list(item.default) if isinstance(item.default, tuple) else item.default)
    c = DiffIIConfig(split_ratio=0.1, concept_lora_rank=4)
    assert (c.generation.split_ratio, c.concepts.lora_rank) == (0.1, 4)
    assert c == DiffIIConfig(generation=GenerationConfig(split_ratio=0.1), concepts=ConceptConfig(lora_rank=4))
    assert DiffIIConfig(generation=GenerationConfig(split_ratio=0.1), split_ratio=0.2).split_ratio == 0.2
    assert c.replace(seed=5).seed == 5 and c.replace(seed=5).concepts.lora_rank == 4
    assert repr(c) == "DiffIIConfig(split_ratio=0.1, concept_lora_rank=4)"


def test_configs_of_version_0_1_still_load():
    old = {"batch_size": 8, "concept_batch_size": 4, "gradient_checkpointing": True, "lora_rank": 4,
           "tokens_per_class": 2, "resolution": 512, "suffixes": ["on a branch"], "seed": 1}
    c = DiffIIConfig.from_dict(old)
    assert (c.concept_gradient_checkpointing, c.concept_lora_rank, c.concept_tokens_per_class) == (True, 4, 2)
    assert (c.resolution, c.suffixes, c.seed) == (512, ("on a branch",), 1)


def test_importing_the_config_loads_no_torch():
    code = ("import sys; import diffii_datasets.config as c; c.DiffIIConfig(split_ratio=0.1); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
