"""Fixed lists of suffixes: the ones shipped with the package and the user's own."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from diffii_datasets import _checks
from diffii_datasets.diffusion.suffixes.builtin_lists import (
    BUILTIN_LISTS,
    GENERIC_LIST,
    list_for_metaclass,
    resolve_list,
)
from diffii_datasets.diffusion.suffixes.parsing import clean_suffix
from diffii_datasets.diffusion.suffixes.provider import SuffixProvider

__all__ = [
    "MAX_BUILTIN_SUFFIXES",
    "BuiltinSuffixes",
    "UserSuffixes",
    "builtin_suffixes",
    "normalise_list",
    "read_suffix_file",
]

logger = logging.getLogger(__name__)

MAX_BUILTIN_SUFFIXES = 10
"""The most suffixes a shipped list holds; also how many the captioned provider keeps by default."""


def _suffix_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_suffix_file(path: str | os.PathLike) -> list[str]:
    """Suffixes in a UTF-8 text file, one per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"suffix file {str(path)!r} does not exist (expected a text file, one suffix per line)")
    entries = _suffix_lines(path.read_text(encoding="utf-8"))
    if not entries:
        raise ValueError(f"suffix file {str(path)!r} holds no suffix (only blank lines or # comments)")
    return entries


def builtin_suffixes(name: str) -> list[str]:
    """A shipped list (a name of :data:`BUILTIN_LISTS`, one of its aliases, or ``"generic"``)."""
    name = resolve_list(name)
    text = resources.files("diffii_datasets").joinpath("data", "suffixes", f"{name}.txt").read_text("utf-8")
    return _suffix_lines(text)


def normalise_list(entries: Iterable[str], metaclass: str, source: str) -> list[str]:
    """Normalise each entry for ``metaclass``; empty entries are an error, duplicates are dropped with a warning."""
    result: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        suffix = clean_suffix(entry, metaclass)
        if not suffix:
            raise ValueError(f"{source}: suffix {entry!r} is empty once the 'a photo of a {metaclass}' prefix, "
                             f"quotes and the final period are removed")
        if suffix.lower() in seen:
            logger.warning("%s: dropping duplicate suffix %r", source, entry)
            continue
        seen.add(suffix.lower())
        result.append(suffix)
    return result


class BuiltinSuffixes(SuffixProvider):
    """A list shipped with the package; ``name=None`` picks it from the metaclass (generic if none matches)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = None if name is None else resolve_list(name)

    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        name = self.name
        if name is None:
            name = list_for_metaclass(metaclass)
            if name == GENERIC_LIST:
                logger.info("metaclass %r matches no built-in suffix list (%s); using the generic list",
                            metaclass, ", ".join(BUILTIN_LISTS))
            else:
                logger.info("metaclass %r: using the built-in %r suffix list", metaclass, name)
        return normalise_list(builtin_suffixes(name), metaclass, f"built-in list {name!r}")

    def spec(self) -> str:
        return "builtin" if self.name is None else f"builtin:{self.name}"


class UserSuffixes(SuffixProvider):
    """The user's own phrases: a list or tuple of strings, or the lines of a text file (see :func:`read_suffix_file`).

    A file is read once, here; :meth:`spec` is its content, so a cache keyed on the
    spec notices when the file is edited. ``path`` keeps where it came from.
    """

    def __init__(self, suffixes: Sequence[str]) -> None:
        entries = _checks.check_str_sequence(suffixes, "suffixes", expected="a non-empty list of strings, none blank")
        self.entries = [s.strip() for s in entries]
        self.path: Path | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> UserSuffixes:
        provider = cls(read_suffix_file(path))
        provider.path = Path(path).expanduser()
        return provider

    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        source = f"suffix file {str(self.path)!r}" if self.path is not None else "user suffix list"
        return normalise_list(self.entries, metaclass, source)

    def spec(self) -> list[str]:
        return list(self.entries)
