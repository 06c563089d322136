"""Fixtures of the quality tests: the tiny metric networks, built once per session."""

import pytest


@pytest.fixture(scope="session")
def metric_models():
    """Tiny random-weight CLIP and LPIPS on the CPU (read-only)."""
    from diffii_datasets.testing.metrics import tiny_metric_models

    return tiny_metric_models(seed=0, device="cpu")
