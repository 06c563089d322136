"""The published concept recipe, item by item, shown by what the learner does on the tiny pipeline."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import BatchSampler

import diffii_datasets.testing
from diffii_datasets.diffusion.concepts import ConceptConfig, learn_concepts
from diffii_datasets.diffusion.concepts.checkpoint import read_checkpoint, write_checkpoint
from diffii_datasets.diffusion.concepts.config import (
    PUBLISHED_INIT_TOKEN,
    PUBLISHED_INIT_TOKEN_ID,
    RECIPE_0_1,
    RECIPE_0_2,
    concept_recipe,
    recipe_differences,
)
from diffii_datasets.diffusion.concepts.inputs import (
    TrainingInputs,
    class_balanced_weights,
    crop_offsets,
    resized_size,
)
from diffii_datasets.testing import tiny_clip_tokenizer, tiny_image_dataset, tiny_pipeline

METACLASS = "shape"
FAST = {"batch_size": 4, "lora_rank": 2, "resolution": 32}  # the tiny pipeline's size


def _wide_image(seed=0):
    """A 64 x 40 image: its short side resized to 32 leaves a 51 x 32 strip to crop from."""
    return tiny_image_dataset(1, 1, size=64, seed=seed)[0][0].resize((64, 40))


@pytest.fixture
def spy_latents(monkeypatch):
    """Record every ``TrainingInputs.latents`` call the learner makes: ``(inputs, draw, eps, latents)``."""
    calls = []
    original = TrainingInputs.latents

    def spy(self, draw, eps):
        latents = original(self, draw, eps)
        calls.append((self, draw, eps, latents))
        return latents

    monkeypatch.setattr(TrainingInputs, "latents", spy)
    return calls


def _resized(image, size):
    """The published resize: PIL bilinear, as torchvision's Resize does it, as a float tensor in [0, 1]."""
    array = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)


