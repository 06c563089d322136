"""The built-in suffix families and which one a metaclass belongs to."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BUILTIN_FAMILIES", "GENERIC_FAMILY", "family_for_metaclass", "resolve_family"]

GENERIC_FAMILY = "generic"
# Family -> words a metaclass may use for it (matched word by word, plural "s" allowed).
BUILTIN_FAMILIES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "bird": ("bird",),
    "aircraft": ("aircraft", "airplane", "aeroplane", "plane", "airliner", "jet"),
    "car": ("car", "automobile", "vehicle"),
    "animal": ("animal", "pet", "dog", "cat", "puppy", "kitten"),
    "flower": ("flower", "plant", "blossom"),
})


def family_for_metaclass(metaclass: str) -> str:
    """The built-in family whose aliases a word of ``metaclass`` matches, else :data:`GENERIC_FAMILY`."""
    words = re.findall(r"[a-z]+", metaclass.lower())
    for word in words:
        for family, aliases in BUILTIN_FAMILIES.items():
            if word in aliases or (word.endswith("s") and word[:-1] in aliases):
                return family
    return GENERIC_FAMILY


def resolve_family(name: str) -> str:
    """The family a name of :data:`BUILTIN_FAMILIES`, one of its aliases or ``"generic"`` stands for."""
    key = name.strip().lower()
    if key == GENERIC_FAMILY or key in BUILTIN_FAMILIES:
        return key
    for family, aliases in BUILTIN_FAMILIES.items():
        if key in aliases:
            return family
    known = ", ".join(sorted([*BUILTIN_FAMILIES, GENERIC_FAMILY]))
    raise ValueError(f"unknown built-in suffix family {name!r}; expected one of {known} "
                     f"or an alias ({', '.join(a for aliases in BUILTIN_FAMILIES.values() for a in aliases)})")
