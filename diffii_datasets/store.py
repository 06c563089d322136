"""The on-disk synthetic store: the one module that knows the layout.

A store is a directory per fingerprint of (base dataset content, config, model
identity, concepts)::

    <store>/
      store.json                 header: what this store is for (config, classes, identities)
      manifest.json              written last, when every class is committed (counts, checksums)
      shared/                    store-wide artifacts (concepts, suffixes, caption caches)
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
nothing. Nothing is pickled: tensors are safetensors, the rest JSON and images.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from PIL import Image
from safetensors.torch import load, save

from diffii_datasets._io import (
    FileFormatError,
    atomic_write,
    fingerprint,
    fsync_dir,
    json_bytes,
    read_json,
    sha256_bytes,
    sha256_file,
)
from diffii_datasets.config import IMAGE_FORMATS, DiffIIConfig

logger = logging.getLogger(__name__)

__all__ = ["ClassWriter", "StoreFormatError", "StoreHeader", "StoreMismatchError", "StoreProblem", "SyntheticStore",
           "default_cache_dir"]

FORMAT_VERSION = 2
"""The layout this version writes and reads; diffii-datasets 0.1 wrote format 1 (an untyped header)."""
# How each image format of the config is encoded: PIL format, file ending, save options.
_ENCODINGS = dict(zip(IMAGE_FORMATS, (("PNG", ".png", {}), ("JPEG", ".jpg", {"quality": 95}))))


def default_cache_dir() -> Path:
    """Where stores live by default: ``$DIFFII_DATASETS_CACHE``, else ``~/.cache/diffii-datasets``."""
    return Path(os.environ.get("DIFFII_DATASETS_CACHE", Path.home() / ".cache" / "diffii-datasets"))


class StoreMismatchError(ValueError):
    """Raised when a store directory was made for a different configuration."""


class StoreFormatError(ValueError):
    """Raised when a directory is not a store this version can read (no header, or another format)."""


@dataclass(frozen=True)
class StoreProblem:
    """A file of a committed class that is missing or whose checksum does not match."""

    class_index: int
    file: str
    reason: str


@dataclass(frozen=True)
class StoreHeader:
    """What a store is for: written once as ``store.json`` and compared whenever the store is created again.

    ``dataset`` fingerprints the base images and labels, ``model`` names the pipeline,
    ``concepts`` identifies the concepts (``learned:<key>`` for concepts learned into
    the cache), ``real_counts`` and ``expected_counts`` are per class.
    """

    config: DiffIIConfig
    classes: tuple[str, ...]
    metaclass: str
    dataset: str
    model: str
    concepts: str
    real_counts: tuple[int, ...]
    expected_counts: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("classes", "real_counts", "expected_counts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.classes) == len(self.real_counts) == len(self.expected_counts):
            raise ValueError(f"a store header needs one name, real count and expected count per class, got "
                             f"{len(self.classes)}, {len(self.real_counts)} and {len(self.expected_counts)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "classes": list(self.classes),
            "metaclass": self.metaclass,
            "dataset": self.dataset,
            "model": self.model,
            "concepts": self.concepts,
            "real_counts": list(self.real_counts),
            "expected_counts": list(self.expected_counts),
        }

    def key(self) -> str:
        """The store's directory name under a cache: a digest of the whole header."""
        return fingerprint(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike = "store.json") -> StoreHeader:
        """Read a header written by :meth:`to_dict`; anything else is an error naming ``path``."""
        if not isinstance(data, dict):
            raise FileFormatError(path, f"must hold a JSON object, found {type(data).__name__}")
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise StoreFormatError(
                f"{path}: this store was written in store format {version!r} (diffii-datasets "
                f"{'0.1' if version == 1 else 'of another version'}); this version reads format {FORMAT_VERSION}. "
                "Generate the set again (the same command writes a new store next to it), then delete this one.")
        try:
            return cls(
                config=DiffIIConfig.from_dict(data["config"]),
                classes=_strings(data["classes"], "classes"),
                metaclass=_string(data["metaclass"], "metaclass"),
                dataset=_string(data["dataset"], "dataset"),
                model=_string(data["model"], "model"),
                concepts=_string(data["concepts"], "concepts"),
                real_counts=_counts(data["real_counts"], "real_counts"),
                expected_counts=_counts(data["expected_counts"], "expected_counts"),
            )
        except KeyError as error:
            raise FileFormatError(path, f"lacks the field {error.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise FileFormatError(path, f"is not a valid store header: {error}") from None


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, found {type(value).__name__}")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list, found {type(value).__name__}")
    return tuple(_string(item, f"{name} item") for item in value)


def _counts(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                              for v in value):
        raise TypeError(f"{name} must be a list of non-negative ints")
    return tuple(value)