def test_random_crops_differ_between_steps_and_stay_inside_the_resized_image(spy_latents):
    pipe = tiny_pipeline(seed=0)
    config = ConceptConfig(train_steps=4, **FAST)
    image = _wide_image()
    learn_concepts(pipe, [[image]], ["red circle"], METACLASS, config, progress=False)
    inputs = spy_latents[0][0]
    factor = pipe.vae_scale_factor
    # the short side is resized to 32 as torchvision's Resize(32) does (64 x 40 -> 51 x 32); the crops start at
    # every multiple of the VAE factor (2 here) of the long side trimmed to 50, all inside the resized image
    assert resized_size(64, 40, 32) == (51, 32)
    offsets = crop_offsets(51, 32, factor)
    assert offsets == list(range(0, 19, 2))
    crops = inputs.image_crops(image, "image", factor)
    resized = _resized(image, (51, 32))
    assert len(crops) == len(offsets) and all(torch.equal(crop, resized[:, :, o:o + 32])
                                              for crop, o in zip(crops, offsets))
    assert inputs.means[0].shape == (len(offsets), 2, 4, 32 // factor, 32 // factor)
    drawn = [crop for _, draw, _, _ in spy_latents for crop in draw.crop.tolist()]
    assert len(drawn) == 4 * 4 and all(0 <= crop < len(offsets) for crop in drawn)
    per_step = [tuple(draw.crop.tolist()) for _, draw, _, _ in spy_latents]
    assert len(set(per_step)) == len(per_step)  # a fresh crop every step
    assert len(set(drawn)) > 3
    for _, draw, _, latents in spy_latents:
        assert latents.shape == (4, 4, 32 // factor, 32 // factor)


def test_latents_are_a_fresh_posterior_sample_every_step_and_flips_use_the_mirror_image(spy_latents):
    pipe = tiny_pipeline(seed=0)
    config = ConceptConfig(train_steps=3, **FAST)
    image = _wide_image()
    learn_concepts(pipe, [[image]], ["red circle"], METACLASS, config, progress=False)
    inputs = spy_latents[0][0]
    rows = []  # (step, flip, crop, latent, eps) of every row: one image, so every row is the same image
    for step, (_, draw, eps, latents) in enumerate(spy_latents):
        for row in range(4):
            rows.append((step, int(draw.flip[row]), int(draw.crop[row]), latents[row], eps[row]))
    assert {flip for _, flip, _, _, _ in rows} == {0, 1}
    for step, flip, crop, latent, eps in rows:
        mean, std = inputs.means[0][crop, flip], inputs.stds[0][crop, flip]
        torch.testing.assert_close(latent, mean + std * eps)  # mean + std * eps, eps fresh
        assert not torch.equal(latent, mean)
    # the same image with the same flip in two steps: different latents (12 rows, 2 flips, at most 4 per step)
    pairs = [(a, b) for a in rows for b in rows if a[0] < b[0] and a[1] == b[1]]
    assert pairs and all(not torch.equal(a[3], b[3]) for a, b in pairs)
    # each cached posterior is the VAE's encoding of that crop, the mirrored one of the mirrored crop's pixels
    crops = inputs.image_crops(image, "image", pipe.vae_scale_factor)
    scale = pipe.vae.config.scaling_factor
    with torch.no_grad():
        for flip, pixels in ((0, crops[3]), (1, crops[3].flip(-1))):
            posterior = pipe.vae.encode(pixels[None] * 2 - 1).latent_dist
            torch.testing.assert_close(inputs.means[0][3, flip], posterior.mean[0] * scale)
            torch.testing.assert_close(inputs.stds[0][3, flip], posterior.std[0] * scale)
    assert not torch.allclose(inputs.means[0][3, 1], inputs.means[0][3, 0].flip(-1), atol=1e-3)


def test_the_01_options_give_fixed_inputs(spy_latents):
    pipe = tiny_pipeline(seed=0)
    for crop in ("center", "squash"):
        config = ConceptConfig(train_steps=2, crop=crop, vae_posterior="mean", random_flip=False, **FAST)
        learn_concepts(pipe, [[_wide_image()]], ["red circle"], METACLASS, config, progress=False)
        latents = [call[3] for call in spy_latents[-2:]]
        assert all(call[2] is None for call in spy_latents[-2:])  # no posterior noise
        assert torch.equal(latents[0], latents[1]) and torch.equal(latents[0][0], latents[0][3])
    # center encodes torchvision's CenterCrop of the resized image; squash the whole image as a square
    image = _wide_image()
    (center,) = TrainingInputs([0], ConceptConfig(crop="center", **FAST), 32).image_crops(image, "image", 2)
    assert torch.equal(center, _resized(image, (51, 32))[:, :, 10:42])
    (squash,) = TrainingInputs([0], ConceptConfig(crop="squash", **FAST), 32).image_crops(image, "image", 2)
    assert squash.shape == (3, 32, 32)


def _gradient_norms(monkeypatch, config):
    """The norms of the LoRA's and of the tokens' gradients at each optimizer step."""
    norms = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        grads = {group["name"]: [p.grad for p in group["params"] if p.grad is not None] for group in self.param_groups}
        norms.append({name: float(torch.nn.utils.get_total_norm(found)) for name, found in grads.items()})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    images = [[image] for image in (_wide_image(0), _wide_image(1))]
    learn_concepts(tiny_pipeline(seed=0), images, ["red circle", "blue square"], METACLASS, config, progress=False)
    monkeypatch.undo()
    return norms


def test_clipping_bounds_the_lora_gradient_norm_and_leaves_the_tokens_alone(monkeypatch):
    limit = 1e-4  # far below the tiny pipeline's LoRA gradients, so clipping must act
    clipped = _gradient_norms(monkeypatch, ConceptConfig(train_steps=2, lora_grad_clip_norm=limit,
                                                         learning_rate=10.0, **FAST))
    free = _gradient_norms(monkeypatch, ConceptConfig(train_steps=2, lora_grad_clip_norm=0.0, learning_rate=10.0,
                                                      **FAST))
    assert all(step["lora"] <= limit * (1 + 1e-4) for step in clipped)
    assert free[0]["lora"] > 100 * limit  # unclipped, the same first step's gradient is far larger
    # the same inputs at step 1; only the LoRA is clipped (the published clip_grad_norm_ on lora_layers)
    assert clipped[0]["tokens"] == pytest.approx(free[0]["tokens"], rel=1e-6)
    assert clipped[0]["tokens"] > limit


def test_class_balanced_draws_are_uniform_over_classes_and_plain_draws_follow_the_images():
    sizes = [40, 12, 4, 2, 1, 1]  # a long tail: the head class has 40 times the images of the tail
    labels = [c for c, n in enumerate(sizes) for _ in range(n)]
    weights = class_balanced_weights(labels)
    assert torch.allclose(weights[:40], torch.full((40,), 1 / 40, dtype=torch.float64)) and weights[-1] == 1.0
    draws = 4000
    critical = 20.52  # chi-square, 5 degrees of freedom, p = 0.001 (the draws are seeded: no flakiness)

    def chi_square(config, expected_share):
        inputs, generator = TrainingInputs(labels, config, 32), torch.Generator().manual_seed(0)
        index = torch.cat([inputs.draw(8, generator).index for _ in range(draws // 8)])
        counts = torch.bincount(torch.tensor(labels)[index], minlength=len(sizes)).double()
        expected = torch.tensor(expected_share, dtype=torch.float64) * len(index)
        return float(((counts - expected) ** 2 / expected).sum())

    uniform = [1 / len(sizes)] * len(sizes)
    frequencies = [n / len(labels) for n in sizes]
    balanced = ConceptConfig(balance_classes=True, **FAST)
    plain = ConceptConfig(**FAST)
    assert chi_square(balanced, uniform) < critical
    assert chi_square(balanced, frequencies) > 100 * critical
    assert chi_square(plain, frequencies) < critical
    assert chi_square(plain, uniform) > 100 * critical


def test_every_placeholder_starts_from_the_published_clip_token():
    pipe = tiny_pipeline(seed=0)
    config = ConceptConfig(train_steps=1, tokens_per_class=2, **FAST)  # lr 5e-5: one step stays near the start
    images = [[_wide_image(0)], [_wide_image(1)]]
    concepts = learn_concepts(pipe, images, ["red circle", "xqzv_blorp"], METACLASS, config, progress=False)
    weight = pipe.text_encoder.get_input_embeddings().weight.detach()
    start = weight[pipe.tokenizer.get_vocab()[PUBLISHED_INIT_TOKEN]]
    torch.testing.assert_close(concepts.embeddings, start.expand(2, 2, -1), atol=2e-4, rtol=0)
    assert PUBLISHED_INIT_TOKEN == "ktn" and PUBLISHED_INIT_TOKEN_ID == 42170
    assert concepts.recipe == concept_recipe(config) and concepts.recipe["config"]["seed"] == 42


def test_a_tokenizer_without_the_published_token_is_an_error_naming_it(monkeypatch):
    pipe = tiny_pipeline(seed=0)
    monkeypatch.setattr(diffii_datasets.testing, "LOOKUP_TOKENS", ())
    pipe.tokenizer = tiny_clip_tokenizer()
    assert PUBLISHED_INIT_TOKEN not in pipe.tokenizer.get_vocab()
    images = [[_wide_image()]]
    with pytest.raises(ValueError, match=r"CLIP token 'ktn' \(id 42170 in SD-1.5's tokenizer\).*token_init="
                                         r"'class_name'"):
        learn_concepts(pipe, images, ["red circle"], METACLASS, ConceptConfig(train_steps=1, **FAST))
    assert not hasattr(pipe.unet, "peft_config")
    concepts = learn_concepts(pipe, images, ["red circle"], METACLASS,
                              ConceptConfig(train_steps=1, token_init="class_name", **FAST), progress=False)
    assert concepts.recipe["config"]["token_init"] == "class_name"


def test_a_checkpoint_of_another_recipe_is_refused_naming_the_knobs(tmp_path):
    old = concept_recipe(ConceptConfig(**RECIPE_0_1))
    new = concept_recipe(ConceptConfig())
    write_checkpoint(tmp_path, "old-run", old, 3, {"placeholders": torch.zeros(1, 2)}, None, None)
    with pytest.raises(ValueError, match=r"different concept-learning run \(another recipe: resolution: None -> 224, "
                                         r"crop: 'squash' -> 'random', vae_posterior: 'mean' -> 'sample', "
                                         r"lora_grad_clip_norm: 0.0 -> 1.0, image_order: 'replacement' -> 'epochs', "
                                         r"seed: 0 -> 42, token_init: 'class_name' -> 'published', "
                                         r"max_crop_positions: None -> 64\)"):  # not max_aspect_ratio: it only refuses
        read_checkpoint(tmp_path, "new-run", new)
    checkpoint, passed_over = read_checkpoint(tmp_path, "old-run", old)
    assert checkpoint.step == 3 and passed_over == []


def test_recipes_record_the_seed_among_the_knobs_and_compare_with_those_of_0_2():
    config = ConceptConfig()
    assert concept_recipe(config) == {"config": config.to_dict()} and config.to_dict()["seed"] == 42
    assert concept_recipe(config, 7)["config"]["seed"] == 7  # the deprecated learn_concepts(seed=7)
    # 0.2 recorded the seed beside the knobs, and had neither the order nor the crop bound
    legacy_knobs = {k: v for k, v in ConceptConfig(**RECIPE_0_2).to_dict().items()
                    if k not in ("seed", "image_order", "max_crop_positions", "prompts", "separate_classes",
                                 "max_aspect_ratio")}
    legacy = {"config": legacy_knobs, "seed": 0}
    assert recipe_differences(legacy, concept_recipe(ConceptConfig(**RECIPE_0_2))) == [
        "image_order: (unrecorded) -> 'replacement'", "prompts: (unrecorded) -> 'published'",
        "separate_classes: (unrecorded) -> False", "max_crop_positions: (unrecorded) -> None",
        "max_aspect_ratio: (unrecorded) -> None"]
    assert "seed: 0 -> 42" in recipe_differences(legacy, concept_recipe(config))


# -- the image order ---------------------------------------------------------------------------------------------------


def _accelerate_epoch(order, batch_size, ranks):
    """The global batches of one epoch of Diff-Mix's ``DataLoader(shuffle=True)`` under ``accelerate`` on ``ranks``
    GPUs at ``batch_size / ranks`` each, for the epoch's permutation ``order``: accelerate's own shard sampler."""
    from accelerate.data_loader import BatchSamplerShard

    per_rank = batch_size // ranks
    shards = [list(BatchSamplerShard(BatchSampler(order, per_rank, drop_last=False), ranks, rank))
              for rank in range(ranks)]
    assert len({len(shard) for shard in shards}) == 1
    return [[i for shard in shards for i in shard[step]] for step in range(len(shards[0]))]


@pytest.mark.parametrize("images, batch, ranks", [(12, 4, 2), (10, 8, 4), (13, 8, 4), (3, 8, 4), (5, 2, 1)])
def test_epochs_draw_what_the_published_shuffled_dataloader_draws_under_accelerate(images, batch, ranks):
    inputs = TrainingInputs(list(range(images)), ConceptConfig(**{**FAST, "batch_size": batch}), 32)
    generator = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(3):
        first = inputs.draw(batch, generator).index.tolist()
        order = inputs.order.tolist()
        assert sorted(order) == list(range(images))
        orders.append(order)
        expected = _accelerate_epoch(order, batch, ranks)
        drawn = [first] + [inputs.draw(batch, generator).index.tolist() for _ in range(len(expected) - 1)]
        assert drawn == expected
    if images > 3:  # a fresh shuffle every epoch (3 images have only 6 orders: two epochs may share one)
        assert len({tuple(order) for order in orders}) == 3


def test_epochs_show_every_image_equally_often_where_draws_with_replacement_do_not():
    images, batch, epochs = 96, 8, 10
    counts = {}
    for order in ("epochs", "replacement"):
        inputs = TrainingInputs([0] * images, ConceptConfig(image_order=order, **FAST), 32)
        generator = torch.Generator().manual_seed(0)
        index = torch.cat([inputs.draw(batch, generator).index for _ in range(images // batch * epochs)])
        counts[order] = torch.bincount(index, minlength=images)
    assert counts["epochs"].tolist() == [epochs] * images
    assert counts["replacement"].sum() == images * epochs and counts["replacement"].min() < epochs < \
        counts["replacement"].max()
    # an epoch that does not divide into batches: every image once, the last batch completed from the epoch's start
    inputs = TrainingInputs([0] * 100, ConceptConfig(**FAST), 32)
    generator = torch.Generator().manual_seed(0)
    index = torch.cat([inputs.draw(batch, generator).index for _ in range(13)])
    assert torch.bincount(index).tolist().count(2) == 4 and torch.bincount(index).min() == 1
    assert index[-4:].tolist() == inputs.order[:4].tolist()
    # class-balanced draws stay with replacement whatever the order says
    balanced = TrainingInputs([0] * 95 + [1], ConceptConfig(balance_classes=True, **FAST), 32)
    assert not balanced.epochs and balanced.order_state() == {}


# -- the seed ----------------------------------------------------------------------------------------------------------


def test_the_seed_is_a_knob_and_the_seed_keyword_is_a_deprecated_override(monkeypatch):
    from diffii_datasets.diffusion.concepts import training

    monkeypatch.setattr(training, "_seed_keyword_warned", False)
    images, names = [[_wide_image(0)], [_wide_image(1)]], ["red circle", "blue square"]
    config = ConceptConfig(train_steps=2, **FAST)

    def learn(**kwargs):
        return learn_concepts(tiny_pipeline(seed=0), images, names, METACLASS, progress=False, **kwargs)

    published, other = learn(config=config), learn(config=ConceptConfig(train_steps=2, seed=7, **FAST))
    assert published.recipe["config"]["seed"] == 42 and other.recipe["config"]["seed"] == 7
    assert published.identity() != other.identity()
    with pytest.warns(FutureWarning, match=r"learn_concepts\(seed=7\) is deprecated.*ConceptConfig.seed"):
        overridden = learn(config=config, seed=7)
    assert overridden.identity() == other.identity() and overridden.recipe == other.recipe
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        learn(config=config, seed=7)


def _draws_of_0_2(seed, steps, images, crops, batch, latent_shape):
    """Every step's random draws as diffii-datasets 0.2.0 made them (its ``Trainer.step`` and
    ``TrainingInputs.draw``): one CPU generator seeded with the run's seed; the image index with replacement."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(images, (batch,), generator=generator)
        flip = torch.randint(2, (batch,), generator=generator)
        crop = (torch.rand(batch, generator=generator) * crops[index]).long()
        timesteps = torch.randint(0, 1000, (batch,), generator=generator)
        noise = torch.randn((batch, *latent_shape), generator=generator)
        eps = torch.randn((batch, *latent_shape), generator=generator)
        yield index, flip, crop, timesteps, noise, eps


def test_the_0_2_recipe_draws_what_0_2_drew_and_learns_from_the_same_start(spy_latents, monkeypatch):
    from diffusers import DDPMScheduler

    noised = []
    original = DDPMScheduler.add_noise

    def add_noise(self, latents, noise, timesteps):
        noised.append((noise.clone(), timesteps.clone()))
        return original(self, latents, noise, timesteps)

    monkeypatch.setattr(DDPMScheduler, "add_noise", add_noise)
    images = [[_wide_image(0), _wide_image(2)], [_wide_image(1)]]
    config = ConceptConfig(train_steps=3, **{**FAST, **RECIPE_0_2})
    learn_concepts(tiny_pipeline(seed=0), images, ["red circle", "blue square"], METACLASS, config, progress=False)
    inputs = spy_latents[0][0]
    expected = _draws_of_0_2(0, 3, 3, inputs.crops, 4, inputs.latent_shape)
    for (_, draw, eps, _), (noise, timesteps), old in zip(spy_latents, noised, expected, strict=True):
        for got, want in zip((draw.index, draw.flip, draw.crop, timesteps, noise, eps), old, strict=True):
            assert torch.equal(got, want)


# -- crops of extreme images -------------------------------------------------------------------------------------------


def test_crop_offsets_are_bounded_evenly_over_the_published_range():
    assert crop_offsets(51, 32, 2, max_positions=10) == list(range(0, 19, 2))  # within the bound: the grid
    bounded = crop_offsets(51, 32, 2, max_positions=4)
    assert bounded == [0, 6, 13, 19]  # 0 to 51 - 32, gaps of 19/3 rounded
    offsets = crop_offsets(32000, 32, 2, max_positions=64)
    gaps = {b - a for a, b in zip(offsets, offsets[1:])}
    assert len(offsets) == 64 and offsets[0] == 0 and offsets[-1] == 32000 - 32 and max(gaps) - min(gaps) <= 1


def test_a_panorama_gets_a_bounded_number_of_crops_with_a_warning_naming_it_and_the_cost(spy_latents):
    pipe = tiny_pipeline(seed=0)
    panorama = tiny_image_dataset(1, 1, size=64, seed=0)[0][0].resize((320, 40))  # 8:1 -> 256 x 32: 113 offsets
    config = ConceptConfig(train_steps=1, max_crop_positions=16, **FAST)
    with pytest.warns(UserWarning, match=r"1 training image\(s\) have more than 16 crop offsets, e\.g\. "
                                         r"images_by_class\[0\]\[1\] \(320 x 40 px, 256 x 32 at 32 px: 113 offsets, "
                                         r"226 VAE encodings and .* of cached latents\); each gets 16 evenly spaced "
                                         r"offsets instead \(32 VAE encodings"):
        learn_concepts(pipe, [[_wide_image(), panorama]], ["red circle"], METACLASS, config, progress=False)
    inputs = spy_latents[0][0]
    assert inputs.crops.tolist() == [10, 16]  # the ordinary image keeps its grid
    crops = inputs.image_crops(panorama, "panorama", pipe.vae_scale_factor)
    resized = _resized(panorama, (256, 32))
    offsets = crop_offsets(256, 32, 2, 16)
    assert all(torch.equal(crop, resized[:, :, o:o + 32]) for crop, o in zip(crops, offsets, strict=True))


def test_absurd_aspect_ratios_are_refused_naming_the_image_and_what_is_accepted(spy_latents):
    pipe = tiny_pipeline(seed=0)
    strip = Image.new("RGB", (10000, 10), (200, 30, 30))
    images = [[_wide_image(), strip]]
    with pytest.raises(ValueError, match=r"^images_by_class\[0\]\[1\] is 10000 x 10 pixels, an aspect ratio of "
                                         r"1e\+03:1; concept learning accepts at most 20:1 \(ConceptConfig"
                                         r"\.max_aspect_ratio, --concept-max-aspect-ratio\)"):
        learn_concepts(pipe, images, ["red circle"], METACLASS, ConceptConfig(train_steps=1, **FAST))
    assert not spy_latents  # refused before anything was encoded
    # accepted when asked for: 64 of its 15,985 offsets are encoded, not all of them
    config = ConceptConfig(train_steps=1, max_aspect_ratio=1000, **FAST)
    with pytest.warns(UserWarning, match=r"32000 x 32 at 32 px: 15,985 offsets"):
        learn_concepts(pipe, images, ["red circle"], METACLASS, config, progress=False)
    assert spy_latents[0][0].crops.tolist() == [10, 64]
