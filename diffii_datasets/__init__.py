"""diffii-datasets: Diff-II diffusion augmentation for data-scarce image classification.

Names are imported lazily, so ``import diffii_datasets`` stays cheap and the
diffusion libraries load only when something uses them.
"""

from diffii_datasets import _deprecated
from diffii_datasets._lazy import lazy_exports

__version__ = "0.3.0.dev0"

_EXPORTS = {
    "diffii_datasets.augmented": ("DiffIIAugmented", "SyntheticDataset"),
    "diffii_datasets.config": ("DiffIIConfig",),
    "diffii_datasets.methods": ("get_method", "list_methods"),
    "diffii_datasets.store": ("SyntheticRecord", "SyntheticStore"),
    "diffii_datasets.hf.builder": ("load",),
}
__getattr__, __dir__, _names = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_names]
_deprecated.install()
