"""diffii-datasets: Diff-II diffusion augmentation for data-scarce image classification.

Names are imported lazily, so ``import diffii_datasets`` stays cheap and the
diffusion libraries load only when something uses them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DiffIIAugmented": "diffii_datasets.augmented",
    "SyntheticDataset": "diffii_datasets.augmented",
    "DiffIIConfig": "diffii_datasets.config",
    "SyntheticStore": "diffii_datasets.store",
    "load": "diffii_datasets.hf.builder",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffii_datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
