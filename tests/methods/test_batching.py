"""Batches change nothing but float rounding; the plan counts the UNet evaluations a run makes."""

import numpy as np
import pytest

from diffii_datasets.methods import get_method
from tests.methods.helpers import PER_CLASS, prepare, stored


def test_a_batched_run_draws_the_same_and_agrees_up_to_rounding(pipe, dataset, cache):
    """DA-Fusion's four strengths make batches of mixed sizes; the images and records are those of batch 1.

    Batching changes the order of float reductions inside the UNet and VAE (oneDNN picks kernels by
    batch size), which moves a pixel by an 8-bit level now and then: at most 2 levels, under 2 % of values.
    """
    one = stored(prepare("da-fusion", dataset, pipe, cache, expansion_rate=2.0, denoising_steps=6, batch_size=1))
    batched = stored(prepare("da-fusion", dataset, pipe, cache, expansion_rate=2.0, denoising_steps=6, batch_size=4))
    assert len({record.strength for record, _ in one}) > 1
    assert [record.source_indices for record, _ in one] == [(j,) for n in PER_CLASS for j in range(n) for _ in range(2)]
    for (a, pixels_a), (b, pixels_b) in zip(one, batched, strict=True):
        assert (a.label, a.index, a.source_indices, a.strength, a.seed) == \
               (b.label, b.index, b.source_indices, b.strength, b.seed)
        difference = np.abs(pixels_a.astype(int) - pixels_b.astype(int))
        assert difference.max() <= 2 and (difference > 0).mean() < 0.02


@pytest.mark.parametrize("method", ["real-gen", "real-guidance"])
def test_the_plan_counts_the_unet_evaluations_of_a_run(pipe, dataset, tmp_path, method):
    config = {"expansion_rate": 1.0, "denoising_steps": 6, "batch_size": 2}
    evaluations = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: evaluations.append(args[0].shape[0]))
    try:
        augmented = prepare(method, dataset, pipe, tmp_path, **config)
    finally:
        handle.remove()
    (stage,) = get_method(method).image_stages(augmented.config)
    assert sum(evaluations) == stage.per_synthetic * sum(PER_CLASS) > 0
