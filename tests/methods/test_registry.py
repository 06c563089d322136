"""The baselines as registered methods: their names, knobs, published defaults, checks, labels and plans."""

import dataclasses
import json
from typing import ClassVar

import pytest

from diffii_datasets.config import DEFAULT_MODEL, DiffIIConfig
from diffii_datasets.diffusion.concepts.config import RECIPE_DA_FUSION, ConceptConfig
from diffii_datasets.methods import all_knobs, get_method, list_methods
from diffii_datasets.methods.baseline_config import EditConfig, sampler_unet_calls
from diffii_datasets.methods.edit_methods import RealGuidanceConfig
from diffii_datasets.methods.real_filter import CLIP_MODEL, EncodedImage
from diffii_datasets.methods.soft_labels import DEFAULT_GAMMA, DIFFMIX_SCRIPT_GAMMA, diffmix_soft_label
from diffii_datasets.store import StoreHeader, SyntheticRecord

BASELINES = ("real-filter", "real-guidance", "real-mix", "da-fusion", "diff-aug", "diff-mix", "real-gen")
TITLES = {"real-gen": "Real-Gen", "real-guidance": "Real-Guidance", "real-filter": "Real-Filter",
          "da-fusion": "DA-Fusion", "real-mix": "Real-Mix", "diff-aug": "Diff-Aug", "diff-mix": "Diff-Mix"}
# The published values each default comes from (see each method's docstring for the file and line).
DA_FUSION_RUN = {"sampler": "pndm", "denoising_steps": 50, "sources": "each"}
DIFF_MIX_RUN = {"sampler": "dpm-solver++", "denoising_steps": 25, "sources": "random", "strengths": (0.7,)}
PUBLISHED = {
    "real-gen": {"sampler": "dpm-solver++", "denoising_steps": 25, "prompt": "a photo of a {bracketed_name}"},
    "real-guidance": {**DA_FUSION_RUN, "strengths": (0.5,), "prompt": "a photo of a {name}"},
    "real-filter": {**DA_FUSION_RUN, "strengths": (0.5,), "prompt": "a photo of a {name}", "clip_model": CLIP_MODEL,
                    "filter_percentile": 10.0, "clip_batch_size": 200, "filter_captions": "metaclass"},
    "da-fusion": {**DA_FUSION_RUN, "strengths": (1.0, 0.75, 0.5, 0.25), "prompt": "a photo of a {concept}"},
    "real-mix": {**DIFF_MIX_RUN, "prompt": "a photo of a {name} {metaclass}"},
    "diff-aug": {**DIFF_MIX_RUN, "prompt": "a photo of a {concept} {metaclass}"},
    "diff-mix": {**DIFF_MIX_RUN, "prompt": "a photo of a {concept} {metaclass}"},
}
SHARED = {"model": DEFAULT_MODEL, "expansion_rate": 5.0, "guidance_scale": 7.5, "resolution": None, "seed": 0}


def test_every_baseline_is_registered_beside_diff_ii():
    assert list_methods() == ["diff-ii", *BASELINES]
    for name in BASELINES:
        method = get_method(name)
        assert method.name == method.config_class.method == name and method.title == TITLES[name]
        assert get_method(name) is method


@pytest.mark.parametrize("name", BASELINES)
def test_published_defaults_and_a_help_text_for_every_knob(name):
    method = get_method(name)
    config = method.config_class()
    for knob, value in {**SHARED, **PUBLISHED[name]}.items():
        assert getattr(config, knob) == value, knob
    knobs = method.config_class.knobs()
    assert all(item.help and item.flag.startswith("--") for item in knobs)
    assert len({item.flag for item in knobs}) == len(knobs)
    assert {item.name: item.default for item in knobs} == {item.name: getattr(config, item.name) for item in knobs}
    concept_knobs = [item.name for item in knobs if item.name.startswith("concept_")]
    assert bool(concept_knobs) == method.concepts


def test_the_union_of_knobs_explains_a_shared_name_per_method():
    union = {item.name: item for item in all_knobs()}
    per_method = {name: {item.name: item.help for item in get_method(name).config_class.knobs()}
                  for name in list_methods()}
    assert set(union) == set().union(*per_method.values())
    seed_help = union["seed"].help  # Diff-II's seed also draws the training subset; the baselines' does not
    assert seed_help.startswith(f"diff-ii: {per_method['diff-ii']['seed']}; the other methods: ")
    assert seed_help.endswith(per_method["diff-mix"]["seed"])
    prompt_help = union["prompt"].help  # Diff-II has no prompt knob: no group may be called "the other methods"
    assert "the other methods" not in prompt_help and "diff-ii" not in prompt_help
    assert f"da-fusion, diff-aug, diff-mix: {per_method['da-fusion']['prompt']}" in prompt_help
    assert union["model"].help == per_method["diff-ii"]["model"]  # one meaning: said once


