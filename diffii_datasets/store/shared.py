"""A store's shared stage: the suffixes every class draws from, kept under a checksum in ``shared/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from diffii_datasets._io import FileFormatError, atomic_write, json_bytes, read_json, sha256_bytes, sha256_file
from diffii_datasets.store.checks import StoreDamageError, StoreProblem, check_checksums, check_suffixes, damage_reason
from diffii_datasets.store.layout import SHARED_CHECKSUMS, SHARED_DIR, SHARED_SUFFIXES

if TYPE_CHECKING:
    from diffii_datasets.store.store import SyntheticStore

__all__ = ["read_suffixes", "shared_problems", "write_suffixes"]

_CHECKSUMS = f"{SHARED_DIR}/{SHARED_CHECKSUMS}"
_SUFFIXES = f"{SHARED_DIR}/{SHARED_SUFFIXES}"


def read_suffixes(store: SyntheticStore) -> list[str] | None:
    """The suffixes the shared stage saved, checked against ``shared/checksums.json``.

    ``None`` when there are none yet; :class:`StoreDamageError` naming the file when either
    file is damaged, or when the checksums are gone but the suffixes are there (they can no
    longer be checked: derive them again).
    """
    problems = shared_problems(store)
    if problems:
        raise StoreDamageError(store.path, problems[0])
    if not (store.shared_dir / SHARED_CHECKSUMS).exists():
        return None
    return read_json(store.shared_dir / SHARED_SUFFIXES, expect=list)


def write_suffixes(store: SyntheticStore, suffixes: Sequence[str]) -> None:
    """Save the shared stage's suffixes, then their checksum (hold the ``"shared"`` lock)."""
    data = json_bytes(list(suffixes))
    store.shared_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(store.shared_dir / SHARED_SUFFIXES, data)
    atomic_write(store.shared_dir / SHARED_CHECKSUMS, json_bytes({SHARED_SUFFIXES: sha256_bytes(data)}))


def shared_problems(store: SyntheticStore) -> list[StoreProblem]:
    """What is wrong with ``shared/``: a damaged checksum file, suffixes missing (also both files, once a class is
    committed: they steered its generation), damaged or unchecked."""
    checksums_path, suffixes_path = store.shared_dir / SHARED_CHECKSUMS, store.shared_dir / SHARED_SUFFIXES
    try:
        checksums = read_json(checksums_path, expect=None, missing_ok=True, canonical=True)
    except FileFormatError as error:
        return [StoreProblem(None, _CHECKSUMS, damage_reason(error))]
    if checksums is None and not checksums_path.exists():
        if suffixes_path.exists():  # the checksum went (or never came: a kill between the two writes)
            return [StoreProblem(None, _CHECKSUMS, "missing (the suffixes beside it cannot be checked)")]
        if store.method.suffixes and any(store.is_committed(c) for c in range(store.header.num_classes)):
            return [StoreProblem(None, _SUFFIXES, "missing (the suffixes its classes were generated with)")]
        return []  # nothing saved yet
    reasons = check_checksums(checksums, [SHARED_SUFFIXES])
    if reasons:
        return [StoreProblem(None, _CHECKSUMS, f"damaged ({'; '.join(reasons)})")]
    if not suffixes_path.is_file():
        return [StoreProblem(None, _SUFFIXES, "missing")]
    if sha256_file(suffixes_path) != checksums[SHARED_SUFFIXES]:
        return [StoreProblem(None, _SUFFIXES, "checksum mismatch")]
    try:
        reasons = check_suffixes(read_json(suffixes_path, expect=None, canonical=True))
    except FileFormatError as error:
        reasons = [error.problem.removeprefix("is ")]
    return [StoreProblem(None, _SUFFIXES, f"damaged ({reasons[0]})")] if reasons else []
