"""Knob declarations: a config field's default, type, check and help text, written once.

A config is a frozen dataclass whose fields are declared with :func:`knob`; its
``__post_init__`` calls :func:`validate`. Everything else is derived from the
declarations with :func:`knobs_of`: ``DiffIIConfig``'s flat keywords and JSON
form, the command line's flags and the Hub builder's keywords. A check takes
``(value, name)``, where ``name`` is what the user wrote (a field, a flat knob,
a CLI flag), and returns the value to store (numbers normalised to ``float``,
sequences to ``tuple``). Pure Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks

__all__ = [
    "Knob",
    "choice",
    "image_side",
    "knob",
    "knobs_of",
    "non_negative_int",
    "number",
    "optional",
    "positive_int",
    "seed",
    "validate",
]

Check = Callable[[Any, str], Any]
_META = "diffii_knob"


@dataclass(frozen=True)
class Knob:
    """One declared knob as users see it: its flat ``name`` and where it lives (``owner.field``)."""

    name: str
    owner: type
    field: str
    default: Any
    help: str
    check: Check
    parse: Callable[[str], Any] | None  # command-line text to a value; None for a bool (an on/off flag)
    choices: tuple[Any, ...] | None

    @property
    def flag(self) -> str:
        """The command-line flag: ``--concept-batch-size``."""
        return "--" + self.name.replace("_", "-")


def knob(default: Any, help: str, check: Check, *, parse: Callable[[str], Any] | None = None,
         choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field declared as a knob.

    ``parse`` turns command-line text into a value; it defaults to the type of
    ``default`` (``int``, ``float``, ``str``; a ``bool`` becomes an on/off flag) and
    must be given when the default is ``None`` or a tuple.
    """
    if parse is None and not isinstance(default, bool):
        if not isinstance(default, (int, float, str)):
            raise TypeError(f"knob with default {default!r} needs parse=")
        parse = type(default)
    meta = {"help": help, "check": check, "parse": parse, "choices": tuple(choices) if choices else None}
    return dataclasses.field(default=default, metadata={_META: meta})


def knobs_of(cls: type, prefix: str = "") -> list[Knob]:
    """The knobs declared on dataclass ``cls``, in declaration order, named ``prefix + field``."""
    found = []
    for field in dataclasses.fields(cls):
        meta = field.metadata.get(_META)
        if meta is not None:
            found.append(Knob(prefix + field.name, cls, field.name, field.default, meta["help"], meta["check"],
                              meta["parse"], meta["choices"]))
    return found


def validate(instance: Any, prefix: str = "") -> None:
    """Check every knob of a frozen dataclass ``instance`` and store the normalised values.

    Errors name the field as ``<Class>.<field>`` (or ``prefix + field`` when a
    prefix is given).
    """
    owner = type(instance).__name__
    for item in knobs_of(type(instance)):
        name = prefix + item.field if prefix else f"{owner}.{item.field}"
        object.__setattr__(instance, item.field, item.check(getattr(instance, item.field), name))


# -- checks for declarations -------------------------------------------------------------------------------------------


def positive_int(value: Any, name: str) -> int:
    return _checks.check_int(value, name, minimum=1)


def non_negative_int(value: Any, name: str) -> int:
    return _checks.check_int(value, name, minimum=0)


def image_side(value: Any, name: str) -> int:
    """An image side in pixels: a positive multiple of 8 (the VAE's downsampling factor)."""
    value = _checks.check_int(value, name, minimum=1)
    if value % 8:
        _checks.fail(ValueError, name, "a positive multiple of 8", value)
    return value


def seed(value: Any, name: str) -> int:
    return _checks.check_seed(value, name)


def number(*, minimum: float | None = None, maximum: float | None = None, above: float | None = None) -> Check:
    def check(value: Any, name: str) -> float:
        return _checks.check_number(value, name, minimum=minimum, maximum=maximum, above=above)

    return check


def choice(choices: Sequence[Any], *, optional: bool = False) -> Check:
    """One of ``choices`` (or ``None`` too, when ``optional``)."""
    def check(value: Any, name: str) -> Any:
        return _checks.check_choice(value, name, choices, optional=optional)

    return check


def optional(check: Check) -> Check:
    """``None`` or what ``check`` accepts."""
    def check_optional(value: Any, name: str) -> Any:
        return None if value is None else check(value, name)

    return check_optional
