"""Shared fixtures. The offline guard is loaded as a plugin (see setup.cfg)."""

import pytest
import torch

pytest_plugins = ["pytester"]

# One intra-op thread per test process: two xdist workers share the two cores, and a single process (-n 0) run
# beside other work is not slowed tenfold by oversubscription. Worker subprocesses match the parent's count.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipe():
    """One tiny pipeline for read-only use across the session (do not mutate it)."""
    from diffii_datasets.testing import tiny_pipeline

    return tiny_pipeline(seed=0)
