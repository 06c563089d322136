"""What a store is for: the typed ``StoreHeader`` kept as ``store.json``, read back only when intact.

A store directory under a cache is named by :meth:`StoreHeader.key`, a digest of
the header (method and knobs included), so a header that does not hash to its
directory's name was damaged or edited; a valid header of another setup at a path of
the user's choosing is a :class:`StoreMismatchError` naming the fields that differ.

Format 3 (this version) records the method; a format-2 store (diffii-datasets 0.2,
Diff-II only) is read as it was written, so its items are served unchanged, and it
is never written to: the same job now makes a format-3 store beside it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets._io import FileFormatError, fingerprint, json_bytes, read_json
from diffii_datasets.store.checks import StoreDamageError, StoreProblem, damage_reason
from diffii_datasets.store.layout import HEADER

if TYPE_CHECKING:
    from diffii_datasets.methods import MethodConfig

__all__ = ["FORMAT_VERSION", "READABLE_FORMATS", "StoreFormatError", "StoreHeader", "StoreMismatchError",
           "header_differences", "read_header", "stored_header_problem"]

FORMAT_VERSION = 3
"""The layout this version writes: 0.1 wrote format 1 (an untyped header), 0.2 format 2 (Diff-II only)."""
READABLE_FORMATS = (2, 3)
KEY = re.compile(r"[0-9a-f]{16}\Z")  # a store directory named by StoreHeader.key()


class StoreMismatchError(ValueError):
    """Raised when a store directory was made for a different configuration."""


class StoreFormatError(ValueError):
    """Raised when a directory is not a store this version can read (no header, or another format)."""


@dataclass(frozen=True)
class StoreHeader:
    """What a store is for: written once as ``store.json`` and compared whenever the store is created again.

    ``config`` is the method's config (its ``method`` names the method), ``dataset``
    fingerprints the base images and labels, ``model`` names the pipeline, ``concepts``
    identifies the concepts (``learned:<key>`` for concepts learned into the cache,
    ``none`` for a method without), ``real_counts`` and ``expected_counts`` are per class.
    ``written`` is the ``store.json`` of an older format, kept as it was read (such a
    store is read, never written to).
    """

    config: MethodConfig
    classes: tuple[str, ...]
    metaclass: str
    dataset: str
    model: str
    concepts: str
    real_counts: tuple[int, ...]
    expected_counts: tuple[int, ...]
    written: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("classes", "real_counts", "expected_counts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.classes) == len(self.real_counts) == len(self.expected_counts):
            raise ValueError(f"a store header needs one name, real count and expected count per class, got "
                             f"{len(self.classes)}, {len(self.real_counts)} and {len(self.expected_counts)}")

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def format(self) -> int:
        return FORMAT_VERSION if self.written is None else self.written["format"]

    def to_dict(self) -> dict[str, Any]:
        if self.written is not None:
            return dict(self.written)
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
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
    def from_dict(cls, data: Any, path: str | os.PathLike = HEADER) -> StoreHeader:
        """Read a header written by :meth:`to_dict` (or by diffii-datasets 0.2); anything else names ``path``."""
        from diffii_datasets.methods import get_method

        if not isinstance(data, dict):
            raise FileFormatError(path, f"must hold a JSON object, found {type(data).__name__}")
        version = data.get("format")
        if version not in READABLE_FORMATS:
            raise StoreFormatError(
                f"{path}: this store was written in store format {version!r} (diffii-datasets "
                f"{'0.1' if version == 1 else 'of another version'}); this version reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))}. Generate the set again (the same command writes a new "
                "store next to it), then delete this one.")
        try:
            if version == 2:
                from diffii_datasets.config import DiffIIConfig

                config = DiffIIConfig.from_0_2_dict(data["config"])
            else:
                config = get_method(_string(data["method"], "method")).config_class.from_dict(data["config"])
            return cls(
                config=config,
                classes=_strings(data["classes"], "classes"),
                metaclass=_string(data["metaclass"], "metaclass"),
                dataset=_string(data["dataset"], "dataset"),
                model=_string(data["model"], "model"),
                concepts=_string(data["concepts"], "concepts"),
                real_counts=_counts(data["real_counts"], "real_counts"),
                expected_counts=_counts(data["expected_counts"], "expected_counts"),
                written=dict(data) if version != FORMAT_VERSION else None,
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
    header_path = path / HEADER
    header = StoreHeader.from_dict(read_json(header_path), header_path)
    if header_path.read_bytes() != json_bytes(header.to_dict()):
        raise FileFormatError(header_path, "is not in the form diffii-datasets writes (edited or damaged)")
    if KEY.match(path.name) and header.key() != path.name:
        raise FileFormatError(header_path, f"does not hash to the store's name {path.name} (edited or damaged)")
    return header


def stored_header_problem(path: Path, header: StoreHeader) -> StoreProblem | None:
    """``None`` when ``path/store.json`` holds ``header``; a "missing" or damage problem to write it anew.

    Raises :class:`StoreMismatchError` for a valid header of another setup, and
    :class:`StoreDamageError` for a damaged one that cannot be told apart from another
    setup's (the directory is not named after the header, so its name cannot say).
    """
    header_path = path / HEADER
    if not header_path.exists():
        return StoreProblem(None, HEADER, "missing")
    named = path.name == header.key()
    try:
        existing = StoreHeader.from_dict(read_json(header_path), header_path)
    except (FileFormatError, OSError) as error:
        problem = StoreProblem(None, HEADER, damage_reason(error) if isinstance(error, FileFormatError)
                               else f"unreadable ({error})")
        if named:
            return problem
        raise StoreDamageError(path, problem) from None
    differences = "; ".join(header_differences(existing.to_dict(), header.to_dict()))
    if differences and not named:
        raise StoreMismatchError(f"the store at {path} was made for a different setup; differing fields: "
                                 f"{differences}. Use another cache_dir or delete that store to start over.")
    if differences:  # the directory is named after the wanted header: what it holds was damaged or edited
        return StoreProblem(None, HEADER, f"damaged (it differs from the header the store is named after: "
                                          f"{differences})")
    if header_path.read_bytes() != json_bytes(header.to_dict()):
        return StoreProblem(None, HEADER, "damaged (not in the form diffii-datasets writes)")
    return None


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
