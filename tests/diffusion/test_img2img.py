"""Image-to-image editing side by side with the authors' code (ports in tests/reference), and its behaviour.

Bit-identical where the arithmetic is the same: one image per call, float32, as
Diff-Mix's ``sample_mp.py --batch_size 1`` and DA-Fusion run it. Batching several images
into one UNet call changes the order of float reductions inside convolutions and
matrix products (oneDNN picks its kernels by batch size), about 1e-6 relative, which
moves a decoded pixel by at most one 8-bit level now and then: those comparisons allow
2 levels and fewer than 1 % of values changed.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler
from PIL import Image

from diffii_datasets.diffusion.img2img import edit_images, edit_steps, edit_timesteps
from diffii_datasets.diffusion.pipeline import PromptEncoder
from diffii_datasets.diffusion.schedulers import SAMPLERS, make_sampler
from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline
from tests.reference.da_fusion import RealGuidance, TextualInversion
from tests.reference.diff_mix import DreamboothLoraMixup

CLASSES = ["red circle", "green square", "blue triangle"]


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def sources():
    """Real images of several sizes, none of them the pipeline's 32 px square."""
    dataset = tiny_image_dataset(num_classes=3, per_class=2, size=40)
    sizes = [(40, 28), (24, 36), (40, 40), (50, 30), (33, 33), (28, 40)]
    return [dataset.draw(i).resize(size) for i, size in enumerate(sizes)]


