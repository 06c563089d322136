"""The concept cache: learned concept sets shared by every store of a cache, with their lock and their origin.

Concepts depend on the data, the model, the metaclass and the concept recipe only
(not on generation knobs), so stores of several generation settings or of several
methods share one set, learned once: ``<cache>/concepts/<key>/`` holds a saved
:class:`~diffii_datasets.diffusion.ConceptSet` and ``learned-from.json`` (what it was
learned from), and ``<cache>/locks/concepts-<key>.lock`` makes one process learn it
while others wait. A set is moved into place whole (saved into a temporary folder
first), so an interrupted save or a full disk never leaves a set that looks
complete; a damaged set is moved aside and learned again, with a warning.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from diffii_datasets._io import FileFormatError, fsync_dir, process_gone, read_json, temp_owner, write_json
from diffii_datasets.store.checks import StoreProblem
from diffii_datasets.store.layout import CONCEPTS_DIR, LOCKS_DIR
from diffii_datasets.store.upkeep import remove_tree

if TYPE_CHECKING:
    from diffii_datasets.diffusion.concepts import ConceptSet
    from diffii_datasets.store.store import SyntheticStore

__all__ = ["LEARNED_FROM", "ConceptCache", "learned_identity"]

logger = logging.getLogger(__name__)

LEARNED_FROM = "learned-from.json"
"""Beside a cached set's ``concepts.json``: the data, model and metaclass it was learned from (the recipe is in
``concepts.json``)."""
_MANIFEST = "concepts.json"  # ConceptSet.save's: its presence marks a complete set
_ORIGIN_FIELDS = ("dataset", "model", "metaclass")  # what learned-from.json records
_LEARNED = "learned:"


def learned_identity(key: str) -> str:
    """How a store header names concepts learned into the cache under ``key``."""
    return _LEARNED + key


class ConceptCache:
    """The learned concept sets of the cache at ``cache_dir``."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.root = Path(cache_dir) / CONCEPTS_DIR
        self._locks = Path(cache_dir) / LOCKS_DIR

    def directory(self, key: str) -> Path:
        return self.root / key

    def directory_of(self, identity: str) -> Path | None:
        """The directory of the set a store header names (``learned:<key>``); ``None`` for given concepts."""
        return self.directory(identity[len(_LEARNED):]) if identity.startswith(_LEARNED) else None

    def lock(self, key: str) -> FileLock:
        """The lock of key ``key`` (beside ``concepts/``, so a glob over it sees concept sets only)."""
        self._locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self._locks / f"concepts-{key}.lock"))

    def is_learned(self, key: str) -> bool:
        return (self.directory(key) / _MANIFEST).is_file()

    def load(self, key: str) -> ConceptSet:
        from diffii_datasets.diffusion.concepts import ConceptSet

        return ConceptSet.load(self.directory(key))

    def _unusable(self, directory: Path) -> str | None:
        """Why the set in ``directory`` cannot be used, or ``None`` when it loads intact."""
        from diffii_datasets.diffusion.concepts import ConceptSet

        try:
            ConceptSet.load(directory)
        except (ValueError, OSError) as error:
            return str(error)
        return None

    def discard_if_damaged(self, key: str, store: SyntheticStore) -> None:
        """Move a set that does not load intact aside (hold :meth:`lock`), with a warning on ``store``.

        A symbolic link in the cache is removed as a link: what it points at is not touched.
        """
        directory = self.directory(key)
        if not (directory.exists() or directory.is_symlink()):
            return
        reason = self._unusable(directory)
        if reason is None:
            return
        store.repaired(StoreProblem(None, str(directory), f"not a usable concept set ({reason})"),
                       "the concepts will be learned again")
        if directory.is_symlink():
            directory.unlink()
            return
        trash = directory.with_name(f".trash-{key}-{os.getpid()}")
        os.rename(directory, trash)
        remove_tree(trash)

    def save(self, key: str, concepts: ConceptSet, origin: Mapping[str, Any], store: SyntheticStore) -> ConceptSet:
        """Save freshly learned ``concepts`` under ``key`` with their ``origin`` (hold :meth:`lock`).

        The set is written into ``concepts/.tmp-<key>-<pid>/`` and renamed into place once
        every file (``learned-from.json`` included) is there. A full disk is an ``OSError``
        naming the file, the store and the space to free; nothing half-written stays behind
        (after an interrupt either: and a kill's leftovers are swept by :meth:`sweep`).
        """
        temp = self.root / f".tmp-{key}-{os.getpid()}"
        remove_tree(temp)
        try:
            concepts.save(temp)
            write_json(temp / LEARNED_FROM, dict(origin))
            fsync_dir(temp)
            os.rename(temp, self.directory(key))
            fsync_dir(self.root)
        except OSError as error:
            remove_tree(temp)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(error, temp, self.directory(key), store, concepts) from error
            raise
        except BaseException:
            remove_tree(temp)
            raise
        return concepts

    def origin_problem(self, key: str, origin: Mapping[str, Any] | None = None) -> str | None:
        """What is wrong with ``learned-from.json`` of the set ``key`` (``None``: nothing), as a reason.

        It must be the object this package writes, naming the dataset, model and metaclass
        the concepts were learned from; with ``origin`` (a job's), those very ones.
        """
        path = self.directory(key) / LEARNED_FROM
        try:
            recorded = read_json(path, missing_ok=True, canonical=True)
        except FileFormatError as error:
            return f"damaged ({error.problem.removeprefix('is ')})"
        if recorded is None:
            return "missing (where the concepts were learned from is no longer recorded)"
        if set(recorded) != set(_ORIGIN_FIELDS) or not all(isinstance(v, str) for v in recorded.values()):
            return f"damaged (it must name the {', '.join(_ORIGIN_FIELDS)} the concepts were learned from)"
        if origin is not None and recorded != dict(origin):
            changed = ", ".join(field for field in _ORIGIN_FIELDS if recorded[field] != origin.get(field))
            return f"damaged (its {changed} differ from those the concepts' key was made from)"
        return None

    def restore_origin(self, key: str, origin: Mapping[str, Any], store: SyntheticStore) -> None:
        """Write ``learned-from.json`` of the intact set ``key`` again from ``origin`` (a job's) when it is missing
        or wrong (hold :meth:`lock`): the concepts themselves are kept, not learned again."""
        reason = self.origin_problem(key, origin)
        if reason is not None:
            path = self.directory(key) / LEARNED_FROM
            store.repaired(StoreProblem(None, str(path), reason), "it is written again from the job")
            write_json(path, dict(origin))

    def leftovers(self, key: str) -> list[tuple[Path, int]]:
        """``(path, owner pid)`` of what processes now gone left of set ``key``: a temporary save or a trash."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            owner = temp_owner(entry.name)
            if entry.name.startswith(".") and key in entry.name and owner is not None and process_gone(owner):
                found.append((entry, owner))
        return found

    def sweep(self, key: str) -> None:
        """Delete :meth:`leftovers` of set ``key`` (hold :meth:`lock`)."""
        for path, _ in self.leftovers(key):
            remove_tree(path)
            logger.info("removed %s, left by a process that has ended", path)

    def problems(self, identity: str, origin: Mapping[str, Any] | None = None) -> list[StoreProblem]:
        """What is wrong with the set a store header names (nothing when it is not in this cache), and what
        processes now gone left of it; with ``origin`` (a job's) ``learned-from.json`` must record it."""
        directory = self.directory_of(identity)
        if directory is None:
            return []
        key = directory.name
        problems = [StoreProblem(None, str(path), f"left behind by process {owner}, which has ended (swept at the "
                                                  "next prepare)") for path, owner in self.leftovers(key)]
        if not (directory.exists() or directory.is_symlink()):
            return problems
        reason = self._unusable(directory)
        if reason is not None:
            return [StoreProblem(None, str(directory), f"not a usable concept set ({reason})"), *problems]
        reason = self.origin_problem(key, origin)
        if reason is not None:
            problems.insert(0, StoreProblem(None, str(directory / LEARNED_FROM), reason))
        return problems

    def learned_sets(self) -> list[tuple[Path, dict[str, Any], dict[str, Any] | None]]:
        """Every intact-looking set: ``(directory, its concepts.json, its learned-from.json or None)``."""
        found = []
        for manifest_path in sorted(self.root.glob(f"*/{_MANIFEST}")):
            try:
                manifest = read_json(manifest_path)
                origin = read_json(manifest_path.parent / LEARNED_FROM, missing_ok=True)
            except FileFormatError:
                continue
            found.append((manifest_path.parent, manifest, origin))
        return found


def _disk_full(error: OSError, temp: Path, final: Path, store: SyntheticStore, concepts: ConceptSet) -> OSError:
    """The full-disk error of a save: the file (as it is named in the cache), the store, the space to free."""
    written = Path(error.filename) if error.filename else temp
    try:  # written inside the temporary folder (or ConceptSet.save's staging beside it): name the cache's file
        file = final.joinpath(*written.relative_to(temp.parent).parts[1:])
    except ValueError:
        file = written
    size = sum(t.numel() * t.element_size() for t in (concepts.embeddings, *concepts.lora_state_dict.values()))
    free = shutil.disk_usage(temp.parent).free if temp.parent.exists() else 0
    message = (f"no space left on the device while saving the learned concepts of the store {store.path}: "
               f"writing {file} failed. They need about {size / 1e6:.1f} MB and {free / 1e6:.1f} MB are free "
               f"under {final.parent}. Free some space (old stores in {store.path.parent} can go), then run the same "
               "command again: learning resumes from its last checkpoint")
    return OSError(error.errno, message, str(file))
