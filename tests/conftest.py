"""Shared fixtures. The offline guard is loaded as a plugin (see setup.cfg)."""

import os

import pytest
import torch

pytest_plugins = ["pytester"]

# Two cores: one intra-op thread per xdist worker (two workers), two when running alone.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture(scope="session")
def tiny_pipe():
    """One tiny pipeline for read-only use across the session (do not mutate it)."""
    from diffii_datasets.testing import tiny_pipeline

    return tiny_pipeline(seed=0)
