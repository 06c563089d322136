"""``SyntheticStore``: one directory of synthetic images, opened for writing or for reading.

The layout is :mod:`~diffii_datasets.store.layout`; the parts of a store are read and
checked by :mod:`~.header` (what the store is for), :mod:`~.record` and :mod:`~.checks`
(what each file must hold), :mod:`~.verify` (a committed class whole),
:mod:`~.writer` (committing a class), :mod:`~.manifest`,
:mod:`~.shared` (the suffixes) and :mod:`~.upkeep` (leftovers, strays, the whole-store
check). Nothing outside this package reads or writes a store's files.

A class is committed atomically: it is written into ``classes/.tmp-00003-<pid>``,
every file fsynced, then renamed into place, so a crash leaves the whole class or
nothing. Every file is validated as it is read: damage is a :class:`StoreProblem`
naming the file, never a crash deep inside generation. A complete store is read
without writing anything (no lock, no folder), so it can sit on a read-only mount; a
store opened for writing first sweeps the temporaries and trash of processes that are
gone. A process removes a store only when it made it itself, nobody else has it open,
and nothing was written into it (a run that failed before any work).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from PIL import Image, UnidentifiedImageError

from diffii_datasets._io import FileFormatError, atomic_write, json_bytes, read_json, sha256_bytes, sha256_file
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.store import manifest as _manifest
from diffii_datasets.store import shared as _shared
from diffii_datasets.store.cache import utf8_path
from diffii_datasets.store.checks import StoreDamageError, StoreProblem, check_class_record, check_metadata, \
    damage_reason
from diffii_datasets.store.header import StoreFormatError, StoreHeader, read_header, stored_header_problem
from diffii_datasets.store.layout import (
    CLASS_RECORD,
    CLASSES_DIR,
    HEADER,
    INVERSIONS,
    LOCKS_DIR,
    MANIFEST,
    METADATA,
    SHARED_DIR,
    WORK_DIR,
    class_dir_name,
    real_file,
)
from diffii_datasets.store.record import SyntheticRecord
from diffii_datasets.store.upkeep import UserLock, checkpoint_problems, existence_lock, holds_work, \
    remove_if_unused, remove_tree, store_problems, sweep
from diffii_datasets.store.verify import PIL_FORMATS, class_problems
from diffii_datasets.store.writer import ENCODINGS, ClassWriter

if TYPE_CHECKING:
    import torch

    from diffii_datasets.methods import Method

logger = logging.getLogger(__name__)

__all__ = ["SyntheticStore"]


class SyntheticStore:
    """A directory of synthetic images for one (method, config, dataset, model, concepts) fingerprint.

    :meth:`create` opens a store for writing (making it if needed); :meth:`open`
    opens an existing one for reading. ``header`` says what the store is for;
    ``repairs`` lists the store-wide files this process found damaged and wrote again.
    """

    def __init__(self, path: str | os.PathLike, header: StoreHeader) -> None:
        self.path = Path(path)
        self.header = header
        self.classes_dir = self.path / CLASSES_DIR
        self.shared_dir = self.path / SHARED_DIR
        self.work_dir = self.path / WORK_DIR
        self.locks_dir = self.path / LOCKS_DIR
        self.repairs: list[StoreProblem] = []
        self.created = False  # this process wrote the header of a store that did not exist
        self._user: UserLock | None = None
        self._checked_files: set[str] = set()  # image files whose checksum process _checker has checked
        self._checker = os.getpid()
        self._class_files: dict[int, dict[str, str]] = {}  # the committed checksums, by class, once read

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_user"] = None  # a copy (a DataLoader worker) reads; it does not hold the store open
        state["_checked_files"] = set()  # and checks the files it reads itself
        return state

    @property
    def method(self) -> Method:
        """The method that fills this store (:func:`diffii_datasets.methods.get_method`)."""
        return self._method

    @cached_property
    def _method(self) -> Method:
        from diffii_datasets.methods import get_method

        return get_method(self.header.method)

    @property
    def image_format(self) -> str:
        return self.header.config.image_format

    @property
    def _extension(self) -> str:
        return ENCODINGS[self.image_format][1]

    @property
    def concept_work_dir(self) -> Path:
        """Where concept learning for this store keeps its checkpoints."""
        return self.work_dir / "concepts"

    # -- creation and identity -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, header: StoreHeader) -> SyntheticStore:
        """Open the store at ``path`` for writing, creating it with ``header``; refuse a store made for another.

        A complete store whose ``store.json`` already holds ``header`` is opened without
        writing anything. When the existing header differs, :class:`StoreMismatchError` lists the
        differing fields; a damaged one (unreadable, or not the header the directory is
        named after) is written again, with a warning. Temporaries and trash that
        processes now gone left behind are swept. An incomplete store stays open for this
        process (other processes see it in use, so the process that made it never removes
        it) until :meth:`close`.
        """
        if not isinstance(header, StoreHeader):
            raise TypeError(f"header must be a StoreHeader, got {type(header).__name__}")
        if header.written is not None:
            raise StoreFormatError(f"{path}: a store of format {header.format} is read, never written to")
        store = cls(utf8_path(path, "the store's path"), header)
        if stored_header_problem(store.path, header) is None and (store.path / MANIFEST).is_file():
            store.sweep()  # complete: nothing is written (a read-only mount), and nobody removes a complete store
            return store
        store._make_directories()
        with existence_lock(store):  # a process that made the store and failed may be removing it right now
            store._make_directories()
            problem = stored_header_problem(store.path, header)
            if problem is not None:
                if problem.reason == "missing" and holds_work(store):  # deleted from a store with work in it
                    problem = StoreProblem(None, HEADER, "missing (the store holds work)")
                if problem.reason != "missing":
                    store.repaired(problem, "it is written again")
                atomic_write(store.path / HEADER, json_bytes(header.to_dict()))
                store.created = problem.reason == "missing"
            store._user = UserLock.hold(store)
        store.sweep()
        return store

    def close(self) -> None:
        """Stop holding the store open for writing (others may then remove it, when it is unused)."""
        if self._user is not None:
            self._user.release()
            self._user = None

    def _make_directories(self) -> None:
        try:
            for directory in (self.classes_dir, self.shared_dir, self.work_dir, self.locks_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cache_dir must be a writable directory: cannot create {self.path} ({error})") from error
        if not os.access(self.path, os.W_OK):
            raise ValueError(f"cache_dir must be a writable directory: {self.path} is not writable")

    def check_header(self) -> None:
        """Raise :class:`StoreDamageError` unless ``store.json`` still holds this store's header."""
        problem = stored_header_problem(self.path, self.header)
        if problem is not None:
            raise StoreDamageError(self.path, problem)

    @classmethod
    def open(cls, path: str | os.PathLike) -> SyntheticStore:
        """The existing store at ``path``, for reading (nothing is written).

        :class:`StoreFormatError` when it is not a store this version reads,
        :class:`StoreDamageError` (naming ``store.json``) when its header is damaged.
        """
        path = utf8_path(path, "the store's path")
        if not (path / HEADER).is_file():
            raise StoreFormatError(f"{path} is not a diffii-datasets store (it has no {HEADER})")
        try:
            header = read_header(path)
        except FileFormatError as error:
            raise StoreDamageError(path, StoreProblem(None, HEADER, damage_reason(error)), error.problem) from None
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
        return self.lock(f"class-{class_dir_name(class_index)}")

    # -- classes ---------------------------------------------------------------------------

    def class_dir(self, class_index: int) -> Path:
        return self.classes_dir / class_dir_name(class_index)

    def is_committed(self, class_index: int) -> bool:
        return (self.class_dir(class_index) / CLASS_RECORD).is_file()

    def writer(self, class_index: int) -> ClassWriter:
        """A writer for an uncommitted class (hold :meth:`class_lock` while using it)."""
        return ClassWriter(self, class_index, self.method.record_fields)

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
            trash = self.classes_dir / f".trash-{class_dir_name(class_index)}-{os.getpid()}"
            os.rename(final, trash)
            remove_tree(trash)
        (self.path / MANIFEST).unlink(missing_ok=True)

    def remove_stale_temporaries(self, class_index: int) -> None:
        """Delete half-written directories a crashed run left for this class; hold its lock."""
        for pattern in (f".tmp-{class_dir_name(class_index)}-*", f".trash-{class_dir_name(class_index)}-*"):
            for stale in self.classes_dir.glob(pattern):
                remove_tree(stale)

    def _problem(self, class_index: int, file: str, reason: str) -> StoreDamageError:
        return StoreDamageError(self.path, StoreProblem(class_index, file, reason))

    def class_record(self, class_index: int) -> dict[str, Any]:
        """The commit record of a committed class, checked against the header; :class:`StoreDamageError` if damaged."""
        path = self.class_dir(class_index) / CLASS_RECORD
        try:
            record = read_json(path, expect=None)
        except FileNotFoundError:
            raise FileNotFoundError(f"class {class_index} is not committed in {self.path}") from None
        except FileFormatError as error:
            raise self._problem(class_index, CLASS_RECORD, damage_reason(error)) from None
        problems = check_class_record(record, class_index, self.header.real_counts[class_index], self._extension,
                                      self.method.inversion)
        if problems:
            raise self._problem(class_index, CLASS_RECORD, f"damaged ({'; '.join(problems)})")
        if path.read_bytes() != json_bytes(record):
            raise self._problem(class_index, CLASS_RECORD, "damaged (not in the form diffii-datasets writes)")
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

    def records(self, class_index: int) -> list[SyntheticRecord]:
        """Provenance records of a committed class, in generation order (checked against its commit record)."""
        record = self.class_record(class_index)
        data = self._checked_bytes(class_index, record, METADATA)
        lines, problems = check_metadata(data, record, class_index, self.header.real_counts[class_index],
                                         self.header.num_classes, self._extension)
        if problems:
            raise self._problem(class_index, METADATA, f"damaged ({problems[0]})")
        return lines

    def real_images(self, class_index: int) -> list[Path]:
        """Paths of the committed class's real images, in class order (none for an uncommitted class)."""
        if not self.is_committed(class_index):
            return []
        return [self.class_dir(class_index) / real_file(i) for i in range(self.header.real_counts[class_index])]

    def read_inversions(self, class_index: int) -> torch.Tensor:
        """The class's inversion pool ``[real images, C, h, w]``, checked; :class:`StoreDamageError` if damaged."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load

        record = self.class_record(class_index)
        if INVERSIONS not in record["files"]:
            raise self._problem(class_index, INVERSIONS, f"missing (method {self.header.method} keeps no "
                                                         "inversion pool)")
        data = self._checked_bytes(class_index, record, INVERSIONS)
        try:
            tensors = load(data)
        except (SafetensorError, ValueError, OSError) as error:
            raise self._problem(class_index, INVERSIONS, f"unreadable ({error})") from None
        inversions = tensors.get("inversions")
        if (set(tensors) != {"inversions"} or inversions.dtype != torch.float32 or inversions.ndim != 4
                or inversions.shape[0] != self.header.real_counts[class_index]):
            expected = f"one float32 tensor 'inversions' [{self.header.real_counts[class_index]}, C, h, w]"
            raise self._problem(class_index, INVERSIONS, f"damaged (expected {expected})")
        return inversions

    def image_path(self, class_index: int, relative: str) -> Path:
        """The path of a file of a committed class (``record.file``, or a real image's)."""
        return self.class_dir(class_index) / relative

    def read_file(self, path: str | os.PathLike) -> bytes:
        """The bytes of an image file of a committed class, checked against its commit record the first time
        this process reads it (cheap next to decoding it; a DataLoader worker checks the files it reads too).

        A file whose bytes are not the ones committed (a flipped byte that would still
        decode), or that cannot be read, is a :class:`StoreDamageError` naming the file; the
        next ``prepare()`` with the same inputs regenerates its class.
        """
        key = os.fspath(path)
        try:
            with open(key, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise self._file_problem(Path(key), f"unreadable ({error.strerror or error})") from None
        if key not in self._checked_files or self._checker != os.getpid():
            if self._checker != os.getpid():  # a forked process (a DataLoader worker) checks what it reads itself
                self._checked_files, self._checker = set(), os.getpid()
            self._check_file(Path(key), data)
            self._checked_files.add(key)
        return data

    def _check_file(self, path: Path, data: bytes) -> None:
        try:
            expected = self._file_checksums(int(path.parent.parent.name)).get(f"{path.parent.name}/{path.name}")
        except (ValueError, FileNotFoundError):
            expected = None
        if expected is None or path.parent.parent.parent != self.classes_dir:
            raise self._file_problem(path, "not a file of a committed class of this store")
        if sha256_bytes(data) != expected:
            raise self._file_problem(path, "checksum mismatch")

    def load_image(self, path: str | os.PathLike) -> Image.Image:
        """An image file of this store as an RGB PIL image (:meth:`read_file`, then decoded); errors name the file.

        A file that fails to decode though its checksum matches was committed that way or edited
        together with its checksums: the error says so (``verify`` decodes every image).
        """
        data = self.read_file(path)
        try:
            image = Image.open(io.BytesIO(data), formats=PIL_FORMATS.get(os.fspath(path)[-4:]))
            image.load()
        except (OSError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as error:
            raise self._file_problem(Path(path), f"not a readable image ({error}), though its checksum matches "
                                                 "its class.json (edited together with its checksums?)",
                                     "delete the class's directory and prepare() with the same inputs generates "
                                     "it again") from None
        return image if image.mode == "RGB" else image.convert("RGB")

    def _file_checksums(self, class_index: int) -> dict[str, str]:
        if class_index not in self._class_files:
            self._class_files[class_index] = self.class_record(class_index)["files"]
        return self._class_files[class_index]

    def _file_problem(self, path: Path, reason: str,
                      action: str = "prepare() with the same inputs regenerates the class") -> StoreDamageError:
        try:
            class_index = int(path.parent.parent.name)
            relative = f"{path.parent.name}/{path.name}"
        except ValueError:
            return StoreDamageError(self.path, StoreProblem(None, str(path), reason))
        return self._problem(class_index, relative, f"{reason}; {action}")

    def verify(self, class_indices: Sequence[int], *, checksums: bool = True, decode: bool = False
               ) -> list[StoreProblem]:
        """What is wrong with the given committed classes; uncommitted classes are skipped.

        Checks the commit record against the header, every file it lists (present, and with
        ``checksums`` its SHA-256 and, for an image, that it is whole: the format's start and
        end, a header PIL reads), the provenance lines against the record, and reports any
        file of the class directory the record does not list. With ``decode`` every image
        is decoded too (what a read would fail on, even in a file edited together with its
        checksums). With ``checksums=False`` only the record and the presence of the files
        are checked.
        """
        return [problem for class_index in class_indices if self.is_committed(class_index)
                for problem in class_problems(self, class_index, checksums=checksums, decode=decode)]

    def problems(self, *, checksums: bool = True, decode: bool = True) -> list[StoreProblem]:
        """Everything wrong with the store, one :class:`StoreProblem` each (what ``diffii-datasets verify`` prints).

        The header against the store's name, every committed class (:meth:`verify`, images
        decoded with ``decode``), the manifest against the header and the commit records, the
        shared files against their checksum, the learned concepts the header names (when
        they sit in the cache next to the store), concept-learning checkpoints, stray
        entries, and leftovers of processes that are gone. Uncommitted classes and a
        missing manifest are not problems: the store is just incomplete.
        """
        return store_problems(self, checksums=checksums, decode=decode)

    def sweep(self) -> list[Path]:
        """Delete the temporaries and trash that processes now gone left; returns what was deleted."""
        return sweep(self)

    def concept_checkpoint_problems(self) -> list[StoreProblem]:
        """What concept learning in this store would discard: damaged checkpoints, tensor files no checkpoint
        describes, temporary files of killed writes (in :attr:`concept_work_dir`)."""
        return checkpoint_problems(self)

    def discard_damaged_checkpoints(self) -> None:
        """Once the concepts are learned and cached: remove the concept-learning checkpoints when any is damaged,
        with a warning naming each problem (they would only have served to learn the concepts again)."""
        problems = self.concept_checkpoint_problems()
        for problem in problems:
            self.repaired(problem, "the concept-learning checkpoints are removed (the learned concepts are cached)")
        if problems:
            remove_tree(self.concept_work_dir)

    def remove_if_unused(self) -> bool:
        """Delete the store when this process made it, nobody else has it open and nothing was written into it."""
        return remove_if_unused(self)

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # -- the manifest ----------------------------------------------------------------------

    def manifest(self) -> dict[str, Any] | None:
        """The manifest written by :meth:`finalize`, checked; ``None`` while the store is incomplete.

        :class:`StoreDamageError` (naming ``manifest.json``) when it disagrees with the header
        or with the commit records of the classes.
        """
        return _manifest.read_manifest(self)

    def manifest_digest(self) -> str:
        """The SHA-256 of the manifest: changes whenever the store's content does."""
        return sha256_file(self.path / MANIFEST)

    def verify_manifest(self) -> list[str]:
        """Where ``manifest.json`` disagrees with ``store.json`` or with the committed classes' records."""
        return _manifest.manifest_problems(self)

    def finalize(self, class_indices: Sequence[int], versions: Mapping[str, str]) -> dict[str, Any]:
        """Write the manifest once every class in ``class_indices`` is committed (idempotent, deterministic)."""
        return _manifest.finalize(self, class_indices, versions)

    # -- the shared stage ------------------------------------------------------------------

    def read_suffixes(self) -> list[str] | None:
        """The suffixes the shared stage saved (checked), ``None`` when there are none yet."""
        return _shared.read_suffixes(self)

    def write_suffixes(self, suffixes: Sequence[str]) -> None:
        """Save the shared stage's suffixes under their checksum (hold the ``"shared"`` lock)."""
        _shared.write_suffixes(self, suffixes)

    def shared_problems(self) -> list[StoreProblem]:
        return _shared.shared_problems(self)

    def learned_concepts_dir(self) -> Path | None:
        """Where the cache keeps the learned concepts the header names (``<cache>/concepts/<key>``), if any."""
        from diffii_datasets.store.concepts import ConceptCache

        return ConceptCache(self.path.parent).directory_of(self.header.concepts)
