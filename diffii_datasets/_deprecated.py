"""Names of earlier versions that moved: they keep working for a while, each warning once with its new spelling.

:data:`MOVED_MODULES` maps a module path of 0.2 to where its names are now; importing the
old path gives a module whose attributes load the new ones (:func:`install` adds the
import hook, which ``diffii_datasets/__init__.py`` does). :func:`moved_names` gives a
module-level ``__getattr__`` for names that left a module that still exists.
Pure Python.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["DiffIIDeprecationWarning", "MOVED_MODULES", "install", "moved_names", "warn_renamed"]


class DiffIIDeprecationWarning(FutureWarning):
    """A name of an earlier diffii-datasets version was used: the message gives its new spelling."""


_IMAGE_DATASETS = ("CUB200", "FGVCAircraft", "Flowers102", "LabeledConcat", "LabeledSubset", "OxfordIIITPet",
                   "STANFORD_CARS_MANUAL_DOWNLOAD", "StanfordCars", "few_shot", "listed_subset", "long_tail",
                   "long_tail_counts", "split_per_class")
_SETTINGS = ("FAMILIES", "FLOWER_LT_SPLIT_SEED", "Family", "LONG_TAIL_PROFILES", "SUBSETS", "Setting",
             "SettingSplits", "custom_setting", "get_setting", "list_settings", "load_family", "load_family_pools",
             "load_setting")

MOVED_MODULES: Mapping[str, str | Mapping[str, str]] = {
    "diffii_datasets.data": "diffii_datasets.base_dataset",
    "diffii_datasets.datasets": {**{name: f"diffii_datasets.image_datasets:{name}" for name in _IMAGE_DATASETS},
                                 **{name: f"diffii_datasets.settings:{name}" for name in _SETTINGS}},
    "diffii_datasets.datasets.settings": "diffii_datasets.settings.base",
    "diffii_datasets.datasets.loading": "diffii_datasets.settings.loading",
    "diffii_datasets.datasets.sampling": "diffii_datasets.image_datasets.sampling",
    "diffii_datasets.datasets.cub": "diffii_datasets.image_datasets.cub",
    "diffii_datasets.datasets.labeled": "diffii_datasets.image_datasets.labeled",
    "diffii_datasets.datasets.listed": "diffii_datasets.image_datasets.listed",
    "diffii_datasets.datasets.torchvision_adapters": "diffii_datasets.image_datasets.torchvision_adapters",
    "diffii_datasets.store_header": "diffii_datasets.store.header",
    "diffii_datasets.store_records": "diffii_datasets.store.checks",
    "diffii_datasets.store_upkeep": "diffii_datasets.store.upkeep",
    "diffii_datasets.store_writer": "diffii_datasets.store.writer",
    "diffii_datasets.diffusion.suffixes.families": {
        "BUILTIN_FAMILIES": "diffii_datasets.diffusion.suffixes.builtin_lists:BUILTIN_LISTS",
        "GENERIC_FAMILY": "diffii_datasets.diffusion.suffixes.builtin_lists:GENERIC_LIST",
        "family_for_metaclass": "diffii_datasets.diffusion.suffixes.builtin_lists:list_for_metaclass",
        "resolve_family": "diffii_datasets.diffusion.suffixes.builtin_lists:resolve_list",
    },
    "diffii_datasets.synthesis": {
        "SynthesisJob": "diffii_datasets.job:PreparationJob",
        "SynthesisReport": "diffii_datasets.prepare:PreparationReport",
        "load_generation_pipeline": "diffii_datasets.prepare:load_generation_pipeline",
        "pending_classes": "diffii_datasets.prepare:pending_classes",
        "synthesize": "diffii_datasets.prepare:fill_store",
    },
}
"""Every module path of diffii-datasets 0.2 that moved: to a module (same names), or name by name
(``"module:name"``)."""

_warned: set[str] = set()


def _warn_once(old: str, new: str) -> None:
    if old not in _warned:
        _warned.add(old)
        warnings.warn(f"{old} is deprecated and will be removed; use {new}", DiffIIDeprecationWarning,
                      stacklevel=3)


def warn_renamed(old: str, new: str) -> None:
    """Warn, once per process, that ``old`` (a method or attribute of 0.2) is called ``new`` now."""
    _warn_once(old, new)


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _forwarder(old_module: str, target: str | Mapping[str, str]) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if isinstance(target, str):
            new = f"{target}:{name}"
        elif name in target:
            new = target[name]
        else:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        value = _load(new)
        _warn_once(f"{old_module}.{name}", new.replace(":", "."))
        return value

    return __getattr__


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for names that left ``module``: ``{old name: "new.module:new_name"}``."""
    return _forwarder(module, moved)


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = ModuleType(spec.name, f"Deprecated: moved in diffii-datasets 0.3 (see {__name__}.MOVED_MODULES)")
        module.__path__ = []  # a package, so that its old submodules import too
        module.__getattr__ = _forwarder(spec.name, MOVED_MODULES[spec.name])  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: each name warns as it is used."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, _AliasLoader())
        return None


def install() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
