"""The one schema of a Diff-II dataset on the Hugging Face side, and its check.

Every split (real ``train`` and ``test``, generated ``synthetic``) has the same
columns, so splits concatenate and a classifier can tell real from synthetic rows:

- ``image`` (``Image``) and ``label`` (``ClassLabel`` with the class names);
- ``is_synthetic`` (``bool``);
- the provenance of synthetic rows, one column per field of
  :class:`~diffii_datasets.store.SyntheticRecord` (derived from
  :data:`~diffii_datasets.store.record.PROVENANCE`): ``source_indices`` (indices among the
  class's real images in the ``train`` split), ``lam``, ``suffix``, ``seed``, ``strength``,
  ``target`` (a class index, for inter-class methods) and ``score``. Real rows hold each
  field's default (``[]``, ``None`` or ``""``).

Exports of diffii-datasets 0.2 lack the columns added since (``strength``, ``target``,
``score``): they load, the missing columns read as their defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import pyarrow as pa

from diffii_datasets.store.record import PROVENANCE
from diffii_datasets.store.record import neutral_provenance as record_defaults

try:  # datasets >= 4
    from datasets import List
except ImportError:  # datasets 3: Sequence of a plain feature is a list
    from datasets import Sequence as List

__all__ = ["COLUMNS_SINCE_0_2", "SPLITS", "check_features", "diffii_features", "neutral_provenance",
           "portable_arrow_schema"]

SPLITS = ("train", "synthetic", "test")
COLUMNS_SINCE_0_2 = ("strength", "target", "score")
"""Provenance columns an export of diffii-datasets 0.2 does not have."""

_KINDS = {"indices": List(datasets.Value("int32")), "float": datasets.Value("float64"),
          "text": datasets.Value("string"), "int": datasets.Value("int64"), "class": datasets.Value("int64")}
"""The Hub feature of each kind of provenance field."""


def diffii_features(class_names: Sequence[str]) -> datasets.Features:
    """The features of every split, for a dataset with these classes (in label order)."""
    names = [str(name) for name in class_names]
    if not names:
        raise ValueError("class_names must hold at least one class name")
    return datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=names),
        "is_synthetic": datasets.Value("bool"),
        **{field: _KINDS[kind] for field, kind in PROVENANCE.items()},
    })


def portable_arrow_schema(features: datasets.Features) -> pa.Schema:
    """The Arrow schema of ``features`` with Hugging Face metadata that ``datasets`` 2.x to 5.x all read.

    ``datasets`` 4+ records a list column as ``{"_type": "List"}`` in the schema
    metadata of the Parquet files it writes, a type 2.x and 3.x do not know: they then
    refuse the file (``load_dataset("parquet", data_files=...)``). Recorded as
    ``{"_type": "Sequence"}``, the spelling older versions wrote and newer ones still
    read (as ``List``), the same column reads back as the same feature everywhere.
    """
    def older_spelling(value: Any) -> Any:
        if isinstance(value, list):
            return [older_spelling(item) for item in value]
        if not isinstance(value, dict):
            return value
        value = {key: older_spelling(item) for key, item in value.items()}
        # Only a list of a typed feature: an old Sequence of a dict meant a dict of lists, another Arrow type.
        if value.get("_type") == "List" and "_type" in value.get("feature", {}):
            value["_type"] = "Sequence"
        return value

    metadata = {"info": {"features": older_spelling(features.to_dict())}}
    return features.arrow_schema.with_metadata({"huggingface": json.dumps(metadata)})


def neutral_provenance() -> dict[str, Any]:
    """The provenance columns of a real row: not synthetic, every field at its default."""
    return {"is_synthetic": False, **record_defaults()}


def check_features(features: Mapping[str, Any] | None, where: str) -> list[str]:
    """Check that ``features`` are a Diff-II schema and return its class names.

    Raises ``ValueError`` naming ``where`` (a file or split) and each column that is
    missing, extra or of another type, so a downloaded set built by something else
    (or by an incompatible version) is refused instead of half-loaded.
    """
    if features is None:
        raise ValueError(f"{where} carries no Hugging Face features; expected the Diff-II columns "
                         f"{sorted(diffii_features(['x']))}")
    label = features.get("label")
    if not isinstance(label, datasets.ClassLabel) or not label.names:
        raise ValueError(f"{where}: column 'label' must be a ClassLabel with class names, got {label!r}")
    expected = diffii_features(label.names)
    problems = [f"missing column {name!r} ({expected[name]})" for name in expected
                if name not in features and name not in COLUMNS_SINCE_0_2]
    problems += [f"unexpected column {name!r}" for name in features if name not in expected]
    problems += [f"column {name!r} is {features[name]}, expected {expected[name]}"
                 for name in expected if name in features and features[name] != expected[name]]
    if problems:
        raise ValueError(f"{where} does not have the Diff-II features: {'; '.join(problems)}")
    return list(label.names)