def test_concepts_diff_aug_and_diff_mix_share_diff_ii_s_recipe_da_fusion_has_its_own():
    assert get_method("diff-aug").config_class().concepts == DiffIIConfig().concepts == ConceptConfig()
    assert get_method("diff-mix").config_class().concepts == ConceptConfig()
    da_fusion = get_method("da-fusion").config_class()
    assert da_fusion.concepts == ConceptConfig(**RECIPE_DA_FUSION)
    assert da_fusion.concept_lora_rank == 0 and da_fusion.concept_separate_classes
    knobs = {item.name: item.default for item in get_method("da-fusion").config_class.knobs()}
    assert knobs["concept_train_steps"] == RECIPE_DA_FUSION["train_steps"]


@pytest.mark.parametrize("name", BASELINES)
def test_configs_round_trip_and_say_what_differs(name):
    cls = get_method(name).config_class
    changed = cls(seed=3, guidance_scale=5.0)
    assert cls.from_json(changed.to_json()) == changed and cls.from_dict(changed.to_dict()) == changed
    assert repr(cls()) == f"{cls.__name__}()" and repr(changed) == f"{cls.__name__}(guidance_scale=5.0, seed=3)"
    assert changed.replace(seed=0, guidance_scale=7.5) == cls()
    assert cls().hash() != changed.hash()
    with pytest.raises(TypeError, match="unknown knob"):
        cls(strength=0.3)


def test_defaults_must_name_own_knobs():
    @dataclasses.dataclass(frozen=True, init=False, repr=False)
    class Broken(EditConfig):
        method: ClassVar[str] = "broken"
        DEFAULTS: ClassVar[dict] = {"not_a_knob": 1}

    with pytest.raises(TypeError, match="not_a_knob"):
        Broken()


@pytest.mark.parametrize("name, prompt, error", [
    ("real-mix", "a photo of a {concept}", ValueError),  # no concepts in Real-Mix
    ("real-mix", "a photo of a {class}", ValueError),
    ("diff-mix", "a photo of a {concept:>3}", ValueError),
    ("diff-mix", "a photo of a {concept", ValueError),
    ("real-gen", "", ValueError),
    ("real-gen", 3, TypeError),
])
def test_prompt_templates_are_checked(name, prompt, error):
    with pytest.raises(error, match="prompt"):
        get_method(name).config_class(prompt=prompt)


def test_prompt_templates_take_their_fields():
    assert get_method("diff-mix").config_class(prompt="{concept}, a {metaclass} ({name}, {bracketed_name})").prompt
    assert get_method("real-gen").config_class(prompt="a photo of a {name} {metaclass}").prompt


@pytest.mark.parametrize("value, expected", [(0.3, (0.3,)), ([1.0, 0.5], (1.0, 0.5)), ((0,), (0.0,))])
def test_strengths_are_one_or_several(value, expected):
    assert get_method("diff-mix").config_class(strengths=value).strengths == expected


@pytest.mark.parametrize("value, error", [([], ValueError), (1.5, ValueError), ([0.5, 0.5], ValueError),
                                          ("0.5", TypeError), ([0.5, None], TypeError)])
def test_bad_strengths_are_named(value, error):
    with pytest.raises(error, match="strengths"):
        get_method("real-mix").config_class(strengths=value)


def test_strengths_and_other_knobs_parse_from_the_command_line():
    knobs = {item.name: item for item in get_method("da-fusion").config_class.knobs()}
    assert knobs["strengths"].parse("1.0,0.75, 0.5") == (1.0, 0.75, 0.5)
    assert knobs["sampler"].choices == ("dpm-solver++", "pndm", "ddim")
    assert knobs["sources"].choices == ("each", "random")


def test_two_methods_never_share_a_store_key():
    common = {"classes": ("a", "b"), "metaclass": "shape", "dataset": "d", "model": "m", "concepts": "none",
              "real_counts": (2, 1), "expected_counts": (10, 5)}
    keys = {StoreHeader(config=get_method(name).config_class(), **common).key() for name in list_methods()}
    assert len(keys) == len(list_methods())
    # Real-Filter's knobs include all of Real-Guidance's: still another store.
    filtered = get_method("real-filter").config_class()
    assert StoreHeader(config=filtered.source(), **common).key() != StoreHeader(config=filtered, **common).key()


