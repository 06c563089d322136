"""Damaging a copy of a prepared store and looking at it the way a user would (verify, prepare)."""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from pathlib import Path

from types import SimpleNamespace

from tests.helpers.augment import make_dataset, make_wrapper

SCRATCH = ("locks", "work", "scans")  # neither the store's content nor the cache's: locks, scratch, scan caches


def cache_files(cache: Path) -> dict[str, bytes]:
    """Every file of a cache that defines its content: the stores and the learned concepts."""
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")
            and not set(p.relative_to(cache).parts) & set(SCRATCH)}


def reference_cache(cache: Path, pipe) -> SimpleNamespace:
    """One undamaged cache (a store and its learned concepts) prepared in ``cache``, for tests to copy."""
    wrapper = make_wrapper(make_dataset(), cache, pipeline=pipe).prepare()
    return SimpleNamespace(cache=cache, store=wrapper.store.path, concepts=wrapper.store.learned_concepts_dir(),
                           files=cache_files(cache))


def copy_cache(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"))
    return target


def verify(store: Path) -> tuple[int, list[str], str]:
    """``diffii-datasets verify STORE`` in this process: (exit status, PROBLEM lines, all output)."""
    from diffii_datasets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["verify", str(store)])
    text = out.getvalue() + err.getvalue()
    return status, [line.removeprefix("PROBLEM ") for line in text.splitlines() if line.startswith("PROBLEM ")], text


def prepare(cache: Path, pipe, **kwargs):
    """Prepare the tests' dataset in ``cache``; returns the wrapper and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapper = make_wrapper(make_dataset(), cache, pipeline=pipe, **kwargs).prepare()
    return wrapper, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))
