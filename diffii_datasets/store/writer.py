"""Committing one class of a store atomically: staged in ``classes/.tmp-<class>-<pid>``, fsynced, renamed.

A crash (even ``kill -9``) or a full disk leaves the whole class or nothing: the
commit record ``class.json`` is written last inside the staging directory, and the
directory is renamed into place only when every file is durable.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from safetensors.torch import save

from diffii_datasets._io import fsync_dir, json_bytes, sha256_bytes
from diffii_datasets.config import IMAGE_FORMATS
from diffii_datasets.store.layout import CLASS_RECORD, IMAGES_DIR, INVERSIONS, METADATA, REAL_DIR, image_file, real_file
from diffii_datasets.store.record import SyntheticRecord

if TYPE_CHECKING:
    from diffii_datasets.store.store import SyntheticStore

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
    """Streams one class into a temporary directory; :meth:`commit` moves it into place.

    ``fields``: the provenance fields its method writes in each record.
    """

    def __init__(self, store: SyntheticStore, class_index: int, fields: Sequence[str]) -> None:
        self._store = store
        self.class_index = class_index
        self._fields = tuple(fields)
        self.tmp_dir = store.classes_dir / f".tmp-{class_index:05d}-{os.getpid()}"
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        (self.tmp_dir / IMAGES_DIR).mkdir(parents=True)
        (self.tmp_dir / REAL_DIR).mkdir()
        self._checksums: dict[str, str] = {}
        self._records: list[bytes] = []

    def _write(self, relative: str, data: bytes) -> None:
        _fsync_write(self.tmp_dir / relative, data)
        self._checksums[relative] = sha256_bytes(data)

    def write_inversions(self, inversions: torch.Tensor) -> None:
        """Save the class's inversion pool ``[N, C, h, w]``."""
        data = save({"inversions": inversions.detach().to("cpu", torch.float32).contiguous()})
        self._write(INVERSIONS, data)

    def _write_image(self, relative: str, image: Image.Image, image_format: str) -> None:
        fmt, _, options = ENCODINGS[image_format]
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        self._write(relative, buffer.getvalue())

    def add_real(self, index: int, image: Image.Image) -> None:
        """Keep real image ``index`` of the class (lossless), so the store is self-contained."""
        self._write_image(real_file(index), image, "png")

    def add(self, image: Image.Image, record: SyntheticRecord) -> None:
        """Encode ``image`` as the class's next synthetic image and file its provenance ``record``."""
        if record.index != len(self._records):
            raise ValueError(f"record.index must be {len(self._records)} (images are added in order), "
                             f"got {record.index}")
        relative = image_file(record.index, ENCODINGS[self._store.image_format][1])
        self._write_image(relative, image, self._store.image_format)
        filed = record.filed(self.class_index, relative, self._checksums[relative])
        self._records.append(filed.to_line(self._fields))

    def commit(self) -> None:
        """Write the metadata and commit record, fsync, and rename the class into place."""
        self._write(METADATA, b"".join(self._records))
        record = {"class_index": self.class_index, "count": len(self._records), "files": self._checksums}
        _fsync_write(self.tmp_dir / CLASS_RECORD, json_bytes(record))
        fsync_dir(self.tmp_dir / IMAGES_DIR)
        fsync_dir(self.tmp_dir / REAL_DIR)
        fsync_dir(self.tmp_dir)
        final = self._store.class_dir(self.class_index)
        if final.exists():
            raise FileExistsError(f"class {self.class_index} is already committed in {self._store.path}")
        os.rename(self.tmp_dir, final)
        fsync_dir(self._store.classes_dir)

    def abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