def seeded(*seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def assert_identical(actual, expected):
    assert actual.size == expected.size and actual.mode == expected.mode == "RGB"
    assert np.array_equal(pixels(actual), pixels(expected))


def assert_equal_up_to_rounding(actual, expected):
    """Batched against one at a time: at most 2 of 255 anywhere, fewer than 1 % of values moved."""
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert a.size == b.size
        difference = np.abs(pixels(a) - pixels(b))
        assert difference.max() <= 2 and (difference > 0).mean() < 0.01


class UNetCalls:
    """Records the batch size and timestep of every UNet call."""

    def __init__(self, unet):
        self.calls = []
        self._handle = unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        self.calls.append((args[0].shape[0], int(args[1]), torch.is_autocast_enabled("cpu")))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.remove()


# -- side by side with the authors' code -------------------------------------------------------------------------------


@pytest.mark.parametrize("index, strength", [(0, 0.3), (1, 0.5), (2, 0.8), (3, 1.0)])
def test_matches_diff_mix_bit_for_bit(pipe, sources, index, strength):
    """DreamboothLoraMixup.forward on plain SD (real-aug / real-mix): DPM-Solver++ 25 steps, guidance 7.5."""
    reference = DreamboothLoraMixup(pipe.components)
    metadata = {"name": CLASSES[0], "super_class": "shape"}
    expected, _ = reference.forward([sources[index]], 0, metadata, strength=strength, resolution=32,
                                    generator=seeded(index))
    actual = edit_images(pipe, [sources[index]], "a photo of a red circle shape", strength, generators=seeded(index))
    assert_identical(actual[0], expected[0])


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_matches_da_fusion_real_guidance_bit_for_bit(pipe, sources, strength):
    """RealGuidance.forward: the pipeline's own PNDM sampler and default 50 steps (strengths of its launch scripts)."""
    reference = RealGuidance(pipe.components, strength=strength, resolution=32)
    expected, _ = reference.forward(sources[2], 0, {"name": CLASSES[1]}, generator=seeded(3))
    actual = edit_images(pipe, [sources[2]], "a photo of a green square", strength, generators=seeded(3),
                         sampler="pndm", num_inference_steps=50)
    assert_identical(actual[0], expected)


def test_matches_da_fusion_textual_inversion_bit_for_bit(sources):
    """TextualInversion.forward: a learned token added as its load_embeddings adds it, prompt "a photo of a <name>"."""
    pipe = tiny_pipeline(seed=0)  # its own: the token changes the tokenizer and text encoder
    token = "<red_circle>"
    pipe.tokenizer.add_tokens(token)
    pipe.text_encoder.resize_token_embeddings(len(pipe.tokenizer))
    embedding = torch.randn(pipe.text_encoder.config.hidden_size, generator=torch.Generator().manual_seed(5))
    pipe.text_encoder.get_input_embeddings().weight.data[pipe.tokenizer.convert_tokens_to_ids(token)] = embedding
    reference = TextualInversion(pipe.components, strength=0.75, resolution=32)
    expected, _ = reference.forward(sources[3], 0, {"name": CLASSES[0]}, generator=seeded(4))
    actual = edit_images(pipe, [sources[3]], f"a photo of a {token}", 0.75, generators=seeded(4), sampler="pndm",
                         num_inference_steps=50)
    assert_identical(actual[0], expected)
    without_token = edit_images(pipe, [sources[3]], "a photo of a red circle", 0.75, generators=seeded(4),
                                sampler="pndm", num_inference_steps=50)
    assert not np.array_equal(pixels(without_token[0]), pixels(actual[0]))


def test_batched_matches_the_authors_per_image_calls(pipe, sources):
    """Several images and prompts per UNet call against one sample_mp.py --batch_size 1 call per image."""
    reference = DreamboothLoraMixup(pipe.components)
    names = [CLASSES[i % 3] for i in range(len(sources))]
    expected = [reference.forward([image], 0, {"name": name}, strength=0.7, resolution=32,
                                  generator=seeded(10 + i))[0][0]
                for i, (image, name) in enumerate(zip(sources, names))]
    actual = edit_images(pipe, sources, [f"a photo of a {name}" for name in names], 0.7,
                         generators=seeded(*range(10, 10 + len(sources))), batch_size=4)
    assert_equal_up_to_rounding(actual, expected)


# -- behaviour ---------------------------------------------------------------------------------------------------------


def test_an_image_does_not_depend_on_its_batch_or_position(pipe, sources):
    prompts = [f"a photo of a {CLASSES[i % 3]}" for i in range(len(sources))]
    seeds = list(range(20, 20 + len(sources)))
    options = {"num_inference_steps": 10}
    one_by_one = edit_images(pipe, sources, prompts, 0.6, generators=seeded(*seeds), batch_size=1, **options)
    reversed_order = edit_images(pipe, sources[::-1], prompts[::-1], 0.6, generators=seeded(*seeds[::-1]),
                                 batch_size=1, **options)
    for a, b in zip(one_by_one, reversed_order[::-1]):
        assert_identical(a, b)
    single = edit_images(pipe, [sources[4]], prompts[4], 0.6, generators=seeded(seeds[4]), **options)
    assert_identical(single[0], one_by_one[4])
    batched = edit_images(pipe, sources, prompts, 0.6, generators=seeded(*seeds), batch_size=3, **options)
    assert_equal_up_to_rounding(batched, one_by_one)


def test_each_image_takes_its_randomness_from_its_own_generator(pipe, sources):
    images, prompt = sources[:3], "a photo of a bird"
    first = edit_images(pipe, images, prompt, 0.8, generators=seeded(1, 2, 3), batch_size=1, num_inference_steps=5)
    changed = edit_images(pipe, images, prompt, 0.8, generators=seeded(9, 2, 3), batch_size=1, num_inference_steps=5)
    assert not np.array_equal(pixels(first[0]), pixels(changed[0]))
    assert_identical(first[1], changed[1])
    assert_identical(first[2], changed[2])


def test_images_are_grouped_by_their_number_of_steps(pipe, sources):
    """Strengths giving the same step count share UNet calls; each group runs its own schedule."""
    strengths = [0.3, 0.9, 0.35, 0.6, 0.3]  # 3, 9, 3, 6, 3 of 10 steps
    images, prompt = sources[:5], "a photo of a red circle"
    with UNetCalls(pipe.unet) as unet:
        grouped = edit_images(pipe, images, prompt, strengths, generators=seeded(*range(5)), batch_size=8,
                              num_inference_steps=10)
    full = make_sampler(pipe, "dpm-solver++")
    full.set_timesteps(10)
    expected_calls = [(2, int(t), False) for t in full.timesteps[-9:]] + \
        [(2, int(t), False) for t in full.timesteps[-6:]] + [(6, int(t), False) for t in full.timesteps[-3:]]
    assert unet.calls == expected_calls  # guidance doubles the batch: [uncond; cond]
    alone = [edit_images(pipe, [image], prompt, strength, generators=seeded(i), num_inference_steps=10)[0]
             for i, (image, strength) in enumerate(zip(images, strengths))]
    for index in (1, 3):  # alone in their group: the same arithmetic
        assert_identical(grouped[index], alone[index])
    assert_equal_up_to_rounding(grouped, alone)


@pytest.mark.parametrize("strength", [0.0, 0.03])  # 0.03 * 25 steps rounds down to no step
def test_a_strength_without_steps_is_the_vae_round_trip(pipe, sources, strength):
    image = sources[0]
    with UNetCalls(pipe.unet) as unet:
        edited = edit_images(pipe, [image], "a photo of a bird", strength, generators=seeded(7))
    assert unet.calls == []
    # By hand with diffusers' pieces: the posterior sampled with the generator's first draw, decoded, resized back.
    canvas = pipe.image_processor.preprocess(image.resize((32, 32), Image.Resampling.BILINEAR))
    with torch.no_grad():
        posterior = pipe.vae.encode(canvas).latent_dist
        latent = posterior.sample(seeded(7)[0]) * pipe.vae.config.scaling_factor
        decoded = pipe.vae.decode(latent / pipe.vae.config.scaling_factor).sample
    expected = pipe.image_processor.postprocess(decoded, output_type="pil")[0].resize(image.size,
                                                                                      Image.Resampling.BILINEAR)
    assert_identical(edited[0], expected)


@pytest.mark.parametrize("sampler, steps, calls", [("dpm-solver++", 10, 10), ("ddim", 10, 10), ("pndm", 20, 21)])
def test_strength_one_runs_the_whole_schedule(pipe, sources, sampler, steps, calls):
    """From the noisiest timestep on; PNDM's schedule (skip_prk_steps) has one timestep more than steps."""
    scheduler = make_sampler(pipe, sampler)
    scheduler.set_timesteps(steps)
    with UNetCalls(pipe.unet) as unet:
        edit_images(pipe, [sources[1]], "a photo of a bird", 1.0, generators=seeded(0), sampler=sampler,
                    num_inference_steps=steps)
    assert [t for _, t, _ in unet.calls] == [int(t) for t in scheduler.timesteps]
    assert len(unet.calls) == calls


def test_edit_steps_and_timesteps_follow_diffusers(pipe):
    assert [edit_steps(25, s) for s in (0.0, 0.03, 0.04, 0.3, 0.5, 0.7, 0.9, 1.0)] == [0, 0, 1, 7, 12, 17, 22, 25]
    assert edit_steps(50, 0.3) == 15  # 50 * 0.3 is 15.000000000000002 in floats
    scheduler = make_sampler(pipe, "dpm-solver++")
    tail = edit_timesteps(scheduler, 25, 0.5, torch.device("cpu"))
    assert tail.tolist() == scheduler.timesteps[-12:].tolist() and scheduler.begin_index == 13
    assert edit_timesteps(make_sampler(pipe, "pndm"), 50, 0.5, torch.device("cpu")).shape == (26,)
    assert edit_timesteps(scheduler, 25, 0.0, torch.device("cpu")).shape == (0,)


def test_outputs_keep_each_source_size_and_mode(pipe):
    dataset = tiny_image_dataset(num_classes=2, per_class=1, size=24)
    images = [dataset.draw(0).convert("L"), np.asarray(dataset.draw(1).resize((30, 20))),
              torch.rand(3, 18, 26), dataset.draw(0).convert("RGBA").resize((64, 48))]
    edited = edit_images(pipe, images, "a photo of a bird", 0.5, generators=seeded(0, 1, 2, 3), num_inference_steps=4)
    assert [image.size for image in edited] == [(24, 24), (30, 20), (26, 18), (64, 48)]
    assert all(image.mode == "RGB" for image in edited)
    smaller = edit_images(pipe, images, "a photo of a bird", 0.5, generators=seeded(0, 1, 2, 3), resolution=16,
                          num_inference_steps=4)
    assert [image.size for image in smaller] == [image.size for image in edited]
    assert edit_images(pipe, [], "a photo of a bird", 0.5, generators=[]) == []


def test_progress_counts_every_image_once(pipe, sources):
    done = []
    edit_images(pipe, sources[:4], "a photo of a bird", [0.0, 0.5, 0.5, 1.0], generators=seeded(0, 1, 2, 3),
                batch_size=2, on_step=done.append, num_inference_steps=4)
    assert sum(done) == pytest.approx(4)


def test_shared_prompt_encoder_and_autocast(pipe, sources):
    encoder = PromptEncoder(pipe)
    with UNetCalls(pipe.unet) as unet:
        edited = edit_images(pipe, sources[:2], ["a photo of a bird", "a photo of a red circle"], 0.5,
                             generators=seeded(0, 1), prompt_encoder=encoder, autocast_dtype="bfloat16",
                             num_inference_steps=4)
    assert len(encoder) == 3  # both prompts and the empty one, kept for the next call
    assert unet.calls and all(autocast for _, _, autocast in unet.calls)
    assert [image.size for image in edited] == [sources[0].size, sources[1].size]


@pytest.mark.parametrize("changes, error, match", [
    ({"images": "image.png"}, TypeError, "images must be"),
    ({"images": [object()]}, TypeError, r"images\[0\]"),
    ({"prompts": ["a", "b", "c"]}, ValueError, "prompts must hold one prompt"),
    ({"strengths": 1.5}, ValueError, r"strengths must be a finite number in \[0, 1\]"),
    ({"strengths": [0.5, -0.1]}, ValueError, r"strengths\[1\] must be"),
    ({"strengths": [0.5]}, ValueError, "strengths must hold one strength per image"),
    ({"strengths": "0.5"}, TypeError, "strengths must be"),
    ({"generators": None}, TypeError, "generators must be a list of 2 torch.Generator"),
    ({"generators": torch.Generator()}, TypeError, "generators must be"),
    ({"generators": seeded(0)}, ValueError, r"generators must hold one torch.Generator per image \(2\), got 1"),
    ({"generators": [torch.Generator(), 3]}, TypeError, r"generators\[1\] must be a torch.Generator"),
    ({"generators": [torch.Generator().manual_seed(0)] * 2}, ValueError, r"generators\[1\] is the same object"),
    ({"num_inference_steps": 0}, ValueError, "num_inference_steps must be a positive int"),
    ({"guidance_scale": -1.0}, ValueError, "guidance_scale must be"),
    ({"sampler": "euler"}, ValueError, "sampler must be one of 'dpm-solver\\+\\+', 'pndm', 'ddim'"),
    ({"resolution": 31}, ValueError, "resolution must be a positive multiple"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
    ({"autocast_dtype": "float64"}, ValueError, "autocast_dtype must be"),
])
def test_arguments_are_checked_by_name(pipe, sources, changes, error, match):
    arguments = {"images": sources[:2], "prompts": "a photo of a bird", "strengths": 0.5, "generators": seeded(0, 1)}
    arguments.update(changes)
    images, prompts, strengths = arguments.pop("images"), arguments.pop("prompts"), arguments.pop("strengths")
    with pytest.raises(error, match=match):
        edit_images(pipe, images, prompts, strengths, **arguments)


# -- the samplers ------------------------------------------------------------------------------------------------------


def test_samplers_are_built_as_the_authors_build_them(pipe):
    assert SAMPLERS == ("dpm-solver++", "pndm", "ddim")
    classes = {"dpm-solver++": DPMSolverMultistepScheduler, "pndm": PNDMScheduler, "ddim": DDIMScheduler}
    for name, scheduler_class in classes.items():
        scheduler = make_sampler(pipe, name)
        assert type(scheduler) is scheduler_class
        assert dict(scheduler.config) == dict(scheduler_class.from_config(pipe.scheduler.config).config)
    dpm = make_sampler(pipe, "dpm-solver++")
    dpm.set_timesteps(25)
    # SD's config leaves timestep_spacing at its default, so DPM-Solver++ takes its own: "linspace", as in Diff-Mix.
    assert dpm.config.algorithm_type == "dpmsolver++" and dpm.timesteps[:3].tolist() == [999, 959, 919]
    assert make_sampler(pipe, "pndm").config.skip_prk_steps
    assert make_sampler(pipe, "dpm-solver++") is not make_sampler(pipe, "dpm-solver++")


def test_sampler_names_load_no_heavy_library():
    code = ("import sys; from diffii_datasets.diffusion.schedulers import SAMPLERS; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'diffusers', 'numpy', 'PIL'}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
