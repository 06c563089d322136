"""The paper's datasets, samplers and settings (torchvision style).

- settings: :func:`list_settings`, :func:`get_setting`, :data:`FAMILIES` (no torch needed),
  and :func:`load_setting` / :func:`load_family` to load one;
- datasets: :class:`CUB200` (own loader) and thin adapters over torchvision's
  :class:`FGVCAircraft`, :class:`StanfordCars`, :class:`OxfordIIITPet`, :class:`Flowers102`
  that add ``targets``/``class_to_idx`` and stable ``sample_keys``;
- samplers: :func:`few_shot`, :func:`long_tail` (and :func:`long_tail_counts`,
  :func:`split_per_class`), returning a :class:`LabeledSubset`.

This package does not import the diffusion code. Names load lazily.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "FAMILIES": "diffii_datasets.datasets.settings",
    "Family": "diffii_datasets.datasets.settings",
    "LONG_TAIL_PROFILES": "diffii_datasets.datasets.settings",
    "Setting": "diffii_datasets.datasets.settings",
    "custom_setting": "diffii_datasets.datasets.settings",
    "get_setting": "diffii_datasets.datasets.settings",
    "list_settings": "diffii_datasets.datasets.settings",
    "FLOWER_LT_SPLIT_SEED": "diffii_datasets.datasets.loading",
    "SettingSplits": "diffii_datasets.datasets.loading",
    "load_family": "diffii_datasets.datasets.loading",
    "load_setting": "diffii_datasets.datasets.loading",
    "CUB200": "diffii_datasets.datasets.cub",
    "FGVCAircraft": "diffii_datasets.datasets.torchvision_adapters",
    "Flowers102": "diffii_datasets.datasets.torchvision_adapters",
    "OxfordIIITPet": "diffii_datasets.datasets.torchvision_adapters",
    "StanfordCars": "diffii_datasets.datasets.torchvision_adapters",
    "STANFORD_CARS_MANUAL_DOWNLOAD": "diffii_datasets.datasets.torchvision_adapters",
    "LabeledConcat": "diffii_datasets.datasets.labeled",
    "LabeledSubset": "diffii_datasets.datasets.labeled",
    "few_shot": "diffii_datasets.datasets.sampling",
    "long_tail": "diffii_datasets.datasets.sampling",
    "long_tail_counts": "diffii_datasets.datasets.sampling",
    "split_per_class": "diffii_datasets.datasets.sampling",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
