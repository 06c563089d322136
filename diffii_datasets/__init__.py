"""diffii-datasets: Diff-II diffusion augmentation for data-scarce image classification.

Names are imported lazily, so ``import diffii_datasets`` stays cheap and the
diffusion libraries load only when something uses them.
"""

from diffii_datasets._lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "DiffIIAugmented": "diffii_datasets.augmented",
    "SyntheticDataset": "diffii_datasets.augmented",
    "DiffIIConfig": "diffii_datasets.config",
    "SyntheticStore": "diffii_datasets.store",
    "load": "diffii_datasets.hf.builder",
}
__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
