"""Keeping a store tidy: the leftovers of processes that are gone, stray entries, and the whole-store check.

Temporaries name their owner: ``.<name>.tmp-<pid>`` (:func:`~diffii_datasets._io.atomic_write`),
``classes/.tmp-00003-<pid>`` (a class being written) and ``classes/.trash-00003-<pid>``
(a class being deleted). Only those whose process is gone are swept, a class's only
while nobody holds its lock (a writer on another machine sharing the cache holds it).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from diffii_datasets._io import FileFormatError, process_gone, temp_owner
from diffii_datasets.store_header import read_header
from diffii_datasets.store_records import StoreProblem

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticStore

__all__ = ["remove_if_unused", "remove_tree", "store_problems", "sweep"]

logger = logging.getLogger(__name__)

_CLASS_TEMP = re.compile(r"\.(tmp|trash)-(\d{5})-(\d+)\Z")
_FILE_TEMP = re.compile(r"\..+\.tmp-\d+\Z")
_CACHE_FILE = re.compile(r"(captions|suffixes)-[0-9a-f]{16}\.json\Z")  # the captioned suffixes' caches in shared/
_STORE_ENTRIES = ("store.json", "manifest.json", "classes", "shared", "work", "locks")
_SHARED_FILES = ("suffixes.json", "checksums.json")


def remove_tree(path: Path) -> None:
    """Delete a file or a directory tree (a class directory replaced by a file is a file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _leftovers(store: SyntheticStore) -> dict[Path, tuple[int, int | None]]:
    """``{path: (owner pid, class index or None)}`` of every temporary or trash entry of the store."""
    found: dict[Path, tuple[int, int | None]] = {}
    for folder in (store.path, store.shared_dir):
        for entry in _entries(folder):
            if _FILE_TEMP.match(entry.name):
                found[entry] = (temp_owner(entry.name) or 0, None)
    for entry in _entries(store.classes_dir):
        match = _CLASS_TEMP.match(entry.name)
        if match:
            found[entry] = (int(match.group(3)), int(match.group(2)))
    return found


def sweep(store: SyntheticStore) -> list[Path]:
    """Delete the temporaries and trash whose owner process is gone; returns what was deleted.

    Nothing is done (or created) in a store that cannot be written.
    """
    gone = [(path, index) for path, (pid, index) in _leftovers(store).items() if process_gone(pid)]
    if not gone or not os.access(store.path, os.W_OK):
        return []
    swept = []
    for path, class_index in gone:
        lock = store.class_lock(class_index) if class_index is not None else None
        try:
            if lock is not None:
                lock.acquire(timeout=0)
        except Timeout:
            continue  # its class is being written right now, by a process of another machine
        try:
            remove_tree(path)
            swept.append(path)
        finally:
            if lock is not None:
                lock.release()
    if swept:
        logger.info("removed what processes that are gone left in %s: %s", store.path,
                    ", ".join(str(p.relative_to(store.path)) for p in swept))
    return swept


def remove_if_unused(store: SyntheticStore) -> bool:
    """Delete ``store`` when nothing but its header was ever written (a run that failed before any work)."""
    if not store.path.is_dir() or not os.access(store.path, os.W_OK):
        return False
    try:
        with FileLock(str(store.locks_dir / "header.lock")):
            used = [p for p in (store.classes_dir, store.shared_dir, store.work_dir)
                    if any(f.is_file() for f in p.rglob("*"))]
            if used or (store.path / "manifest.json").exists():
                return False
            shutil.rmtree(store.path, ignore_errors=True)
    except OSError:  # another process (a rank of the same launch) removed it first
        return False
    return True


def _stray_problems(store: SyntheticStore) -> list[StoreProblem]:
    """Entries that are not part of the store, and leftovers of processes that are gone."""
    allowed = {store.path: set(_STORE_ENTRIES), store.shared_dir: set(_SHARED_FILES),
               store.classes_dir: {f"{c:05d}" for c in range(store.header.num_classes)}}
    leftovers = _leftovers(store)
    problems = []
    for folder, names in allowed.items():
        for entry in _entries(folder):
            relative = entry.relative_to(store.path).as_posix()
            if entry in leftovers:
                pid = leftovers[entry][0]
                if process_gone(pid):
                    problems.append(StoreProblem(None, relative, f"left behind by process {pid}, which has ended "
                                                                 "(swept at the next prepare)"))
            elif entry.name in names:
                if folder == store.classes_dir and not entry.is_dir():
                    problems.append(StoreProblem(None, relative, "not a directory (a class must be one)"))
            elif not (folder == store.shared_dir and _CACHE_FILE.match(entry.name)):
                problems.append(StoreProblem(None, relative, "a stray entry (not part of the store)"))
    return problems


def _concept_problems(store: SyntheticStore) -> list[StoreProblem]:
    """The learned concepts the header names, when the cache keeps them next to the store."""
    directory = store.learned_concepts_dir()
    if directory is None or not directory.is_dir():
        return []
    from diffii_datasets.diffusion.concepts import ConceptSet

    try:
        ConceptSet.load(directory)
    except (ValueError, OSError) as error:
        return [StoreProblem(None, str(directory), f"not a usable concept set ({error})")]
    return []


def store_problems(store: SyntheticStore, *, checksums: bool = True) -> list[StoreProblem]:
    """Everything wrong with ``store``, one :class:`StoreProblem` each (see :meth:`SyntheticStore.problems`)."""
    problems = []
    try:
        if read_header(store.path) != store.header:
            problems.append(StoreProblem(None, "store.json", "damaged (it changed since the store was opened)"))
    except (FileFormatError, OSError) as error:
        detail = error.problem if isinstance(error, FileFormatError) else str(error)
        problems.append(StoreProblem(None, "store.json", f"damaged ({detail.removeprefix('is ')})"))
    problems += store.verify(range(store.header.num_classes), checksums=checksums)
    problems += [StoreProblem(None, "manifest.json", f"damaged ({reason})") for reason in store.verify_manifest()]
    problems += store.shared_problems()
    problems += _concept_problems(store)
    return problems + _stray_problems(store)
