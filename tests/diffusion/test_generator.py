"""Per-class generation: counts, pairs, provenance, determinism, streaming, batch and order independence."""

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from diffii_datasets.diffusion import denoise as denoise_module
from diffii_datasets.diffusion import generator as generator_module
from diffii_datasets.diffusion.generator import (
    GenerationConfig,
    SyntheticSample,
    class_seed,
    generate_class,
    invert_class,
    num_synthetic,
    plan_class,
)
from diffii_datasets.diffusion.interpolation import interpolate, interpolation_angle
from diffii_datasets.diffusion.inversion import ddim_invert
from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.testing import tiny_image_dataset

SUFFIXES = ["standing on a tree branch.", "A photo of a bird flying in the sky.", "swimming in the water"]
FAST = GenerationConfig(expansion_rate=2.0, split_ratio=0.5, inversion_steps=2, denoising_steps=2, batch_size=3)


def _inversions(count, seed=0):
    return torch.randn(count, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def _run(pipe, inversions, config=FAST, suffixes=SUFFIXES, seed=0, class_index=0):
    return list(generate_class(pipe, inversions, "<class_0>", "bird", suffixes, config, seed=seed,
                               class_index=class_index))


def _pixels(samples):
    return np.stack([np.asarray(s.image, dtype=np.int16) for s in samples])


@pytest.fixture
def spy(monkeypatch):
    """Record every two_stage_denoise call the generator makes (and still run it)."""
    calls = []

    def recording(pipe, latents, prompts, suffixed_prompts, *args, **kwargs):
        calls.append({"latents": latents.clone(), "prompts": prompts, "suffixed_prompts": suffixed_prompts,
                      "args": args, "kwargs": kwargs})
        return denoise_module.two_stage_denoise(pipe, latents, prompts, suffixed_prompts, *args, **kwargs)

    monkeypatch.setattr(generator_module, "two_stage_denoise", recording)
    return calls


def test_config_defaults_are_the_papers():
    config = GenerationConfig()
    assert dataclasses.asdict(config) == {
        "expansion_rate": 5.0, "split_ratio": 0.3, "inversion_steps": 200, "inversion_guidance_scale": 1.0,
        "denoising_steps": 25, "guidance_scale": 7.5, "interpolation": "circle", "batch_size": 8, "resolution": None,
        "autocast_dtype": None,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.split_ratio = 0.5


@pytest.mark.parametrize("field, value, error", [
    ("expansion_rate", 0, ValueError), ("expansion_rate", -1.0, ValueError),
    ("expansion_rate", float("inf"), ValueError), ("split_ratio", 1.2, ValueError),
    ("split_ratio", -0.1, ValueError), ("split_ratio", True, TypeError),
    ("inversion_steps", 0, ValueError), ("denoising_steps", 2.5, TypeError), ("batch_size", 0, ValueError),
    ("guidance_scale", -1.0, ValueError), ("inversion_guidance_scale", float("nan"), ValueError),
    ("interpolation", "cubic", ValueError), ("resolution", 0, ValueError), ("resolution", 512.0, TypeError),
    ("resolution", 500, ValueError),
])
def test_config_validation_names_the_field(field, value, error):
    with pytest.raises(error, match=f"^GenerationConfig.{field} must be "):
        GenerationConfig(**{field: value})


def test_class_seed_and_count():
    assert class_seed(0, 3) == class_seed(0, 3)
    seeds = {class_seed(s, c) for s in range(5) for c in range(50)}
    assert len(seeds) == 250
    assert all(0 <= s < 2 ** 63 for s in seeds)
    torch.Generator().manual_seed(max(seeds))  # a valid torch seed
    with pytest.raises(ValueError, match="class_index"):
        class_seed(0, -1)
    with pytest.raises(TypeError, match="seed"):
        class_seed(1.5, 0)
    assert num_synthetic(5, 5.0) == 25
    assert num_synthetic(3, 1.5) == 4
    assert num_synthetic(0, 5.0) == 0
    with pytest.raises(ValueError, match="expansion_rate"):
        num_synthetic(3, 0)
    with pytest.raises(ValueError, match="num_images"):
        num_synthetic(-1, 5.0)


def test_plan_draws_uniform_unordered_pairs_of_distinct_images():
    plan = plan_class(4, 6000, 3, (4, 2, 2), torch.Generator().manual_seed(0))
    assert plan.pairs.shape == (6000, 2) and plan.noise is None
    assert (plan.pairs[:, 0] < plan.pairs[:, 1]).all()  # distinct and sorted
    counts = Counter(map(tuple, plan.pairs.tolist()))
    assert set(counts) == {(i, j) for i in range(4) for j in range(i + 1, 4)}
    assert all(abs(c - 1000) < 130 for c in counts.values()), counts  # 6 pairs, ~4 sigma
    assert 0 <= plan.uniforms.min() and plan.uniforms.max() < 1
    assert Counter(plan.suffix_choices.tolist()).keys() == {0, 1, 2}
    single = plan_class(1, 5, 0, (4, 2, 2), torch.Generator().manual_seed(0))
    assert single.pairs is None and single.suffix_choices is None and single.noise.shape == (5, 4, 2, 2)


def test_generates_the_expected_count_with_provenance(tiny_pipe, spy):
    inversions = _inversions(4)
    samples = _run(tiny_pipe, inversions)
    assert len(samples) == num_synthetic(4, FAST.expansion_rate) == 8
    assert [s.index for s in samples] == list(range(8))
    normalized = {"standing on a tree branch", "flying in the sky", "swimming in the water"}
    for sample in samples:
        assert isinstance(sample, SyntheticSample)
        assert isinstance(sample.image, Image.Image) and sample.image.mode == "RGB" and sample.image.size == (32, 32)
        i, j = sample.source_indices
        assert 0 <= i < j < 4
        alpha = float(interpolation_angle(inversions[i], inversions[j]))
        assert 0 <= sample.lam <= 2 * math.pi / alpha
        assert sample.suffix in normalized
        assert sample.seed == class_seed(0, 0)
    # batches of batch_size, each denoised with the class prompt and the drawn suffixes
    assert [c["latents"].shape[0] for c in spy] == [3, 3, 2]
    for call, batch in zip(spy, (samples[0:3], samples[3:6], samples[6:8])):
        assert call["prompts"] == "a photo of a <class_0> bird"
        assert call["suffixed_prompts"] == [build_prompt("<class_0>", "bird", s.suffix) for s in batch]
        # the starting latents are exactly the interpolation the provenance describes
        for row, sample in zip(call["latents"], batch):
            i, j = sample.source_indices
            torch.testing.assert_close(row, interpolate(inversions[i], inversions[j], sample.lam, "circle"),
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["spherical", "extrapolate", "linear"])
def test_interpolation_is_selectable(tiny_pipe, spy, method):
    inversions = _inversions(3, seed=1)
    config = dataclasses.replace(FAST, interpolation=method, expansion_rate=1.0)
    samples = _run(tiny_pipe, inversions, config)
    for row, sample in zip(spy[0]["latents"], samples):
        i, j = sample.source_indices
        alpha = float(interpolation_angle(inversions[i], inversions[j]))
        upper = 2 * math.pi / alpha - 1 if method == "extrapolate" else 1.0
        assert 0 <= sample.lam <= upper
        torch.testing.assert_close(row, interpolate(inversions[i], inversions[j], sample.lam, method),
                                   atol=1e-5, rtol=1e-5)


def test_same_seed_same_images_and_other_seeds_differ(tiny_pipe):
    inversions = _inversions(3)
    first, second = _run(tiny_pipe, inversions), _run(tiny_pipe, inversions)
    assert (_pixels(first) == _pixels(second)).all()
    provenance = [(s.source_indices, s.lam, s.suffix) for s in first]
    assert provenance == [(s.source_indices, s.lam, s.suffix) for s in second]
    other = _run(tiny_pipe, inversions, seed=1)
    assert [(s.source_indices, s.lam) for s in other] != [(s.source_indices, s.lam) for s in first]
    assert other[0].seed != first[0].seed


def test_class_output_does_not_depend_on_other_classes_or_order(tiny_pipe):
    pools = {0: _inversions(3, seed=10), 1: _inversions(2, seed=11)}
    config = dataclasses.replace(FAST, expansion_rate=1.0)

    def run_classes(order):
        return {c: _run(tiny_pipe, pools[c], config, seed=7, class_index=c) for c in order}

    forward, backward = run_classes([0, 1]), run_classes([1, 0])  # class 1 alone first, then after class 0
    for c in (0, 1):
        assert (_pixels(forward[c]) == _pixels(backward[c])).all()
        assert [s.lam for s in forward[c]] == [s.lam for s in backward[c]]


def test_batch_size_does_not_change_the_result(tiny_pipe):
    inversions = _inversions(4, seed=2)
    by_one = _run(tiny_pipe, inversions, dataclasses.replace(FAST, batch_size=1))
    by_eight = _run(tiny_pipe, inversions, dataclasses.replace(FAST, batch_size=8))
    assert [(s.source_indices, s.suffix) for s in by_one] == [(s.source_indices, s.suffix) for s in by_eight]
    assert [s.lam for s in by_one] == pytest.approx([s.lam for s in by_eight], rel=1e-9)
    assert np.abs(_pixels(by_one) - _pixels(by_eight)).max() <= 2  # float rounding only


def test_streams_one_batch_at_a_time(tiny_pipe, spy):
    stream = generate_class(tiny_pipe, _inversions(4), "<class_0>", "bird", SUFFIXES, FAST, seed=0, class_index=0)
    assert spy == []  # nothing runs before the first sample is asked for
    first = next(stream)
    assert first.index == 0 and len(spy) == 1
    rest = list(stream)
    assert len(rest) == 7 and len(spy) == 3


def test_single_image_class_starts_from_gaussian_noise(tiny_pipe, spy):
    inversion = _inversions(1, seed=3)
    config = dataclasses.replace(FAST, expansion_rate=4.0, batch_size=4)
    samples = _run(tiny_pipe, inversion, config)
    assert len(samples) == 4
    assert all(s.source_indices == () and s.lam is None for s in samples)
    latents = spy[0]["latents"]
    assert not any(torch.allclose(row, inversion[0]) for row in latents)
    assert abs(float(latents.std()) - 1) < 0.1 and abs(float(latents.mean())) < 0.1
    assert not torch.allclose(latents[0], latents[1])
    again = _run(tiny_pipe, inversion, config)
    assert (_pixels(samples) == _pixels(again)).all()


def test_empty_class_yields_nothing(tiny_pipe, spy):
    assert _run(tiny_pipe, torch.empty(0, 4, 16, 16)) == []
    assert spy == []


def test_suffixes(tiny_pipe, spy):
    with pytest.raises(ValueError, match="suffixes must not be empty when split_ratio > 0"):
        generate_class(tiny_pipe, _inversions(2), "<class_0>", "bird", [], FAST, seed=0, class_index=0)
    with pytest.raises(TypeError, match="suffixes must be a sequence of str"):
        generate_class(tiny_pipe, _inversions(2), "<class_0>", "bird", "on a branch", FAST, seed=0, class_index=0)
    with pytest.raises(ValueError, match="suffixes must contain text"):
        generate_class(tiny_pipe, _inversions(2), "<class_0>", "bird", ["a photo of a bird."], FAST, seed=0,
                       class_index=0)
    no_split = dataclasses.replace(FAST, split_ratio=0.0, expansion_rate=1.0)
    plain = _run(tiny_pipe, _inversions(2), no_split, suffixes=[])
    with_unused = _run(tiny_pipe, _inversions(2), no_split, suffixes=SUFFIXES)
    assert [s.suffix for s in plain] == ["", ""]
    assert spy[0]["suffixed_prompts"] is None
    assert (_pixels(plain) == _pixels(with_unused)).all()  # unused suffixes change nothing


def test_no_suffix_is_reported_when_no_step_reaches_the_threshold(tiny_pipe):
    # 3 steps run at 667, 334, 1: all below 1000 * (1 - 0.3), so the suffixed stage never runs.
    short = dataclasses.replace(FAST, split_ratio=0.3, denoising_steps=3, expansion_rate=1.0)
    assert [s.suffix for s in _run(tiny_pipe, _inversions(2), short)] == ["", ""]
    longer = dataclasses.replace(short, denoising_steps=4)  # 751 >= 700: the first step uses a suffix
    assert all(s.suffix for s in _run(tiny_pipe, _inversions(2), longer))


def test_an_overlong_suffix_is_refused_before_any_denoising(tiny_pipe, spy):
    long_suffix = "standing on " + " and ".join(["a very long tree branch"] * 20)
    with pytest.raises(ValueError, match="exceed the text encoder's context of 77 tokens.*tree branch"):
        generate_class(tiny_pipe, _inversions(3), "<class_0>", "bird", [SUFFIXES[0], long_suffix], FAST, seed=0,
                       class_index=0)
    assert spy == []
    # With no suffixed step at all (split ratio 0), no suffix reaches the text encoder: nothing to refuse.
    no_suffix = dataclasses.replace(FAST, split_ratio=0.0)
    assert len(_run(tiny_pipe, _inversions(2), no_suffix, suffixes=[long_suffix])) == 4


def test_bad_inversions_and_config(tiny_pipe):
    with pytest.raises(ValueError, match=r"inversions must have shape \[B, 4, 16, 16\]"):
        generate_class(tiny_pipe, torch.zeros(3, 4, 8, 8), "<class_0>", "bird", SUFFIXES, FAST, seed=0, class_index=0)
    with pytest.raises(TypeError, match="inversions must be a torch tensor"):
        generate_class(tiny_pipe, [[0.0]], "<class_0>", "bird", SUFFIXES, FAST, seed=0, class_index=0)
    with pytest.raises(TypeError, match="config must be a GenerationConfig"):
        generate_class(tiny_pipe, _inversions(2), "<class_0>", "bird", SUFFIXES, {"split_ratio": 0.3}, seed=0,
                       class_index=0)
    with pytest.raises(ValueError, match="class_index"):
        generate_class(tiny_pipe, _inversions(2), "<class_0>", "bird", SUFFIXES, FAST, seed=0, class_index=-1)


def test_invert_class(tiny_pipe):
    dataset = tiny_image_dataset(num_classes=1, per_class=3, size=40, seed=4)
    images = [dataset[i][0] for i in range(3)]
    images[1] = images[1].convert("L")  # grayscale and RGBA are converted, not rejected
    images[2] = images[2].convert("RGBA")
    pool = invert_class(tiny_pipe, images, "<class_0>", "bird", FAST)
    assert pool.shape == (3, 4, 16, 16) and pool.dtype == torch.float32 and pool.device.type == "cpu"
    expected = ddim_invert(tiny_pipe, images, "a photo of a <class_0> bird", num_inference_steps=2)
    torch.testing.assert_close(pool, expected.cpu())
    assert invert_class(tiny_pipe, [], "<class_0>", "bird", FAST).shape == (0, 4, 16, 16)
    small = invert_class(tiny_pipe, images[:1], "<class_0>", "bird", dataclasses.replace(FAST, resolution=16))
    assert small.shape == (1, 4, 8, 8)
    # the pool feeds generation directly, at the same resolution
    samples = list(generate_class(tiny_pipe, small.repeat(2, 1, 1, 1), "<class_0>", "bird", SUFFIXES,
                                  dataclasses.replace(FAST, resolution=16, expansion_rate=0.5), seed=0, class_index=0))
    assert len(samples) == 1 and samples[0].image.size == (16, 16)
