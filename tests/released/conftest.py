"""Fixtures of the released-artifact tests: a fake cub-5shot release, the fake CUB root, a local stand-in Hub."""

from __future__ import annotations

import pytest

from tests.helpers.cli import CLASSES
from tests.helpers.fakedata import write_cub
from tests.released.fakehub import FakeHub, hub_at, release_archives


@pytest.fixture(scope="module")
def release(tiny_pipe):
    """The three archives of a fake cub-5shot release, and the released vector of each authors' class name."""
    return release_archives(tiny_pipe.unet)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("released") / "data"
    write_cub(root, CLASSES)
    return root


@pytest.fixture
def serve(monkeypatch, tmp_path):
    """``serve(files)``: a running FakeHub that ``huggingface_hub`` talks to, with a fresh Hub cache
    (``status``: one that answers every request with that HTTP status)."""
    hubs = []

    def start(files, *, offline=False, hub_cache="hub-cache", status=None):
        hub = FakeHub(files, status=status).__enter__()
        hubs.append(hub)
        hub_at(monkeypatch, hub.url, tmp_path / hub_cache, offline=offline)
        return hub

    yield start
    for hub in hubs:
        hub.__exit__(None, None, None)
