"""Shared by the baseline tests: one tiny pipeline, one dataset, one cache, each method's store made once."""

import pytest

from diffii_datasets.testing import tiny_pipeline
from tests.methods.helpers import SizedShapes, prepare


@pytest.fixture(scope="package")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="package")
def dataset():
    return SizedShapes()


@pytest.fixture(scope="package")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("baselines")


@pytest.fixture(scope="package")
def published(pipe, dataset, cache):
    """``published(method)``: ``method``'s store at its published knobs but for the tiny model's size and concept
    learning, one image per real image and batch 1 (the authors' per-image calls), made once (the other
    expansion rates are tested with fewer steps)."""
    made = {}

    def run(method):
        if method not in made:
            made[method] = prepare(method, dataset, pipe, cache, expansion_rate=1.0, batch_size=1)
        return made[method]

    return run
