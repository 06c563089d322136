"""The on-disk synthetic store: its layout, and opening, reading, checking and finalising it.

Its parts: :mod:`~diffii_datasets.store_header` (what a store is for),
:mod:`~diffii_datasets.store_writer` (committing a class), :mod:`~diffii_datasets.store_records`
(what each file must hold) and :mod:`~diffii_datasets.store_upkeep` (leftovers, strays,
the whole-store check). Everything else reads and writes stores through this module.

A store is a directory per fingerprint of (base dataset content, config, model
identity, concepts)::

    <store>/
      store.json                 header: what this store is for (config, classes, identities)
      manifest.json              written last, when every class is committed (counts, checksums)
      shared/                    suffixes.json, checksums.json (its SHA-256), the captioned suffixes' caches
      work/                      scratch (concept-learning checkpoints); safe to delete
      classes/00003/             one committed class (the class *index*, never its name)
        inversions.safetensors   the DDIM inversion pool x_T of the class's real images
        real/00000.png ...       the class's real images (PNG), in the order ``source_indices`` refer to
        images/00000.png ...     synthetic images (PNG, or JPEG when configured)
        metadata.jsonl           provenance, one JSON line per image
        class.json               commit record: count and SHA-256 of every file above
      locks/                     inter-process locks (one per class, one for the shared stage)

A class is committed atomically: it is written into ``classes/.tmp-00003-<pid>``,
every file fsynced, then renamed into place, so a crash leaves the whole class or
nothing. Learned concepts live next to the stores, in ``<cache>/concepts/<key>``.
Nothing is pickled: tensors are safetensors, the rest JSON and images.

Every file is validated as it is read (:mod:`diffii_datasets.store_records`): damage
is a :class:`StoreProblem` naming the file, never a crash deep inside generation.
A complete store is read without writing anything (no lock, no folder), so it can
sit on a read-only mount; a store opened for writing first sweeps the temporaries
and trash of processes that are gone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load

from diffii_datasets._warnings import warn_at_caller
from diffii_datasets._io import (
    FileFormatError,
    atomic_write,
    json_bytes,
    read_json,
    sha256_bytes,
    sha256_file,
)
from diffii_datasets.store_header import (
    StoreFormatError,
    StoreHeader,
    StoreMismatchError,
    header_differences,
    read_header,
)
from diffii_datasets.store_records import (
    StoreDamageError,
    StoreProblem,
    check_checksums,
    check_class_record,
    check_manifest,
    check_metadata,
    check_suffixes,
    expected_manifest,
)
from diffii_datasets.store_upkeep import remove_if_unused, remove_tree, store_problems, sweep
from diffii_datasets.store_writer import ENCODINGS, ClassWriter

logger = logging.getLogger(__name__)

__all__ = ["ClassWriter", "StoreDamageError", "StoreFormatError", "StoreHeader", "StoreMismatchError", "StoreProblem",
           "SyntheticStore", "default_cache_dir"]


def default_cache_dir() -> Path:
    """Where stores live by default: ``$DIFFII_DATASETS_CACHE``, else ``$XDG_CACHE_HOME/diffii-datasets``, else
    ``~/.cache/diffii-datasets``.

    Empty variables count as unset, and so does a relative ``XDG_CACHE_HOME`` (the XDG
    base directory specification says to ignore one).
    """
    own = os.environ.get("DIFFII_DATASETS_CACHE")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "diffii-datasets"


def _damage(error: FileFormatError) -> str:
    """A reader's complaint as a :class:`StoreProblem` reason (which reads after "is")."""
    return f"damaged ({error.problem.removeprefix('is ')})"


