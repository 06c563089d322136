"""The built-in suffix lists (one per kind of subject: bird, aircraft, car, animal, flower, generic) and which
one a metaclass gets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BUILTIN_LISTS", "GENERIC_LIST", "list_for_metaclass", "resolve_list"]

GENERIC_LIST = "generic"
# List -> words a metaclass may use for it (matched word by word, plural "s" allowed).
BUILTIN_LISTS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "bird": ("bird",),
    "aircraft": ("aircraft", "airplane", "aeroplane", "plane", "airliner", "jet"),
    "car": ("car", "automobile", "vehicle"),
    "animal": ("animal", "pet", "dog", "cat", "puppy", "kitten"),
    "flower": ("flower", "plant", "blossom"),
})


def list_for_metaclass(metaclass: str) -> str:
    """The built-in list whose aliases a word of ``metaclass`` matches, else :data:`GENERIC_LIST`."""
    words = re.findall(r"[a-z]+", metaclass.lower())
    for word in words:
        for name, aliases in BUILTIN_LISTS.items():
            if word in aliases or (word.endswith("s") and word[:-1] in aliases):
                return name
    return GENERIC_LIST


def resolve_list(name: str) -> str:
    """The list a name of :data:`BUILTIN_LISTS`, one of its aliases or ``"generic"`` stands for."""
    key = name.strip().lower()
    if key == GENERIC_LIST or key in BUILTIN_LISTS:
        return key
    for list_name, aliases in BUILTIN_LISTS.items():
        if key in aliases:
            return list_name
    known = ", ".join(sorted([*BUILTIN_LISTS, GENERIC_LIST]))
    raise ValueError(f"unknown built-in suffix list {name!r}; expected one of {known} "
                     f"or an alias ({', '.join(a for aliases in BUILTIN_LISTS.values() for a in aliases)})")
