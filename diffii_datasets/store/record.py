"""``SyntheticRecord``: the one definition of where a synthetic image came from.

Every consumer reads provenance through this type: the methods make records, the
store writes them as the lines of a class's ``metadata.jsonl`` and checks them as
it reads them back, the wrapper serves them, the Hub features and rows are derived
from :data:`PROVENANCE` and the quality report summarises them.

A line holds the four fields every record has (``index``, ``label``, ``file``,
``sha256``) and the provenance fields its method writes (:attr:`Method.record_fields
<diffii_datasets.methods.Method.record_fields>`); a field a line does not hold has its
default. Pure Python.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CORE_FIELDS", "PROVENANCE", "SyntheticRecord", "neutral_provenance"]

CORE_FIELDS = ("file", "index", "label", "sha256")
"""What every line of ``metadata.jsonl`` holds, whatever the method."""

PROVENANCE = {
    "source_indices": "indices",
    "lam": "float",
    "suffix": "text",
    "seed": "int",
    "strength": "float",
    "target": "class",
    "score": "float",
}
"""The provenance fields and their kind (``indices``: a list of real-image indices of the class; ``class``: a
class index or none); the Hub features are derived from this table."""


@dataclass(frozen=True)
class SyntheticRecord:
    """Where one synthetic image came from.

    Attributes:
        index: its position in its class (``images/<index>``), in generation order.
        label: the class it is filed under: the class it was made for, or for an
            inter-class method the class of its source image.
        source_indices: the real images of that class it was made from (Diff-II: the
            interpolated pair, sorted; image-to-image methods: the edited image; ``()``
            when it started from noise or text alone).
        lam: Diff-II's interpolation strength, >= 0, of the pair in ``source_indices`` (``None`` when
            it started from noise).
        suffix: the suffix of Diff-II's first denoising stage (``""`` when none ran).
        seed: the class seed its random draws came from.
        strength: an image-to-image method's strength (the fraction of the noise schedule run).
        target: the class whose prompt it was denoised with, when not ``label`` (inter-class
            methods; their soft label weighs ``label`` and ``target``).
        score: a filter's score of the image (real-filter: the CLIP probability of the
            image holding the metaclass).
        file: the image file, relative to the class directory (set by the store).
        sha256: the image file's SHA-256 (set by the store).
    """

    index: int
    label: int
    source_indices: tuple[int, ...] = ()
    lam: float | None = None
    suffix: str = ""
    seed: int | None = None
    strength: float | None = None
    target: int | None = None
    score: float | None = None
    file: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_indices", tuple(self.source_indices))

    def filed(self, label: int, file: str, sha256: str) -> SyntheticRecord:
        """This record as the store files it: under class ``label``, as ``file`` with its checksum."""
        return dataclasses.replace(self, label=label, file=file, sha256=sha256)

    def to_dict(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The JSON form: the core fields and ``fields`` (default: every provenance field), lists for tuples."""
        names = CORE_FIELDS + tuple(PROVENANCE if fields is None else fields)
        return {name: list(value) if isinstance(value := getattr(self, name), tuple) else value for name in names}

    def to_line(self, fields: Sequence[str]) -> bytes:
        """A line of ``metadata.jsonl``: the core fields and ``fields``, keys sorted."""
        return json.dumps(self.to_dict(fields), sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_line(cls, line: bytes, *, index: int, label: int, file: str, sha256: str | None, real_count: int,
                  num_classes: int) -> SyntheticRecord:
        """Line ``index`` of a class's ``metadata.jsonl`` (without its newline), checked.

        It must be a JSON object in the form :meth:`to_line` writes, of image ``index``
        of class ``label``, naming ``file`` with the checksum ``sha256`` its commit record
        gives it; ``source_indices`` must be real images of the class, ``target`` a class.
        ``ValueError`` says what is wrong (as a sentence that follows "line N").
        """
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise ValueError(f"is not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise ValueError(f"must be a JSON object, found {json_type(value)}")
        absent = [name for name in CORE_FIELDS if name not in value]
        if absent:
            raise ValueError(f"lacks {listed(absent)}")
        unknown = sorted(set(value) - set(CORE_FIELDS) - set(PROVENANCE))
        if unknown:
            raise ValueError(f"has the unknown field{'s' if len(unknown) > 1 else ''} {listed(unknown)}")
        if json.dumps(value, sort_keys=True).encode("utf-8") != line:
            raise ValueError("is not in the form diffii-datasets writes (edited or damaged)")
        expected = {"index": index, "label": label, "file": file}
        for name, wanted in expected.items():
            if value[name] != wanted or (name != "file" and not is_int(value[name])):
                raise ValueError(f"has {name} {value[name]!r}, expected {wanted!r}")
        if value["sha256"] != sha256:
            raise ValueError(f"gives {file} another checksum than class.json")
        for name, kind in PROVENANCE.items():
            if name in value and not _valid(value[name], kind, real_count, num_classes):
                raise ValueError(f"has {name} {value[name]!r}, expected {_EXPECTED[kind]}")
        strength = value.get("strength")
        if strength is not None and not 0 <= strength <= 1:
            raise ValueError(f"has strength {strength!r}, expected a number in [0, 1] or null")
        lam, sources = value.get("lam"), value.get("source_indices", [])
        if lam is not None and not (lam >= 0 and len(sources) == 2 and sources[0] < sources[1]):
            raise ValueError(f"has lam {lam!r} with source_indices {sources!r}, expected an interpolation strength "
                             ">= 0 of a pair of two different real images (sorted)")
        return cls(**value)


def _valid(value: Any, kind: str, real_count: int, num_classes: int) -> bool:
    if kind == "indices":
        return isinstance(value, list) and all(is_int(i) and 0 <= i < real_count for i in value)
    if kind == "text":
        return isinstance(value, str)
    if value is None:
        return True
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "int":
        return is_int(value) and value >= 0
    return is_int(value) and 0 <= value < num_classes  # "class"


_EXPECTED = {"indices": "indices of the class's real images", "text": "a string", "float": "a number or null",
             "int": "a non-negative int or null", "class": "a class index or null"}


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def listed(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(name) for name in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def neutral_provenance() -> Mapping[str, Any]:
    """The provenance of a real image: every field's default."""
    defaults = SyntheticRecord(index=0, label=0)
    return {name: list(getattr(defaults, name)) if kind == "indices" else getattr(defaults, name)
            for name, kind in PROVENANCE.items()}