class SyntheticStore:
    """A directory of synthetic images for one (dataset, config, model, concepts) fingerprint.

    :meth:`create` opens a store for writing (making it if needed); :meth:`open`
    opens an existing one for reading. ``header`` says what the store is for;
    ``repairs`` lists the store-wide files this process found damaged and wrote again.
    """

    def __init__(self, path: str | os.PathLike, header: StoreHeader) -> None:
        self.path = Path(path)
        self.header = header
        self.classes_dir = self.path / "classes"
        self.shared_dir = self.path / "shared"
        self.work_dir = self.path / "work"
        self.locks_dir = self.path / "locks"
        self.repairs: list[StoreProblem] = []

    @property
    def image_format(self) -> str:
        return self.header.config.image_format

    @property
    def _extension(self) -> str:
        return ENCODINGS[self.image_format][1]

    # -- creation and identity -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, header: StoreHeader) -> SyntheticStore:
        """Open the store at ``path`` for writing, creating it with ``header``; refuse a store made for another.

        A store whose ``store.json`` already holds ``header`` is opened without writing
        anything. When the existing header differs, :class:`StoreMismatchError` lists the
        differing fields; a damaged one (unreadable, or not the header the directory is
        named after) is written again, with a warning. Temporaries and trash that
        processes now gone left behind are swept.
        """
        if not isinstance(header, StoreHeader):
            raise TypeError(f"header must be a StoreHeader, got {type(header).__name__}")
        store = cls(path, header)
        if store._header_problem() is not None:
            store._make_directories()
            with FileLock(str(store.locks_dir / "header.lock")):
                problem = store._header_problem()
                if problem is not None:
                    if problem.reason != "missing":
                        store.repaired(problem, "it is written again")
                    atomic_write(store.path / "store.json", json_bytes(header.to_dict()))
        store.sweep()
        return store

    def _make_directories(self) -> None:
        try:
            for directory in (self.classes_dir, self.shared_dir, self.work_dir, self.locks_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cache_dir must be a writable directory: cannot create {self.path} ({error})") from error
        if not os.access(self.path, os.W_OK):
            raise ValueError(f"cache_dir must be a writable directory: {self.path} is not writable")

    def _header_problem(self) -> StoreProblem | None:
        """``None`` when ``store.json`` holds this store's header; a "missing" or damage problem to write it anew.

        Raises :class:`StoreMismatchError` for a valid header of another setup, and
        :class:`StoreDamageError` for a damaged one that cannot be told apart from another
        setup's (the directory is not named after the header, so its name cannot say).
        """
        header_path = self.path / "store.json"
        if not header_path.exists():
            return StoreProblem(None, "store.json", "missing")
        named = self.path.name == self.header.key()
        try:
            existing = StoreHeader.from_dict(read_json(header_path), header_path)
        except (FileFormatError, OSError) as error:
            problem = StoreProblem(None, "store.json", _damage(error) if isinstance(error, FileFormatError)
                                   else f"unreadable ({error})")
            if named:
                return problem
            raise StoreDamageError(self.path, problem) from None
        differences = "; ".join(header_differences(existing.to_dict(), self.header.to_dict()))
        if differences and not named:
            raise StoreMismatchError(f"the store at {self.path} was made for a different setup; differing fields: "
                                     f"{differences}. Use another cache_dir or delete that store to start over.")
        if differences:  # the directory is named after the wanted header: what it holds was damaged or edited
            return StoreProblem(None, "store.json", f"damaged (it differs from the header the store is named "
                                                    f"after: {differences})")
        if header_path.read_bytes() != json_bytes(self.header.to_dict()):
            return StoreProblem(None, "store.json", "damaged (not in the form diffii-datasets writes)")
        return None

    @classmethod
    def open(cls, path: str | os.PathLike) -> SyntheticStore:
        """The existing store at ``path``, for reading (nothing is written).

        :class:`StoreFormatError` when it is not a store this version reads,
        :class:`StoreDamageError` (naming ``store.json``) when its header is damaged.
        """
        path = Path(path)
        if not (path / "store.json").is_file():
            raise StoreFormatError(f"{path} is not a diffii-datasets store (it has no store.json)")
        try:
            header = read_header(path)
        except FileFormatError as error:
            raise StoreDamageError(path, StoreProblem(None, "store.json", _damage(error)), error.problem) from None
        return cls(path, header)

    def repaired(self, problem: StoreProblem, action: str) -> None:
        """Record a store-wide ``problem`` in :attr:`repairs` and warn, saying the ``action`` taken."""
        self.repairs.append(problem)
        warn_at_caller(f"store {self.path}: {problem}; {action}", RuntimeWarning)

    # -- locks -----------------------------------------------------------------------------

    def lock(self, name: str) -> FileLock:
        """An inter-process lock; ``name`` is ``"shared"`` or ``"class-00003"``-style."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.locks_dir / f"{name}.lock"))

    def class_lock(self, class_index: int) -> FileLock:
        return self.lock(f"class-{class_index:05d}")

    # -- classes ---------------------------------------------------------------------------

    def class_dir(self, class_index: int) -> Path:
        return self.classes_dir / f"{class_index:05d}"

    def is_committed(self, class_index: int) -> bool:
        return (self.class_dir(class_index) / "class.json").is_file()

    def writer(self, class_index: int) -> ClassWriter:
        """A writer for an uncommitted class (hold :meth:`class_lock` while using it)."""
        return ClassWriter(self, class_index)

    @contextmanager
    def writing(self, class_index: int) -> Iterator[ClassWriter]:
        """Context manager: commit on success, leave nothing behind on error (a full disk while committing too)."""
        writer = self.writer(class_index)
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def discard(self, class_index: int) -> None:
        """Remove a committed class (for regeneration); hold its lock."""
        final = self.class_dir(class_index)
        if final.exists() or final.is_symlink():
            trash = self.classes_dir / f".trash-{class_index:05d}-{os.getpid()}"
            os.rename(final, trash)
            remove_tree(trash)
        (self.path / "manifest.json").unlink(missing_ok=True)

    def remove_stale_temporaries(self, class_index: int) -> None:
        """Delete half-written directories a crashed run left for this class; hold its lock."""
        for pattern in (f".tmp-{class_index:05d}-*", f".trash-{class_index:05d}-*"):
            for stale in self.classes_dir.glob(pattern):
                remove_tree(stale)

    def _problem(self, class_index: int, file: str, reason: str) -> StoreDamageError:
        return StoreDamageError(self.path, StoreProblem(class_index, file, reason))

    def class_record(self, class_index: int) -> dict[str, Any]:
        """The commit record of a committed class, checked against the header; :class:`StoreDamageError` if damaged."""
        path = self.class_dir(class_index) / "class.json"
        try:
            record = read_json(path, expect=None)
        except FileNotFoundError:
            raise FileNotFoundError(f"class {class_index} is not committed in {self.path}") from None
        except FileFormatError as error:
            raise self._problem(class_index, "class.json", _damage(error)) from None
        problems = check_class_record(record, class_index, self.header.real_counts[class_index], self._extension)
        if problems:
            raise self._problem(class_index, "class.json", f"damaged ({'; '.join(problems)})")
        if path.read_bytes() != json_bytes(record):
            raise self._problem(class_index, "class.json", "damaged (not in the form diffii-datasets writes)")
        return record

    def _checked_bytes(self, class_index: int, record: Mapping[str, Any], relative: str) -> bytes:
        """A file of a committed class, whose SHA-256 must be the one its record gives."""
        try:
            data = (self.class_dir(class_index) / relative).read_bytes()
        except FileNotFoundError:
            raise self._problem(class_index, relative, "missing") from None
        if sha256_bytes(data) != record["files"][relative]:
            raise self._problem(class_index, relative, "checksum mismatch")
        return data

    def records(self, class_index: int) -> list[dict[str, Any]]:
        """Provenance records of a committed class, in generation order (checked against its commit record)."""
        record = self.class_record(class_index)
        data = self._checked_bytes(class_index, record, "metadata.jsonl")
        lines, problems = check_metadata(data, record, class_index, self.header.real_counts[class_index],
                                         self._extension)
        if problems:
            raise self._problem(class_index, "metadata.jsonl", f"damaged ({problems[0]})")
        return lines

    def real_images(self, class_index: int) -> list[Path]:
        """Paths of the committed class's real images, in class order (none for an uncommitted class)."""
        if not self.is_committed(class_index):
            return []
        return [self.class_dir(class_index) / f"real/{i:05d}.png" for i in range(self.header.real_counts[class_index])]

    def read_inversions(self, class_index: int) -> torch.Tensor:
        """The class's inversion pool ``[real images, C, h, w]``, checked; :class:`StoreDamageError` if damaged."""
        record = self.class_record(class_index)
        data = self._checked_bytes(class_index, record, "inversions.safetensors")
        try:
            tensors = load(data)
        except (SafetensorError, ValueError, OSError) as error:
            raise self._problem(class_index, "inversions.safetensors", f"unreadable ({error})") from None
        inversions = tensors.get("inversions")
        if (set(tensors) != {"inversions"} or inversions.dtype != torch.float32 or inversions.ndim != 4
                or inversions.shape[0] != self.header.real_counts[class_index]):
            expected = f"one float32 tensor 'inversions' [{self.header.real_counts[class_index]}, C, h, w]"
            raise self._problem(class_index, "inversions.safetensors", f"damaged (expected {expected})")
        return inversions

    def image_path(self, class_index: int, relative: str) -> Path:
        return self.class_dir(class_index) / relative

    def verify(self, class_indices: Sequence[int], *, checksums: bool = True) -> list[StoreProblem]:
        """What is wrong with the given committed classes; uncommitted classes are skipped.

        Checks the commit record against the header, every file it lists (present, and with
        ``checksums`` its SHA-256), the provenance lines against the record, and reports any
        file of the class directory the record does not list. With ``checksums=False`` only
        the record and the presence of the files are checked.
        """
        problems = []
        for class_index in class_indices:
            if self.is_committed(class_index):
                problems += self._class_problems(class_index, checksums)
        return problems

    def _class_problems(self, class_index: int, checksums: bool) -> list[StoreProblem]:
        try:
            record = self.class_record(class_index)
        except StoreDamageError as error:
            return [error.store_problem]
        problems = []
        for relative, expected in record["files"].items():
            path = self.class_dir(class_index) / relative
            if not path.is_file():
                problems.append(StoreProblem(class_index, relative, "missing"))
            elif checksums and sha256_file(path) != expected:
                problems.append(StoreProblem(class_index, relative, "checksum mismatch"))
        if checksums and not problems:
            try:
                self.records(class_index)
            except StoreDamageError as error:
                problems.append(error.store_problem)
        listed = set(record["files"]) | {"class.json"}
        directory = self.class_dir(class_index)
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory).as_posix()
            if relative not in listed and not (path.is_dir() and relative in ("images", "real")):
                problems.append(StoreProblem(class_index, relative, "a stray file (class.json does not list it)"))
        return problems

    def problems(self, *, checksums: bool = True) -> list[StoreProblem]:
        """Everything wrong with the store, one :class:`StoreProblem` each (what ``diffii-datasets verify`` prints).

        The header against the store's name, every committed class (:meth:`verify`), the
        manifest against the header and the commit records, the shared files against their
        checksum, the learned concepts the header names (when they sit in the cache next to
        the store), stray entries, and leftovers of processes that are gone. Uncommitted
        classes and a missing manifest are not problems: the store is just incomplete.
        """
        return store_problems(self, checksums=checksums)

    def sweep(self) -> list[Path]:
        """Delete the temporaries and trash that processes now gone left; returns what was deleted."""
        return sweep(self)

    def remove_if_unused(self) -> bool:
        """Delete the store when nothing but its header was ever written (a run that failed before any work)."""
        return remove_if_unused(self)

    # -- the manifest ----------------------------------------------------------------------

    def _record_summaries(self) -> dict[int, tuple[int | None, str] | None]:
        """Per class: ``(count, SHA-256 of class.json)``, count ``None`` for a damaged record; ``None`` uncommitted."""
        summaries: dict[int, tuple[int | None, str] | None] = {}
        for class_index in range(self.header.num_classes):
            path = self.class_dir(class_index) / "class.json"
            if not path.is_file():
                summaries[class_index] = None
                continue
            try:
                count = self.class_record(class_index)["count"]
            except StoreDamageError:
                count = None
            summaries[class_index] = (count, sha256_file(path))
        return summaries

    def _manifest_problems(self) -> list[str]:
        """What is wrong with ``manifest.json`` (empty when it is absent or right), as sentences."""
        try:
            manifest = read_json(self.path / "manifest.json", expect=None, missing_ok=True, canonical=True)
        except FileFormatError as error:
            return [error.problem.removeprefix("is ")]
        if manifest is None and not (self.path / "manifest.json").exists():
            return []
        return check_manifest(manifest, self.header.to_dict(), self._record_summaries())

    def manifest(self) -> dict[str, Any] | None:
        """The manifest written by :meth:`finalize`, checked; ``None`` while the store is incomplete.

        :class:`StoreDamageError` (naming ``manifest.json``) when it disagrees with the header
        or with the commit records of the classes.
        """
        problems = self._manifest_problems()
        if problems:
            raise StoreDamageError(self.path, StoreProblem(None, "manifest.json", f"damaged ({problems[0]})"))
        return read_json(self.path / "manifest.json", missing_ok=True)

    def verify_manifest(self) -> list[str]:
        """Where ``manifest.json`` disagrees with ``store.json`` or with the committed classes' records."""
        return self._manifest_problems()

    def finalize(self, class_indices: Sequence[int], versions: Mapping[str, str]) -> dict[str, Any]:
        """Write the manifest once every class in ``class_indices`` is committed (idempotent, deterministic).

        ``versions`` records the library versions that produced the store; the manifest
        holds no timestamps, so equal stores have byte-equal manifests. A manifest that is
        already right is kept as it is (whichever versions wrote it); a damaged one is
        written again, with a warning.
        """
        missing = [c for c in class_indices if not self.is_committed(c)]
        if missing:
            raise RuntimeError(f"cannot finalize {self.path}: classes not committed yet: {missing}")
        problems = self._manifest_problems()
        if (self.path / "manifest.json").exists() and not problems:
            return read_json(self.path / "manifest.json")
        for reason in problems:
            self.repaired(StoreProblem(None, "manifest.json", f"damaged ({reason})"), "it is written again")
        records = {c: (self.class_record(c)["count"], sha256_file(self.class_dir(c) / "class.json"))
                   for c in class_indices}
        manifest = expected_manifest(self.header.to_dict(), records, versions)
        atomic_write(self.path / "manifest.json", json_bytes(manifest))
        return manifest

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # -- shared artifacts ------------------------------------------------------------------

    def read_suffixes(self) -> list[str] | None:
        """The suffixes the shared stage saved, checked against ``shared/checksums.json``.

        ``None`` when there are none yet, or none under a checksum (a store of an earlier
        version); :class:`StoreDamageError` naming the file when either file is damaged.
        """
        problems = self.shared_problems()
        if problems:
            raise StoreDamageError(self.path, problems[0])
        if not (self.shared_dir / "checksums.json").exists():
            return None
        return read_json(self.shared_dir / "suffixes.json", expect=list)

    def write_suffixes(self, suffixes: Sequence[str]) -> None:
        """Save the shared stage's suffixes, then their checksum (hold the ``"shared"`` lock)."""
        data = json_bytes(list(suffixes))
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.shared_dir / "suffixes.json", data)
        atomic_write(self.shared_dir / "checksums.json", json_bytes({"suffixes.json": sha256_bytes(data)}))

    def shared_problems(self) -> list[StoreProblem]:
        checksums_path, suffixes_path = self.shared_dir / "checksums.json", self.shared_dir / "suffixes.json"
        try:
            checksums = read_json(checksums_path, expect=None, missing_ok=True, canonical=True)
        except FileFormatError as error:
            return [StoreProblem(None, "shared/checksums.json", _damage(error))]
        if checksums is None and not checksums_path.exists():
            return []  # nothing saved yet, or a store of an earlier version (suffixes derived again when needed)
        reasons = check_checksums(checksums, ["suffixes.json"])
        if reasons:
            return [StoreProblem(None, "shared/checksums.json", f"damaged ({'; '.join(reasons)})")]
        if not suffixes_path.is_file():
            return [StoreProblem(None, "shared/suffixes.json", "missing")]
        if sha256_file(suffixes_path) != checksums["suffixes.json"]:
            return [StoreProblem(None, "shared/suffixes.json", "checksum mismatch")]
        try:
            reasons = check_suffixes(read_json(suffixes_path, expect=None, canonical=True))
        except FileFormatError as error:
            reasons = [error.problem.removeprefix("is ")]
        return [StoreProblem(None, "shared/suffixes.json", f"damaged ({reasons[0]})")] if reasons else []

    def learned_concepts_dir(self) -> Path | None:
        """Where the cache keeps the learned concepts the header names (``<cache>/concepts/<key>``), if any."""
        kind, _, key = self.header.concepts.partition(":")
        return self.path.parent / "concepts" / key if kind == "learned" and key else None
