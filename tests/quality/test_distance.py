"""KID through torchmetrics equals the unbiased MMD^2 with the cubic polynomial kernel, computed directly."""

import pytest
import torch

from diffii_datasets.quality.distance import kernel_inception_distance, kid_features


def unbiased_mmd2(x, y):
    """KID of two feature sets: the unbiased squared MMD with ``k(a, b) = (a.b / d + 1)^3``."""
    x, y = x.double(), y.double()
    d = x.shape[1]

    def kernel(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - kxx.diag().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diag().sum()) / (n * (n - 1))
                 - 2 * kxy.mean())


def features(count, seed, shift=0.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 16, generator=generator) + shift


def test_kid_of_equal_sized_sets_is_the_unbiased_mmd():
    real, synthetic = features(6, 0), features(6, 1, shift=3.0)
    mean, std = kernel_inception_distance(real, synthetic, subsets=4, max_subset_size=100)
    assert mean == pytest.approx(unbiased_mmd2(real, synthetic), rel=1e-4)
    assert mean > 0
    assert std == pytest.approx(0, abs=1e-4 * abs(mean))  # every subset is the whole of both sets


def test_kid_subsets_are_drawn_with_the_seed_as_torchmetrics_draws_them():
    real, synthetic = features(5, 0), features(9, 1, shift=0.3)
    mean, std = kernel_inception_distance(real, synthetic, subsets=3, max_subset_size=4, seed=11)
    torch.manual_seed(11)
    values = []
    for _ in range(3):
        real_part = real[torch.randperm(5)[:4]]
        values.append(unbiased_mmd2(real_part, synthetic[torch.randperm(9)[:4]]))
    values = torch.tensor(values)
    assert mean == pytest.approx(float(values.mean()), rel=1e-4)
    assert std == pytest.approx(float(values.std(unbiased=False)), rel=1e-3)
    state = torch.get_rng_state()
    assert kernel_inception_distance(real, synthetic, subsets=3, max_subset_size=4, seed=11) == (mean, std)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left as it was


def test_kid_needs_two_images_on_each_side():
    assert kernel_inception_distance(features(1, 0), features(5, 1)) is None
    assert kernel_inception_distance(features(5, 0), features(1, 1)) is None


def test_kid_features_make_the_kernel_a_function_of_the_cosine():
    unit = torch.nn.functional.normalize(features(4, 2), dim=1)
    scaled = kid_features(unit)
    assert torch.allclose(scaled @ scaled.T / scaled.shape[1], unit @ unit.T, atol=1e-6)
