"""Committing one class of a store atomically: staged in ``classes/.tmp-<class>-<pid>``, fsynced, renamed.

A crash (even ``kill -9``) or a full disk leaves the whole class or nothing: the
commit record ``class.json`` is written last inside the staging directory, and the
directory is renamed into place only when every file is durable.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from safetensors.torch import save

from diffii_datasets._io import fsync_dir, json_bytes, sha256_bytes
from diffii_datasets.config import IMAGE_FORMATS

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticStore

__all__ = ["ENCODINGS", "ClassWriter"]

ENCODINGS = dict(zip(IMAGE_FORMATS, (("PNG", ".png", {}), ("JPEG", ".jpg", {"quality": 95}))))
"""How each image format of the config is encoded: PIL format, file ending, save options."""


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
        fmt, _, options = ENCODINGS[image_format]
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        self._write(relative, buffer.getvalue())

    def add_real(self, index: int, image: Image.Image) -> None:
        """Keep real image ``index`` of the class (lossless), so the store is self-contained."""
        self._write_image(f"real/{index:05d}.png", image, "png")

    def add(self, image: Image.Image, record: Mapping[str, Any]) -> None:
        """Encode ``image`` and remember its provenance ``record`` (must hold an int ``index``)."""
        relative = f"images/{int(record['index']):05d}{ENCODINGS[self._store.image_format][1]}"
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
