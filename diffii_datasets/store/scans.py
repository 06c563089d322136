"""The scans of base datasets a cache keeps: the digest and label of every image, by the dataset's file signature.

A scan is ``<cache>/scans/<signature>.json`` (the signature is
:func:`~diffii_datasets.dataset_files.file_signature`'s), kept under its own
checksum; a damaged or foreign file is ignored (the images are read again) and a cache
that cannot be written only costs the next run a read of the images.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from diffii_datasets._io import FileFormatError, json_bytes, read_json, sha256_bytes, write_json
from diffii_datasets.store.layout import SCANS_DIR

__all__ = ["read_scan", "write_scan"]

logger = logging.getLogger(__name__)


def _path(cache_dir: str | os.PathLike, signature: str) -> Path:
    return Path(cache_dir) / SCANS_DIR / f"{signature}.json"


def read_scan(cache_dir: str | os.PathLike, signature: str, length: int) -> list[list[Any]] | None:
    """The ``[digest, label]`` of every item saved for ``signature``; ``None`` when absent or not intact."""
    path = _path(cache_dir, signature)
    try:
        saved = read_json(path, missing_ok=True, canonical=True)
    except (FileFormatError, OSError) as error:
        logger.warning("ignoring the damaged scan %s (%s); reading the images again", path, error)
        return None
    if saved is None:
        return None
    items = saved.get("items")
    valid = (set(saved) == {"items", "sha256"} and isinstance(items, list) and len(items) == length
             and saved["sha256"] == sha256_bytes(json_bytes(items))
             and all(isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                     and isinstance(item[1], int) and not isinstance(item[1], bool) for item in items))
    if not valid:
        logger.warning("ignoring the damaged scan %s (its checksum or shape is wrong); reading the images again", path)
        return None
    return items


def write_scan(cache_dir: str | os.PathLike, signature: str, items: list[list[Any]]) -> None:
    """Save the scan for ``signature`` (quietly skipped where the cache cannot be written, e.g. read-only)."""
    path = _path(cache_dir, signature)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"items": items, "sha256": sha256_bytes(json_bytes(items))})
    except OSError as error:
        logger.info("could not save the scan %s (%s); the next run reads the images again", path, error)
