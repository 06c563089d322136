"""A store's manifest: written once every class is committed, checked against the header and the commit records.

The manifest holds no timestamps, so equal stores have byte-equal manifests; its
``versions`` record which libraries wrote the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from diffii_datasets._io import FileFormatError, atomic_write, json_bytes, read_json, sha256_file
from diffii_datasets.store.checks import StoreDamageError, StoreProblem, check_manifest, expected_manifest
from diffii_datasets.store.layout import CLASS_RECORD, MANIFEST

if TYPE_CHECKING:
    from diffii_datasets.store.store import SyntheticStore

__all__ = ["finalize", "manifest_problems", "read_manifest"]


def _record_summaries(store: SyntheticStore) -> dict[int, tuple[int | None, str] | None]:
    """Per class: ``(count, SHA-256 of class.json)``, count ``None`` for a damaged record; ``None`` uncommitted."""
    summaries: dict[int, tuple[int | None, str] | None] = {}
    for class_index in range(store.header.num_classes):
        path = store.class_dir(class_index) / CLASS_RECORD
        if not path.is_file():
            summaries[class_index] = None
            continue
        try:
            count = store.class_record(class_index)["count"]
        except StoreDamageError:
            count = None
        summaries[class_index] = (count, sha256_file(path))
    return summaries


def manifest_problems(store: SyntheticStore) -> list[str]:
    """What is wrong with ``manifest.json`` (empty when it is absent or right), as sentences."""
    try:
        manifest = read_json(store.path / MANIFEST, expect=None, missing_ok=True, canonical=True)
    except FileFormatError as error:
        return [error.problem.removeprefix("is ")]
    if manifest is None and not (store.path / MANIFEST).exists():
        return []
    return check_manifest(manifest, store.header.to_dict(), _record_summaries(store))


def read_manifest(store: SyntheticStore) -> dict[str, Any] | None:
    """The manifest, checked; ``None`` while the store is incomplete; :class:`StoreDamageError` when damaged."""
    problems = manifest_problems(store)
    if problems:
        raise StoreDamageError(store.path, StoreProblem(None, MANIFEST, f"damaged ({problems[0]})"))
    return read_json(store.path / MANIFEST, missing_ok=True)


def finalize(store: SyntheticStore, class_indices: Sequence[int], versions: Mapping[str, str]) -> dict[str, Any]:
    """Write the manifest once every class in ``class_indices`` is committed (idempotent, deterministic).

    A manifest that is already right is kept as it is (whichever versions wrote it); a
    damaged one is written again, with a warning. A store whose header has gone (deleted
    under this process) is an error, never reported complete.
    """
    missing = [c for c in class_indices if not store.is_committed(c)]
    if missing:
        raise RuntimeError(f"cannot finalize {store.path}: classes not committed yet: {missing}")
    store.check_header()
    problems = manifest_problems(store)
    if (store.path / MANIFEST).exists() and not problems:
        return read_json(store.path / MANIFEST)
    for reason in problems:
        store.repaired(StoreProblem(None, MANIFEST, f"damaged ({reason})"), "it is written again")
    records = {c: (store.class_record(c)["count"], sha256_file(store.class_dir(c) / CLASS_RECORD))
               for c in class_indices}
    manifest = expected_manifest(store.header.to_dict(), records, versions)
    atomic_write(store.path / MANIFEST, json_bytes(manifest))
    return manifest
