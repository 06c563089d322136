"""Argument checks with one wording: ``<name> must be <expected>, got <value>``.

A value of the wrong type raises ``TypeError``, a value of the right type outside
what is allowed raises ``ValueError``; both name the argument the caller passed
(a config field, a keyword, a CLI flag), so the message says what to change.
Every check returns the value it accepted (normalised where that is said).
Pure Python: importing this module loads nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any, NoReturn

__all__ = [
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_one_line",
    "check_seed",
    "check_str",
    "check_str_sequence",
    "describe",
    "fail",
]

MAX_SEED = 2**63 - 1
"""The largest seed every consumer accepts (torch generators take signed 64-bit seeds)."""


def describe(value: Any) -> str:
    """``value`` as an error message shows it: its repr, cut short, with the type when that is the problem."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def fail(error: type[Exception], name: str, expected: str, value: Any) -> NoReturn:
    """Raise ``error("<name> must be <expected>, got <value>")``; a TypeError also names the type."""
    shown = describe(value)
    if error is TypeError:
        shown = f"{type(value).__name__} {shown}"
    raise error(f"{name} must be {expected}, got {shown}")


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        fail(TypeError, name, "a bool (True or False)", value)
    return value


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              expected: str | None = None) -> int:
    """An ``int`` (not a bool) in ``[minimum, maximum]``; numpy integers are accepted and returned as ``int``."""
    expected = expected or _int_range(minimum, maximum)
    if isinstance(value, bool) or not isinstance(value, int) and not _is_numpy_integer(value):
        fail(TypeError, name, expected, value)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        fail(ValueError, name, expected, value)
    return value


def check_number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None) -> float:
    """A finite real number (not a bool) in ``[minimum, maximum]`` and ``> above``; returned as ``float``."""
    parts = []
    if above is not None:
        parts.append(f"> {above:g}")
    if minimum is not None and maximum is not None:
        parts.append(f"in [{minimum:g}, {maximum:g}]")
    elif minimum is not None:
        parts.append(f">= {minimum:g}")
    elif maximum is not None:
        parts.append(f"<= {maximum:g}")
    expected = "a finite number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
        fail(TypeError, name, expected, value)
    value = float(value)
    if (not math.isfinite(value) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum) or (above is not None and value <= above)):
        fail(ValueError, name, expected, value)
    return value


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed every consumer accepts: an int in ``[0, 2**63 - 1]``."""
    return check_int(value, name, minimum=0, maximum=MAX_SEED, expected="a non-negative int below 2**63")


def check_str(value: Any, name: str, *, expected: str = "a non-empty string") -> str:
    """A string with something besides white space."""
    if not isinstance(value, str):
        fail(TypeError, name, expected, value)
    if not value.strip():
        fail(ValueError, name, expected, value)
    return value


def check_one_line(value: Any, name: str, *, expected: str = "a non-empty single-line string") -> str:
    """A non-empty string without line breaks or other control characters (it goes into a prompt or a path)."""
    check_str(value, name, expected=expected)
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        fail(ValueError, name, expected, value)
    return value


def check_choice(value: Any, name: str, choices: Collection[Any], *, optional: bool = False) -> Any:
    """One of ``choices`` (compared with ``==``), or also ``None`` when ``optional``."""
    if optional and value is None:
        return None
    if value not in choices:
        fail(ValueError, name, ("None or " if optional else "") + "one of " + ", ".join(repr(c) for c in choices),
             value)
    return value


def check_str_sequence(value: Any, name: str, *, expected: str = "a non-empty list of non-empty strings"
                       ) -> tuple[str, ...]:
    """A list or tuple of non-empty strings (a lone string is refused: it would iterate by character)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        fail(TypeError, name, expected, value)
    items = tuple(value)
    if not items:
        fail(ValueError, name, expected, value)
    for item in items:
        if not isinstance(item, str):
            fail(TypeError, name, expected, value)
        if not item.strip():
            fail(ValueError, name, expected, value)
    return items


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum == 1 and maximum is None:
        return "a positive int"
    if minimum == 0 and maximum is None:
        return "a non-negative int"
    if minimum is not None and maximum is not None:
        return f"an int in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"an int >= {minimum}"
    if maximum is not None:
        return f"an int <= {maximum}"
    return "an int"


def _is_numpy_integer(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iu"


def _is_numpy_number(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iuf"
