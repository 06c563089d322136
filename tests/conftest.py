"""Shared fixtures. The offline guard is loaded as a plugin (see setup.cfg)."""

import pytest
import torch

pytest_plugins = ["pytester"]

# Two cores: keep intra-op threads from oversubscribing DataLoader workers and subprocesses.
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_pipe():
    """One tiny pipeline for read-only use across the session (do not mutate it)."""
    from diffii_datasets.testing import tiny_pipeline

    return tiny_pipeline(seed=0)
