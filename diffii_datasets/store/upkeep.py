"""Keeping a store tidy: who has it open, the leftovers of processes that are gone, strays, the whole-store check.

Temporaries name their owner: ``.<name>.tmp-<pid>`` (:func:`~diffii_datasets._io.atomic_write`,
in the store, ``shared/`` and ``work/``), ``classes/.tmp-00003-<pid>`` (a class being
written) and ``classes/.trash-00003-<pid>`` (a class being deleted). Only those whose
process is gone are swept, a class's only while nobody holds its lock (a writer on
another machine sharing the cache holds it).

A process that opens a store for writing holds ``locks/user-<pid>.lock`` until it is
done (:class:`UserLock`), so a process never removes a store somebody else is filling.
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
from diffii_datasets.store.checks import StoreProblem
from diffii_datasets.store.header import read_header
from diffii_datasets.store.layout import CLASSES_DIR, HEADER, LOCKS_DIR, MANIFEST, SHARED_CHECKSUMS, SHARED_DIR, \
    SHARED_SUFFIXES, WORK_DIR

if TYPE_CHECKING:
    from diffii_datasets.store.store import SyntheticStore

__all__ = ["UserLock", "checkpoint_problems", "existence_lock", "holds_work", "remove_if_unused", "remove_tree",
           "store_problems", "sweep"]

logger = logging.getLogger(__name__)

_CLASS_TEMP = re.compile(r"\.(tmp|trash)-(\d{5})-(\d+)\Z")
_FILE_TEMP = re.compile(r"\..+\.tmp-\d+\Z")
_CACHE_FILE = re.compile(r"(captions|suffixes)-[0-9a-f]{16}\.json\Z")  # the captioned suffixes' caches in shared/
_STORE_ENTRIES = (HEADER, MANIFEST, CLASSES_DIR, SHARED_DIR, WORK_DIR, LOCKS_DIR)
_SHARED_FILES = (SHARED_SUFFIXES, SHARED_CHECKSUMS)
_USER_LOCK = re.compile(r"user-(\d+)\.lock\Z")


class UserLock:
    """This process's hold on a store it writes: ``locks/user-<pid>.lock``, held until :meth:`release`."""

    def __init__(self, lock: FileLock, path: Path) -> None:
        self._lock, self.path = lock, path

    @classmethod
    def hold(cls, store: SyntheticStore) -> UserLock:
        store.locks_dir.mkdir(parents=True, exist_ok=True)
        path = store.locks_dir / f"user-{os.getpid()}.lock"
        lock = FileLock(str(path))
        lock.acquire()
        return cls(lock, path)

    def release(self) -> None:
        self._lock.release()
        self.path.unlink(missing_ok=True)


def other_users(store: SyntheticStore) -> list[int]:
    """The processes other than this one that hold ``store`` open for writing (a held user lock)."""
    users = []
    for entry in _entries(store.locks_dir):
        match = _USER_LOCK.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        lock = FileLock(str(entry))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            users.append(int(match.group(1)))
            continue
        lock.release()
        entry.unlink(missing_ok=True)  # its process is gone
    return users


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
    work = sorted(p for p in store.work_dir.rglob("*") if p.is_dir()) if store.work_dir.is_dir() else []
    for folder in (store.path, store.shared_dir, store.work_dir, *work):
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


def holds_work(store: SyntheticStore) -> bool:
    """Whether anything besides the header was ever written into ``store`` (a class, shared files, scratch)."""
    return (store.path / MANIFEST).exists() or any(
        f.is_file() for folder in (store.classes_dir, store.shared_dir, store.work_dir) for f in folder.rglob("*"))


def existence_lock(store: SyntheticStore) -> FileLock:
    """The lock under which a store is made, opened for writing, or removed: ``<cache>/locks/store-<name>.lock``.

    It lives outside the store, so a process waiting for it never holds a lock file
    inside a store that is being removed.
    """
    locks = store.path.parent / LOCKS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / f"store-{store.path.name}.lock"))


def remove_if_unused(store: SyntheticStore) -> bool:
    """Delete ``store`` when this process made it, no other process has it open, and nothing but its header
    was ever written (a run that failed before any work).

    Under :func:`existence_lock`, which a process opening the store holds until it holds
    the store open (:class:`UserLock`), so a store another process just found is never removed.
    """
    if not store.created or not store.path.is_dir() or not os.access(store.path, os.W_OK):
        return False
    try:
        with existence_lock(store):
            if other_users(store) or holds_work(store):
                return False
            store.close()
            shutil.rmtree(store.path, ignore_errors=True)
    except OSError:  # the directory went while we looked
        return False
    return True


def _stray_problems(store: SyntheticStore) -> list[StoreProblem]:
    """Entries that are not part of the store, and leftovers of processes that are gone."""
    allowed = {store.path: set(_STORE_ENTRIES), store.shared_dir: set(_SHARED_FILES),
               store.classes_dir: {f"{c:05d}" for c in range(store.header.num_classes)}}
    leftovers = _leftovers(store)
    problems = [StoreProblem(None, path.relative_to(store.path).as_posix(),
                             f"left behind by process {pid}, which has ended (swept at the next prepare)")
                for path, (pid, _) in sorted(leftovers.items()) if process_gone(pid)]
    for folder, names in allowed.items():
        for entry in _entries(folder):
            relative = entry.relative_to(store.path).as_posix()
            if entry in leftovers:
                continue
            if entry.name in names:
                if folder == store.classes_dir and not entry.is_dir():
                    problems.append(StoreProblem(None, relative, "not a directory (a class must be one)"))
            elif not (folder == store.shared_dir and _CACHE_FILE.match(entry.name)):
                problems.append(StoreProblem(None, relative, "a stray entry (not part of the store)"))
    return problems


def store_problems(store: SyntheticStore, *, checksums: bool = True, decode: bool = True) -> list[StoreProblem]:
    """Everything wrong with ``store``, one :class:`StoreProblem` each (see :meth:`SyntheticStore.problems`)."""
    from diffii_datasets.store.concepts import ConceptCache

    problems = []
    try:
        if read_header(store.path) != store.header:
            problems.append(StoreProblem(None, HEADER, "damaged (it changed since the store was opened)"))
    except (FileFormatError, OSError) as error:
        detail = error.problem if isinstance(error, FileFormatError) else str(error)
        problems.append(StoreProblem(None, HEADER, f"damaged ({detail.removeprefix('is ')})"))
    problems += store.verify(range(store.header.num_classes), checksums=checksums, decode=decode)
    problems += [StoreProblem(None, MANIFEST, f"damaged ({reason})") for reason in store.verify_manifest()]
    problems += store.shared_problems()
    problems += ConceptCache(store.path.parent).problems(store.header.concepts)
    strays = _stray_problems(store)
    reported = {problem.file for problem in strays}
    return problems + [p for p in checkpoint_problems(store) if p.file not in reported] + strays


def checkpoint_problems(store: SyntheticStore) -> list[StoreProblem]:
    """What the next concept learning in ``store`` would discard: damaged checkpoints, tensor files no checkpoint
    describes, temporary files of killed writes (``work/concepts``)."""
    from diffii_datasets.diffusion.concepts.checkpoint import checkpoint_problems as concept_checkpoint_problems

    problems = []
    prefix = f"{store.path}{os.sep}"
    for line in concept_checkpoint_problems(store.concept_work_dir):
        path, _, detail = line.removeprefix(prefix).partition(": ")
        reason = detail if detail.startswith(("a tensor file", "a temporary file")) else f"not usable ({detail})"
        problems.append(StoreProblem(None, Path(path).as_posix(), reason))
    return problems
