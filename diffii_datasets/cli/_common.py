"""What the command groups share: the user-error type, argument types, knob flags, opening a store.

Pure Python at import time: building the parser must load no torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets._knobs import Knob

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticStore

__all__ = ["CLASSES_HELP", "STORE_HELP", "AddCommand", "CommandError", "add_knob_flags", "knob_values",
           "method_defaults", "non_negative_int", "open_store", "parse_classes", "positive_int"]

AddCommand = Callable[[str, str, str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]
"""``add_command(name, help, epilog, run)``: adds a subcommand whose ``run(args)`` returns the exit status."""


STORE_HELP = "a store directory (printed by generate)"
CLASSES_HELP = "comma-separated class indices or names (default: every class)"
"""Help of the ``--classes`` flag that :func:`parse_classes` reads."""


class CommandError(Exception):
    """A problem with the user's input or data, reported as one line without a traceback."""


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_knob_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, knobs: Sequence[Knob],
                   defaults: Mapping[str, Any] | None = None) -> None:
    """One flag per knob, spelled, typed and explained by its declaration.

    Every flag defaults to ``None`` (so :func:`knob_values` sees only what was typed);
    the help shows ``defaults[name]`` where a command has its own, else the knob's default.
    """
    defaults = defaults or {}
    for item in knobs:
        shown = defaults.get(item.name, item.default)
        help = item.help if shown is None else f"{item.help} (default: {_shown(shown)})"
        if item.parse is None:  # a bool: --flag / --no-flag
            parser.add_argument(item.flag, dest=item.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help)
        else:
            metavar = None if item.choices else _METAVARS.get(item.parse, "LIST" if isinstance(item.default, tuple)
                                                              else "TEXT")
            parser.add_argument(item.flag, dest=item.name, type=item.parse, choices=item.choices, default=None,
                                metavar=metavar, help=help)


_METAVARS = {int: "INT", float: "FLOAT"}


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def method_defaults() -> dict[str, Any]:
    """What each method knob's help shows as its default: the value, or "per method" where the methods differ."""
    from diffii_datasets.methods import get_method, list_methods

    values: dict[str, set[Any]] = {}
    for method in list_methods():
        for item in get_method(method).config_class.knobs():
            values.setdefault(item.name, set()).add(_shown(item.default) if item.default is not None else None)
    return {name: next(iter(shown)) if len(shown) == 1 else "per method" for name, shown in values.items()}


def knob_values(args: argparse.Namespace, knobs: Sequence[Knob]) -> dict[str, Any]:
    """``{knob name: value}`` of the knob flags given, each checked by its knob under the flag's name."""
    values = {}
    for item in knobs:
        value = getattr(args, item.name, None)
        if value is not None:
            try:
                values[item.name] = item.check(value, item.flag)
            except (TypeError, ValueError) as error:
                raise CommandError(str(error)) from None
    return values


def open_store(path: str) -> SyntheticStore:
    """The store at ``path``; a cache directory instead gets an error listing the stores inside it.

    A path that is no directory is refused before the store code (and torch) loads.
    """
    if not Path(path).expanduser().is_dir():
        raise CommandError(f"{path}: no such store directory (generate prints the path of the store it made)")
    from diffii_datasets.store import StoreFormatError, SyntheticStore

    try:
        return SyntheticStore.open(path)
    except StoreFormatError as error:
        directory = Path(path)
        if not directory.is_dir():
            raise CommandError(f"{path}: no such store directory") from None
        inside = sorted(str(p) for p in directory.iterdir() if p.is_dir() and _is_store(p))
        hint = f"; stores in it: {', '.join(inside)}" if inside else ""
        raise CommandError(f"{error}{hint}") from None


def parse_classes(text: str | None, names: Sequence[str]) -> list[int] | None:
    """``--classes``: ``"0,3,5"`` or class names (comma-separated) to class indices; None for every class."""
    if text is None:
        return None
    indices = []
    for item in (part.strip() for part in text.split(",")):
        if item.isdigit() and int(item) < len(names):
            indices.append(int(item))
        elif item in names:
            indices.append(names.index(item))
        else:
            raise CommandError(f"--classes: {item!r} is neither a class index (0..{len(names) - 1}) nor a class "
                               f"name of this store (e.g. {', '.join(repr(n) for n in names[:3])})")
    return indices


def _is_store(path: Path) -> bool:
    from diffii_datasets._io import FileFormatError
    from diffii_datasets.store import StoreFormatError, SyntheticStore

    try:
        SyntheticStore.open(path)
    except (StoreFormatError, FileFormatError):
        return False
    return True
