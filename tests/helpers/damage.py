"""Damaging a copy of a prepared store and looking at it the way a user would (verify, prepare)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

from diffii_datasets._io import json_bytes, sha256_bytes
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


def ended_pid() -> int:
    """The id of a process that has ended (what a killed process's leftovers are named after)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def rewrite_consistently(store: Path, class_index: int, relative: str, data: bytes) -> None:
    """Replace a file of a committed class and make every checksum agree with it: its line of
    ``metadata.jsonl`` (an image's), ``class.json`` and the manifest (a forgery no checksum can catch)."""
    class_dir = store / "classes" / f"{class_index:05d}"
    (class_dir / relative).write_bytes(data)
    record = json.loads((class_dir / "class.json").read_text())
    record["files"][relative] = sha256_bytes(data)
    if relative.startswith("images/"):
        lines = [json.loads(line) for line in (class_dir / "metadata.jsonl").read_text().splitlines()]
        for line in lines:
            if line["file"] == relative:
                line["sha256"] = sha256_bytes(data)
        edit_metadata_consistently(store, class_index, lines, record)
    else:
        _commit_record(store, class_index, record)


def edit_metadata_consistently(store: Path, class_index: int, lines: list[dict], record: dict | None = None) -> None:
    """Write ``lines`` as the class's ``metadata.jsonl`` (as the writer does) and make the checksums agree."""
    class_dir = store / "classes" / f"{class_index:05d}"
    data = b"".join(json.dumps(line, sort_keys=True).encode() + b"\n" for line in lines)
    (class_dir / "metadata.jsonl").write_bytes(data)
    record = record or json.loads((class_dir / "class.json").read_text())
    record["files"]["metadata.jsonl"] = sha256_bytes(data)
    _commit_record(store, class_index, record)


def _commit_record(store: Path, class_index: int, record: dict) -> None:
    class_dir = store / "classes" / f"{class_index:05d}"
    (class_dir / "class.json").write_bytes(json_bytes(record))
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["class_records"][f"{class_index:05d}"]["class_json_sha256"] = sha256_bytes(
        (class_dir / "class.json").read_bytes())
    (store / "manifest.json").write_bytes(json_bytes(manifest))
