"""Text-to-image generation side by side with Diff-Mix's RealGeneration (port in tests/reference), and its behaviour.

Bit-identical at one image per call in float32, as ``sample_mp.py --batch_size 1`` runs
Real-Gen. Batched, the float reductions inside the UNet's convolutions and matrix
products run in another order (oneDNN picks its kernels by batch size), which moves a
pixel by at most one 8-bit level now and then: those comparisons allow 2 levels and
fewer than 1 % of values changed.
"""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline
from PIL import Image

from diffii_datasets.diffusion.text2image import generate_images
from diffii_datasets.testing import tiny_pipeline
from tests.reference.diff_mix import RealGeneration

PROMPTS = ["a photo of a <red_circle>", "a photo of a <green_square>", "a photo of a <blue_triangle>",
           "a photo of a bird", "a photo of a red circle"]


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def seeded(*seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def assert_identical(actual, expected):
    assert actual.size == expected.size and actual.mode == expected.mode == "RGB"
    assert np.array_equal(pixels(actual), pixels(expected))


def assert_equal_up_to_rounding(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert a.size == b.size
        difference = np.abs(pixels(a) - pixels(b))
        assert difference.max() <= 2 and (difference > 0).mean() < 0.01


def unet_batches(pipe):
    batches = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    return batches, handle


@pytest.mark.parametrize("name, seed, source_size", [("red circle", 0, (40, 28)), ("blue triangle", 1, (32, 32)),
                                                     ("green square", 2, (23, 41))])
def test_matches_real_generation_bit_for_bit(pipe, name, seed, source_size):
    """RealGeneration.forward: DPM-Solver++ 25 steps, guidance 7.5, output resized to the drawn real image's size."""
    reference = RealGeneration(pipe.components)
    source = [Image.new("RGB", source_size)]  # only its size is used
    expected, _ = reference.forward(source, 0, {"name": name}, resolution=32, generator=seeded(seed))
    prompt = "a photo of a <" + name.replace(" ", "_") + ">"
    actual = generate_images(pipe, [prompt], generators=seeded(seed), output_sizes=[source_size])
    assert_identical(actual[0], expected[0])


def test_other_samplers_match_the_pipeline(pipe):
    """The SD pipeline's own PNDM and DDIM, called plainly with a generator list."""
    for sampler, scheduler in [("pndm", pipe.scheduler), ("ddim", DDIMScheduler.from_config(pipe.scheduler.config))]:
        reference = StableDiffusionPipeline(**{**pipe.components, "scheduler": scheduler},
                                            requires_safety_checker=False)
        reference.set_progress_bar_config(disable=True)
        expected = reference(["a photo of a bird"], num_inference_steps=10, generator=seeded(4)).images[0]
        actual = generate_images(pipe, ["a photo of a bird"], generators=seeded(4), sampler=sampler,
                                 num_inference_steps=10)
        assert_identical(actual[0], expected)


def test_batched_matches_one_image_per_call(pipe):
    seeds = list(range(10, 10 + len(PROMPTS)))
    one_by_one = generate_images(pipe, PROMPTS, generators=seeded(*seeds), batch_size=1, num_inference_steps=10)
    alone = generate_images(pipe, PROMPTS[3:4], generators=seeded(seeds[3]), num_inference_steps=10)
    assert_identical(alone[0], one_by_one[3])
    batches, handle = unet_batches(pipe)
    try:
        batched = generate_images(pipe, PROMPTS, generators=seeded(*seeds), batch_size=3, num_inference_steps=10)
    finally:
        handle.remove()
    assert batches == [6] * 10 + [4] * 10  # two batches, guidance doubling each
    assert_equal_up_to_rounding(batched, one_by_one)


def test_each_image_takes_its_noise_from_its_own_generator(pipe):
    first = generate_images(pipe, PROMPTS[:3], generators=seeded(1, 2, 3), batch_size=1, num_inference_steps=5)
    changed = generate_images(pipe, PROMPTS[:3], generators=seeded(1, 9, 3), batch_size=1, num_inference_steps=5)
    assert_identical(first[0], changed[0])
    assert not np.array_equal(pixels(first[1]), pixels(changed[1]))
    assert_identical(first[2], changed[2])
    reordered = generate_images(pipe, PROMPTS[:3][::-1], generators=seeded(3, 2, 1), batch_size=1,
                                num_inference_steps=5)
    for a, b in zip(first, reordered[::-1]):
        assert_identical(a, b)


def test_no_guidance_at_scale_one(pipe):
    scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    reference = StableDiffusionPipeline(**{**pipe.components, "scheduler": scheduler}, requires_safety_checker=False)
    reference.set_progress_bar_config(disable=True)
    expected = reference(["a photo of a bird"], num_inference_steps=10, guidance_scale=1.0,
                         generator=seeded(5)).images[0]
    batches, handle = unet_batches(pipe)
    try:
        actual = generate_images(pipe, ["a photo of a bird"], generators=seeded(5), guidance_scale=1.0,
                                 num_inference_steps=10)
    finally:
        handle.remove()
    assert batches == [1] * 10
    assert_identical(actual[0], expected)


def test_sizes_and_progress(pipe):
    done = []
    images = generate_images(pipe, PROMPTS[:3], generators=seeded(0, 1, 2), output_sizes=[(10, 20), (32, 32), (64, 8)],
                             batch_size=2, on_step=done.append, num_inference_steps=3)
    assert [image.size for image in images] == [(10, 20), (32, 32), (64, 8)]
    assert sum(done) == pytest.approx(3)
    for resolution, side in [(None, 32), (16, 16)]:
        images = generate_images(pipe, PROMPTS[:1], generators=seeded(0), resolution=resolution, num_inference_steps=3)
        assert [image.size for image in images] == [(side, side)]
    assert generate_images(pipe, [], generators=[]) == []


@pytest.mark.parametrize("changes, error, match", [
    ({"prompts": "a photo of a bird"}, TypeError, "prompts must be a sequence of str"),
    ({"prompts": ["a photo", 3]}, TypeError, r"prompts\[1\] must be a str"),
    ({"generators": seeded(0)}, ValueError, r"generators must hold one torch.Generator per image \(2\)"),
    ({"generators": [torch.Generator()] * 2}, ValueError, r"generators\[1\] is the same object"),
    ({"output_sizes": [(8, 8)]}, ValueError, "output_sizes must hold one"),
    ({"output_sizes": (8, 8)}, TypeError, r"output_sizes\[0\] must be a \(width, height\)"),
    ({"output_sizes": [(8, 8), (0, 8)]}, ValueError, r"output_sizes\[1\]\[0\] \(width\) must be a positive int"),
    ({"output_sizes": "8x8"}, TypeError, "output_sizes must be None or a sequence"),
    ({"num_inference_steps": 0}, ValueError, "num_inference_steps must be a positive int"),
    ({"sampler": "euler"}, ValueError, "sampler must be one of"),
    ({"resolution": 17}, ValueError, "resolution must be a positive multiple"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
])
def test_arguments_are_checked_by_name(pipe, changes, error, match):
    arguments = {"prompts": PROMPTS[:2], "generators": seeded(0, 1)}
    arguments.update(changes)
    with pytest.raises(error, match=match):
        generate_images(pipe, arguments.pop("prompts"), **arguments)