def _fsync_write(path: Path, data: bytes) -> None:
    """Write a file of a class being staged (the whole class directory is renamed into place later)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class ClassWriter:
    """Streams one class into a temporary directory; :meth:`commit` moves it into place."""

    def __init__(self, store: SyntheticStore, class_index: int) -> None:
        self._store = store
        self.class_index = class_index
        self.tmp_dir = store.classes_dir / f".tmp-{class_index:05d}-{os.getpid()}"
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        (self.tmp_dir / "images").mkdir(parents=True)
        (self.tmp_dir / "real").mkdir()
        self._checksums: dict[str, str] = {}
        self._records: list[bytes] = []

    def _write(self, relative: str, data: bytes) -> None:
        _fsync_write(self.tmp_dir / relative, data)
        self._checksums[relative] = sha256_bytes(data)

    def write_inversions(self, inversions: torch.Tensor) -> None:
        """Save the class's inversion pool ``[N, C, h, w]``."""
        data = save({"inversions": inversions.detach().to("cpu", torch.float32).contiguous()})
        self._write("inversions.safetensors", data)

    def _write_image(self, relative: str, image: Image.Image, image_format: str) -> None:
        fmt, _, options = _ENCODINGS[image_format]
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        self._write(relative, buffer.getvalue())

    def add_real(self, index: int, image: Image.Image) -> None:
        """Keep real image ``index`` of the class (lossless), so the store is self-contained."""
        self._write_image(f"real/{index:05d}.png", image, "png")

    def add(self, image: Image.Image, record: Mapping[str, Any]) -> None:
        """Encode ``image`` and remember its provenance ``record`` (must hold an int ``index``)."""
        relative = f"images/{int(record['index']):05d}{_ENCODINGS[self._store.image_format][1]}"
        self._write_image(relative, image, self._store.image_format)
        line = {**record, "file": relative, "label": self.class_index, "sha256": self._checksums[relative]}
        self._records.append(json.dumps(line, sort_keys=True).encode("utf-8") + b"\n")

    def commit(self) -> None:
        """Write the metadata and commit record, fsync, and rename the class into place."""
        self._write("metadata.jsonl", b"".join(self._records))
        record = {"class_index": self.class_index, "count": len(self._records), "files": self._checksums}
        _fsync_write(self.tmp_dir / "class.json", json_bytes(record))
        fsync_dir(self.tmp_dir / "images")
        fsync_dir(self.tmp_dir / "real")
        fsync_dir(self.tmp_dir)
        final = self._store.class_dir(self.class_index)
        if final.exists():
            raise FileExistsError(f"class {self.class_index} is already committed in {self._store.path}")
        os.rename(self.tmp_dir, final)
        fsync_dir(self._store.classes_dir)

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class SyntheticStore:
    """A directory of synthetic images for one (dataset, config, model, concepts) fingerprint.

    :meth:`create` opens a store for writing (making it if needed); :meth:`open`
    opens an existing one for reading. ``header`` says what the store is for.
    """

    def __init__(self, path: str | os.PathLike, header: StoreHeader) -> None:
        self.path = Path(path)
        self.header = header
        self.classes_dir = self.path / "classes"
        self.shared_dir = self.path / "shared"
        self.work_dir = self.path / "work"
        self.locks_dir = self.path / "locks"

    @property
    def image_format(self) -> str:
        return self.header.config.image_format

    # -- creation and identity -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, header: StoreHeader) -> SyntheticStore:
        """Open the store at ``path`` for writing, creating it with ``header``; refuse a store made for another.

        When the existing store's header differs, :class:`StoreMismatchError` lists the differing fields.
        """
        if not isinstance(header, StoreHeader):
            raise TypeError(f"header must be a StoreHeader, got {type(header).__name__}")
        store = cls(path, header)
        try:
            for directory in (store.classes_dir, store.shared_dir, store.work_dir, store.locks_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cache_dir must be a writable directory: cannot create {store.path} ({error})") from error
        if not os.access(store.path, os.W_OK):
            raise ValueError(f"cache_dir must be a writable directory: {store.path} is not writable")
        wanted = json.loads(json_bytes(header.to_dict()))
        with FileLock(str(store.locks_dir / "header.lock")):
            existing = read_json(store.path / "store.json", missing_ok=True)
            if existing is None:
                atomic_write(store.path / "store.json", json_bytes(wanted))
            elif existing != wanted:
                raise StoreMismatchError(
                    f"the store at {store.path} was made for a different setup; differing fields: "
                    f"{'; '.join(_differences(existing, wanted))}. "
                    "Use another cache_dir or delete that store to start over."
                )
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> SyntheticStore:
        """The existing store at ``path``, for reading; :class:`StoreFormatError` when it is not one."""
        path = Path(path)
        header_path = path / "store.json"
        if not header_path.is_file():
            raise StoreFormatError(f"{path} is not a diffii-datasets store (it has no store.json)")
        return cls(path, StoreHeader.from_dict(read_json(header_path), header_path))

    def manifest(self) -> dict[str, Any] | None:
        """The manifest written by :meth:`finalize`, or ``None`` while the store is incomplete."""
        return read_json(self.path / "manifest.json", missing_ok=True)

    # -- locks -----------------------------------------------------------------------------

    def lock(self, name: str) -> FileLock:
        """An inter-process lock; ``name`` is ``"shared"`` or ``"class-00003"``-style."""
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
        """Context manager: commit on success, leave nothing behind on error."""
        writer = self.writer(class_index)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def discard(self, class_index: int) -> None:
        """Remove a committed class (for regeneration); hold its lock."""
        final = self.class_dir(class_index)
        if final.exists():
            trash = self.classes_dir / f".trash-{class_index:05d}-{os.getpid()}"
            os.rename(final, trash)
            shutil.rmtree(trash)
        manifest = self.path / "manifest.json"
        if manifest.exists():
            manifest.unlink()

    def remove_stale_temporaries(self, class_index: int) -> None:
        """Delete half-written directories a crashed run left for this class; hold its lock."""
        for stale in self.classes_dir.glob(f".tmp-{class_index:05d}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in self.classes_dir.glob(f".trash-{class_index:05d}-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def class_record(self, class_index: int) -> dict[str, Any]:
        record = read_json(self.class_dir(class_index) / "class.json", missing_ok=True)
        if record is None:
            raise FileNotFoundError(f"class {class_index} is not committed in {self.path}")
        return record

    def records(self, class_index: int) -> list[dict[str, Any]]:
        """Provenance records of a committed class, in generation order."""
        text = (self.class_dir(class_index) / "metadata.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line]

    def real_images(self, class_index: int) -> list[Path]:
        """Paths of the committed class's real images, in class order."""
        return sorted((self.class_dir(class_index) / "real").glob("*.png"))

    def read_inversions(self, class_index: int) -> torch.Tensor:
        return load((self.class_dir(class_index) / "inversions.safetensors").read_bytes())["inversions"]

    def image_path(self, class_index: int, relative: str) -> Path:
        return self.class_dir(class_index) / relative

    def verify(self, class_indices: Sequence[int], *, checksums: bool = True) -> list[StoreProblem]:
        """Check every file of the given committed classes; uncommitted classes are skipped.

        With ``checksums=False`` only existence and readability of the commit record are checked.
        """
        problems = []
        for class_index in class_indices:
            if not self.is_committed(class_index):
                continue
            try:
                record = self.class_record(class_index)
            except FileFormatError as error:
                problems.append(StoreProblem(class_index, "class.json", f"unreadable ({error.problem})"))
                continue
            for relative, expected in record["files"].items():
                path = self.class_dir(class_index) / relative
                if not path.is_file():
                    problems.append(StoreProblem(class_index, relative, "missing"))
                elif checksums and sha256_file(path) != expected:
                    problems.append(StoreProblem(class_index, relative, "checksum mismatch"))
        return problems

    def finalize(self, class_indices: Sequence[int], versions: Mapping[str, str]) -> dict[str, Any]:
        """Write the manifest once every class in ``class_indices`` is committed (idempotent, deterministic).

        ``versions`` records the library versions that produced the store; the
        manifest holds no timestamps, so equal stores have byte-equal manifests.
        """
        missing = [c for c in class_indices if not self.is_committed(c)]
        if missing:
            raise RuntimeError(f"cannot finalize {self.path}: classes not committed yet: {missing}")
        classes = {}
        for class_index in class_indices:
            record = self.class_record(class_index)
            classes[f"{class_index:05d}"] = {
                "count": record["count"],
                "class_json_sha256": sha256_file(self.class_dir(class_index) / "class.json"),
            }
        manifest = {
            **self.header.to_dict(),
            "complete": True,
            "versions": dict(versions),
            "total_images": sum(entry["count"] for entry in classes.values()),
            "class_records": classes,
        }
        data = json_bytes(manifest)
        if (self.path / "manifest.json").is_file() and (self.path / "manifest.json").read_bytes() == data:
            return manifest
        atomic_write(self.path / "manifest.json", data)
        return manifest

    def verify_manifest(self) -> list[str]:
        """Where ``manifest.json`` disagrees with ``store.json`` or with the committed classes' records."""
        manifest, header = self.manifest(), self.header.to_dict()
        if manifest is None:
            return []
        problems = [f"manifest field {key!r} differs from store.json" for key, value in header.items()
                    if manifest.get(key) != value]
        recorded = manifest.get("class_records", {})
        for index in range(self.header.num_classes):
            entry = recorded.get(f"{index:05d}")
            if entry is None:
                problems.append(f"class {index} is missing from the manifest")
            elif self.is_committed(index):
                digest = sha256_file(self.class_dir(index) / "class.json")
                if digest != entry.get("class_json_sha256"):
                    problems.append(f"class {index}: its commit record does not match the manifest")
        return problems

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # -- shared artifacts ------------------------------------------------------------------

    def write_shared_json(self, name: str, value: Any) -> None:
        atomic_write(self.shared_dir / name, json_bytes(value))

    def read_shared_json(self, name: str) -> Any | None:
        return read_json(self.shared_dir / name, expect=None, missing_ok=True)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable list of the fields that differ between two JSON objects."""
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: store has {a!r}, requested {b!r}")
    return found
