"""The paper's dataset families and settings: what ``cub-5shot`` is, and loading it.

- :func:`list_settings`, :func:`get_setting`, :data:`FAMILIES` (no torch needed): the
  families as declared in :mod:`diffii_datasets.settings.families` and the paper's 14
  settings;
- :func:`load_setting` / :func:`load_family`: a setting's training subset, metaclass and
  test set, read from a root folder in torchvision's layouts.

The datasets and samplers themselves are :mod:`diffii_datasets.image_datasets`. Names load lazily.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.settings.base": (
        "FAMILIES", "Family", "LONG_TAIL_PROFILES", "SPLIT_RATIO_SOURCES", "Setting", "custom_setting", "get_setting",
        "list_settings",
    ),
    "diffii_datasets.settings.loading": (
        "FLOWER_LT_SPLIT_SEED", "SUBSETS", "SettingSplits", "load_family", "load_family_pools", "load_setting",
    ),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