def test_real_filter_reads_the_real_guidance_store_of_its_shared_knobs():
    method = get_method("real-filter")
    config = method.config_class(strengths=0.3, seed=4, filter_percentile=20.0, clip_batch_size=7)
    source = method.source_config(config)
    assert type(source) is RealGuidanceConfig and source == RealGuidanceConfig(strengths=0.3, seed=4)
    assert method.source_config(config.replace(filter_percentile=5.0)) == source  # the filter's knobs aside
    assert method.expected_count(7, config) == get_method("real-guidance").expected_count(7, source) == 35
    assert not method.diffusion and not method.concepts and "score" in method.record_fields
    assert [stage.per_synthetic for stage in method.image_stages(config)] == [0]


def test_an_encoded_image_is_written_as_it_is_and_only_in_its_format():
    import io

    buffer = io.BytesIO()
    EncodedImage(b"\x89PNG...", "PNG").save(buffer, format="PNG")
    assert buffer.getvalue() == b"\x89PNG..."
    with pytest.raises(ValueError, match="JPEG"):
        EncodedImage(b"\x89PNG...", "PNG").save(io.BytesIO(), format="JPEG")


def test_mixing_methods_label_with_diff_mix_s_rule_and_the_others_one_hot():
    record = SyntheticRecord(index=0, label=1, source_indices=(0,), strength=0.7, target=3, seed=5)
    for name in ("real-mix", "diff-mix"):
        method = get_method(name)
        assert method.soft_labels and method.inter_class and "target" in method.record_fields
        assert method.soft_label(record, 5) == diffmix_soft_label(1, 3, 0.7, DEFAULT_GAMMA, 5)
        assert DEFAULT_GAMMA == DIFFMIX_SCRIPT_GAMMA == 0.8
        assert method.soft_label(record, 5, gamma=1.0) == pytest.approx([0, 0.3, 0, 0.7, 0])
        with pytest.raises(ValueError, match="gamma"):
            method.soft_label(record, 5, gamma=-1.0)
    for name in ("real-gen", "real-guidance", "real-filter", "da-fusion", "diff-aug"):
        assert not get_method(name).soft_labels
        assert get_method(name).soft_label(record, 5, gamma=0.5) == [0, 1.0, 0, 0, 0]


def test_classify_re_exports_the_rule_the_methods_own():
    from diffii_datasets import classify
    from diffii_datasets.methods import soft_labels

    assert classify.diffmix_soft_label is soft_labels.diffmix_soft_label
    assert (classify.DIFFMIX_GAMMA, classify.DIFFMIX_SCRIPT_GAMMA) == (1.0, 0.8)


@pytest.mark.parametrize("sampler, steps, strength, calls", [
    ("pndm", 50, 0.5, 26), ("pndm", 50, 1.0, 51), ("pndm", 50, 0.01, 0), ("dpm-solver++", 25, 0.7, 17),
    ("dpm-solver++", 25, 1.0, 25), ("ddim", 10, 0.35, 3),
])
def test_unet_calls_follow_diffusers_rule(sampler, steps, strength, calls):
    """Checked against the schedules themselves: the edit's tail of the sampler's timesteps."""
    import torch

    from diffii_datasets.diffusion.img2img import edit_timesteps
    from diffii_datasets.diffusion.schedulers import make_sampler
    from diffii_datasets.testing import tiny_pipeline

    scheduler = make_sampler(tiny_pipeline(seed=0), sampler)
    assert sampler_unet_calls(sampler, steps, strength) == calls
    assert len(edit_timesteps(scheduler, steps, strength, torch.device("cpu"))) == calls


def test_plans_count_each_image_s_unet_calls():
    mixing = get_method("da-fusion").config_class()
    (stage,) = get_method("da-fusion").image_stages(mixing)
    assert stage.per_real == 0 and stage.per_synthetic == round((51 + 38 + 26 + 13) * 2 / 4)
    assert "pndm 50 steps at strength 1/0.75/0.5/0.25" in stage.detail
    (stage,) = get_method("real-gen").image_stages(get_method("real-gen").config_class(guidance_scale=1.0))
    assert stage.per_synthetic == 25 and "guidance" not in stage.detail


def test_methods_describe_themselves_in_json():
    for name in BASELINES:
        data = json.loads(get_method(name).config_class().to_json())
        assert "prompt" in data and "seed" in data
