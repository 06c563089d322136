"""The one fingerprint function: stable SHA-256 digests of images and JSON-able values.

Used for store directories, caption/suffix caches and concept identities, so two
runs that see the same content agree on a key, whatever the process or machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from diffii_datasets.images import to_pil_rgb

__all__ = ["fingerprint", "image_digest", "images_fingerprint"]


def fingerprint(value: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable value (keys sorted, so dict order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_reject)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def image_digest(image: Any) -> str:
    """Digest of an image's RGB pixels and size (independent of file format or PIL mode)."""
    rgb = to_pil_rgb(image)
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def images_fingerprint(images: Iterable[Any], length: int = 16) -> str:
    """Digest of an ordered collection of images."""
    return fingerprint([image_digest(image) for image in images], length)


def _reject(value: Any) -> Any:
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}: {value!r}")
