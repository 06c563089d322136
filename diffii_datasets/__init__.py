"""diffii-datasets: Diff-II diffusion augmentation for data-scarce image classification.

Names are imported lazily, so ``import diffii_datasets`` stays cheap and the
diffusion libraries load only when something uses them.
"""

from diffii_datasets._lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "diffii_datasets.augmented": ("DiffIIAugmented", "SyntheticDataset"),
    "diffii_datasets.config": ("DiffIIConfig",),
    "diffii_datasets.store": ("SyntheticStore",),
    "diffii_datasets.hf.builder": ("load",),
}
__getattr__, __dir__, _names = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_names]
