"""A cache directory of stores: where it is, where a store goes in it, and the stores it already holds.

Stores are never filled from one another, but a run says what the cache holds that
it does not reuse, and why: stores made from the same images with other knobs or by
another method, or under another model (:func:`related_stores`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from diffii_datasets._io import FileFormatError
from diffii_datasets.store.header import StoreFormatError, StoreHeader, read_header
from diffii_datasets.store.layout import HEADER

__all__ = ["RelatedStore", "default_cache_dir", "related_stores", "store_path", "stores_in", "utf8_path"]


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


def utf8_path(path: str | os.PathLike, name: str = "cache_dir") -> Path:
    """``path`` as a ``Path``, refused (``ValueError`` naming ``name``) when its name is not valid UTF-8.

    Linux allows any bytes in a file name, but safetensors opens files by UTF-8 names only
    and JSON holds UTF-8 text, so in such a folder intact concepts would look damaged and
    be learned again on every run, and an export would fail on encoding.
    """
    text = os.fspath(Path(path).expanduser())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be a path whose name is valid UTF-8, got {os.fsencode(text)!r}: the concept "
                         f"files (safetensors) and exports need UTF-8 file names. Rename the folder, or choose "
                         f"another {name}") from None
    return Path(text)


def store_path(cache_dir: str | os.PathLike, header: StoreHeader) -> Path:
    """Where the store of ``header`` lives in ``cache_dir``: a folder named by the header's digest."""
    return utf8_path(cache_dir) / header.key()


def stores_in(cache_dir: str | os.PathLike) -> list[tuple[Path, StoreHeader]]:
    """The readable stores directly inside ``cache_dir``, with their headers (damaged or foreign ones skipped)."""
    found = []
    for path in sorted(Path(cache_dir).expanduser().glob(f"*/{HEADER}")):
        try:
            found.append((path.parent, read_header(path.parent)))
        except (FileFormatError, StoreFormatError, OSError):
            continue
    return found


@dataclass(frozen=True)
class RelatedStore:
    """A store made from the same images and classes as a wanted one: ``why`` says how it differs."""

    path: Path
    header: StoreHeader
    other_model: bool
    why: str


def related_stores(cache_dir: str | os.PathLike, wanted: StoreHeader) -> list[RelatedStore]:
    """The stores of ``cache_dir`` made from the same images and classes as ``wanted`` but not for it.

    Each says how it differs: the model, the method, or the knobs that differ (``knob: theirs -> wanted``).
    """
    related = []
    for path, header in stores_in(cache_dir):
        if path.name == wanted.key() or (header.dataset, header.classes, header.metaclass) != (
                wanted.dataset, wanted.classes, wanted.metaclass):
            continue
        if header.model != wanted.model:
            why = f"model {header.model!r} -> {wanted.model!r}"
        elif header.method != wanted.method:
            why = f"method {header.method!r} -> {wanted.method!r}"
        else:
            changed = wanted.config.differences(header.config)
            parts = [f"{knob}: {theirs!r} -> {mine!r}" for knob, (mine, theirs) in changed.items()]
            if header.concepts != wanted.concepts and not parts:
                parts.append(f"concepts: {header.concepts} -> {wanted.concepts}")
            if header.format != wanted.format:
                parts.insert(0, f"store format {header.format} (an older version) -> {wanted.format}")
            why = ", ".join(parts) or "its header differs"
        related.append(RelatedStore(path, header, header.model != wanted.model, why))
    return related
