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

import hashlib
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

logger = logging.getLogger(__name__)

__all__ = ["ClassWriter", "StoreMismatchError", "StoreProblem", "SyntheticStore"]

FORMAT_VERSION = 1
IMAGE_FORMATS = {"png": ("PNG", ".png", {}), "jpeg": ("JPEG", ".jpg", {"quality": 95})}


class StoreMismatchError(ValueError):
    """Raised when a store directory was made for a different configuration."""


@dataclass(frozen=True)
class StoreProblem:
    """A file of a committed class that is missing or whose checksum does not match."""

    class_index: int
    file: str
    reason: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _fsync_write(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


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
        self._checksums[relative] = _sha256(data)

    def write_inversions(self, inversions: torch.Tensor) -> None:
        """Save the class's inversion pool ``[N, C, h, w]``."""
        data = save({"inversions": inversions.detach().to("cpu", torch.float32).contiguous()})
        self._write("inversions.safetensors", data)

    def _write_image(self, relative: str, image: Image.Image, image_format: str) -> None:
        fmt, _, options = IMAGE_FORMATS[image_format]
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        self._write(relative, buffer.getvalue())

    def add_real(self, index: int, image: Image.Image) -> None:
        """Keep real image ``index`` of the class (lossless), so the store is self-contained."""
        self._write_image(f"real/{index:05d}.png", image, "png")

    def add(self, image: Image.Image, record: Mapping[str, Any]) -> None:
        """Encode ``image`` and remember its provenance ``record`` (must hold an int ``index``)."""
        relative = f"images/{int(record['index']):05d}{IMAGE_FORMATS[self._store.image_format][1]}"
        self._write_image(relative, image, self._store.image_format)
        line = {**record, "file": relative, "label": self.class_index, "sha256": self._checksums[relative]}
        self._records.append(json.dumps(line, sort_keys=True).encode("utf-8") + b"\n")

    def commit(self) -> None:
        """Write the metadata and commit record, fsync, and rename the class into place."""
        self._write("metadata.jsonl", b"".join(self._records))
        record = {"class_index": self.class_index, "count": len(self._records), "files": self._checksums}
        _fsync_write(self.tmp_dir / "class.json", _json_bytes(record))
        _fsync_dir(self.tmp_dir / "images")
        _fsync_dir(self.tmp_dir / "real")
        _fsync_dir(self.tmp_dir)
        final = self._store.class_dir(self.class_index)
        if final.exists():
            raise FileExistsError(f"class {self.class_index} is already committed in {self._store.path}")
        os.rename(self.tmp_dir, final)
        _fsync_dir(self._store.classes_dir)

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class SyntheticStore:
    """A directory of synthetic images for one (dataset, config, model, concepts) fingerprint."""

    def __init__(self, path: str | os.PathLike, *, image_format: str = "png") -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
        self.path = Path(path)
        self.image_format = image_format
        self.classes_dir = self.path / "classes"
        self.shared_dir = self.path / "shared"
        self.work_dir = self.path / "work"
        self.locks_dir = self.path / "locks"

    # -- creation and identity -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, header: Mapping[str, Any], *, image_format: str = "png") -> SyntheticStore:
        """Open the store at ``path``, creating it with ``header``; refuse a store made for another header.

        ``header`` must be JSON-able and hold a ``config`` mapping; when an existing
        store's header differs, :class:`StoreMismatchError` lists the differing fields.
        """
        store = cls(path, image_format=image_format)
        try:
            for directory in (store.classes_dir, store.shared_dir, store.work_dir, store.locks_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cache_dir must be a writable directory: cannot create {store.path} ({error})") from error
        if not os.access(store.path, os.W_OK):
            raise ValueError(f"cache_dir must be a writable directory: {store.path} is not writable")
        header = {"format": FORMAT_VERSION, **header}
        with FileLock(str(store.locks_dir / "header.lock")):
            existing = store.header()
            if existing is None:
                write_atomic(store.path / "store.json", _json_bytes(header))
            elif json.loads(_json_bytes(header)) != existing:
                raise StoreMismatchError(
                    f"the store at {store.path} was made for a different setup; differing fields: "
                    f"{'; '.join(_differences(existing, json.loads(_json_bytes(header))))}. "
                    "Use another cache_dir or delete that store to start over."
                )
        return store

    def header(self) -> dict[str, Any] | None:
        return self._read_json(self.path / "store.json")

    def manifest(self) -> dict[str, Any] | None:
        return self._read_json(self.path / "manifest.json")

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

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
        record = self._read_json(self.class_dir(class_index) / "class.json")
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
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                problems.append(StoreProblem(class_index, "class.json", f"unreadable ({error})"))
                continue
            for relative, expected in record["files"].items():
                path = self.class_dir(class_index) / relative
                if not path.is_file():
                    problems.append(StoreProblem(class_index, relative, "missing"))
                elif checksums and _sha256(path.read_bytes()) != expected:
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
                "class_json_sha256": _sha256((self.class_dir(class_index) / "class.json").read_bytes()),
            }
        manifest = {
            **(self.header() or {}),
            "complete": True,
            "versions": dict(versions),
            "total_images": sum(entry["count"] for entry in classes.values()),
            "class_records": classes,
        }
        data = _json_bytes(manifest)
        if (self.path / "manifest.json").is_file() and (self.path / "manifest.json").read_bytes() == data:
            return manifest
        write_atomic(self.path / "manifest.json", data)
        return manifest

    def verify_manifest(self) -> list[str]:
        """Where ``manifest.json`` disagrees with ``store.json`` or with the committed classes' records."""
        manifest, header = self.manifest(), self.header() or {}
        if manifest is None:
            return []
        problems = [f"manifest field {key!r} differs from store.json" for key, value in header.items()
                    if manifest.get(key) != value]
        recorded = manifest.get("class_records", {})
        for index in range(len(header.get("classes", []))):
            entry = recorded.get(f"{index:05d}")
            if entry is None:
                problems.append(f"class {index} is missing from the manifest")
            elif self.is_committed(index):
                digest = _sha256((self.class_dir(index) / "class.json").read_bytes())
                if digest != entry.get("class_json_sha256"):
                    problems.append(f"class {index}: its commit record does not match the manifest")
        return problems

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # -- shared artifacts ------------------------------------------------------------------

    def write_shared_json(self, name: str, value: Any) -> None:
        write_atomic(self.shared_dir / name, _json_bytes(value))

    def read_shared_json(self, name: str) -> Any | None:
        return self._read_json(self.shared_dir / name)


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
