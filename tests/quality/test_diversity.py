"""LPIPS diversity: the mean over every pair equals the lpips network's own forward pass, pair by pair."""

import itertools

import pytest
import torch

from diffii_datasets.quality.diversity import lpips_input, mean_pairwise_lpips, pairwise_lpips
from tests.quality.stores import class_images


def by_hand(net, images, size):
    """LPIPS of every pair ``i < j`` through ``lpips.LPIPS.forward``, one pair at a time."""
    batch = lpips_input(images, size)
    with torch.no_grad():
        return [float(net(batch[i:i + 1], batch[j:j + 1])) for i, j in itertools.combinations(range(len(images)), 2)]


def test_mean_pairwise_lpips_is_the_mean_of_the_network_over_all_pairs(metric_models):
    _, real = class_images(1, 5, size=48)
    expected = by_hand(metric_models.lpips, real[0], 32)
    assert min(expected) > 0
    pairs = pairwise_lpips(metric_models.lpips, real[0], size=32, batch_size=3)
    assert pairs.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    mean = mean_pairwise_lpips(metric_models.lpips, real[0], size=32, batch_size=2)
    assert mean == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_identical_images_have_diversity_zero_and_a_single_image_none(metric_models):
    _, real = class_images(1, 1, size=48)
    assert mean_pairwise_lpips(metric_models.lpips, real[0] * 4, size=32) == 0.0
    assert mean_pairwise_lpips(metric_models.lpips, real[0], size=32) is None


def test_lpips_input_resizes_the_shorter_side_and_crops_the_centre():
    from PIL import Image

    wide = Image.new("RGB", (80, 40), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 20, 40))  # a blue band on the left, cropped away
    batch = lpips_input([wide], 32)
    assert batch.shape == (1, 3, 32, 32)
    assert batch.min() >= -1 and batch.max() <= 1
    assert torch.allclose(batch[0, :, 16, 16], torch.tensor([1.0, -1.0, -1.0]))


def test_max_images_averages_the_pairs_of_a_seeded_subset(metric_models):
    _, real = class_images(1, 6, size=48)
    pairs = dict(zip(itertools.combinations(range(6), 2), by_hand(metric_models.lpips, real[0], 32)))
    subset_means = {subset: sum(pairs[p] for p in itertools.combinations(subset, 2)) / 3
                    for subset in itertools.combinations(range(6), 3)}
    first = mean_pairwise_lpips(metric_models.lpips, real[0], size=32, max_images=3, seed=1)
    assert first == mean_pairwise_lpips(metric_models.lpips, real[0], size=32, max_images=3, seed=1)
    assert any(first == pytest.approx(value, rel=1e-5) for value in subset_means.values())
    everything = mean_pairwise_lpips(metric_models.lpips, real[0], size=32, max_images=6)
    assert everything == pytest.approx(sum(pairs.values()) / len(pairs), rel=1e-5)
