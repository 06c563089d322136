"""What a store is for: the typed ``StoreHeader`` kept as ``store.json``, read back only when intact.

A store directory under a cache is named by :meth:`StoreHeader.key`, a digest of
the header, so a header that does not hash to its directory's name was damaged or
edited; a valid header of another setup at a path of the user's choosing is a
:class:`StoreMismatchError` naming the fields that differ.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffii_datasets._io import FileFormatError, fingerprint, json_bytes, read_json
from diffii_datasets.config import DiffIIConfig

__all__ = ["FORMAT_VERSION", "StoreFormatError", "StoreHeader", "StoreMismatchError", "header_differences",
           "read_header"]

FORMAT_VERSION = 2
"""The layout this version writes and reads; diffii-datasets 0.1 wrote format 1 (an untyped header)."""
KEY = re.compile(r"[0-9a-f]{16}\Z")  # a store directory named by StoreHeader.key()


class StoreMismatchError(ValueError):
    """Raised when a store directory was made for a different configuration."""


class StoreFormatError(ValueError):
    """Raised when a directory is not a store this version can read (no header, or another format)."""


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


def read_header(path: Path) -> StoreHeader:
    """The header in ``path/store.json``; :class:`StoreFormatError` for another format, ``FileFormatError`` if damaged.

    Damaged means: not JSON, not a valid header, not in the canonical form it is written
    in, or (for a directory named like a store key) not hashing to the directory's name.
    """
    header_path = path / "store.json"
    header = StoreHeader.from_dict(read_json(header_path), header_path)
    if header_path.read_bytes() != json_bytes(header.to_dict()):
        raise FileFormatError(header_path, "is not in the form diffii-datasets writes (edited or damaged)")
    if KEY.match(path.name) and header.key() != path.name:
        raise FileFormatError(header_path, f"does not hash to the store's name {path.name} (edited or damaged)")
    return header


def header_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable list of the fields that differ between two JSON objects."""
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found += header_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: store has {a!r}, requested {b!r}")
    return found
