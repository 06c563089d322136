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
    "diffii_datasets.datasets.settings": (
        "FAMILIES", "Family", "LONG_TAIL_PROFILES", "Setting", "custom_setting", "get_setting", "list_settings",
    ),
    "diffii_datasets.datasets.loading": (
        "FLOWER_LT_SPLIT_SEED", "SUBSETS", "SettingSplits", "load_family", "load_family_pools", "load_setting",
    ),
    "diffii_datasets.datasets.listed": ("listed_subset",),
    "diffii_datasets.datasets.cub": ("CUB200",),
    "diffii_datasets.datasets.torchvision_adapters": (
        "FGVCAircraft", "Flowers102", "OxfordIIITPet", "STANFORD_CARS_MANUAL_DOWNLOAD", "StanfordCars",
    ),
    "diffii_datasets.datasets.labeled": ("LabeledConcat", "LabeledSubset"),
    "diffii_datasets.datasets.sampling": ("few_shot", "long_tail", "long_tail_counts", "split_per_class"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
