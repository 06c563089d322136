"""Methods of making synthetic images, behind one seam: ``list_methods()``, ``get_method(name)``.

Diff-II is ``"diff-ii"``. A method is a :class:`Method` subclass in a module of its
own with a config (a :class:`MethodConfig`); registering one is a line in
:data:`METHOD_MODULES`. The store, the preparation path, the wrapper, the Hub builder,
the command line and the report take any registered method.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

from diffii_datasets import _checks
from diffii_datasets._lazy import lazy_exports

if TYPE_CHECKING:
    from diffii_datasets._knobs import Knob
    from diffii_datasets.methods.base import Method

METHOD_MODULES = {
    "diff-ii": "diffii_datasets.methods.diff_ii:DiffII",
    "real-filter": "diffii_datasets.methods.real_filter:RealFilter",
    "real-guidance": "diffii_datasets.methods.edit_methods:RealGuidance",
    "real-mix": "diffii_datasets.methods.edit_methods:RealMix",
    "da-fusion": "diffii_datasets.methods.edit_methods:DAFusion",
    "diff-aug": "diffii_datasets.methods.edit_methods:DiffAug",
    "diff-mix": "diffii_datasets.methods.edit_methods:DiffMix",
    "real-gen": "diffii_datasets.methods.real_gen:RealGen",
}
"""Every registered method: its name and where its class is (``module:class``), one line each; the baselines in
the order of the paper's tables (Table 1's rows, then Table 2's Real-Gen)."""

_EXPORTS = {
    "diffii_datasets.methods.base": ("ClassJob", "ImageStage", "Method"),
    "diffii_datasets.methods.config": ("MethodConfig", "Part"),
}
_getattr, _dir, _names = lazy_exports(__name__, _EXPORTS)
__all__ = ["METHOD_MODULES", "all_knobs", "get_method", "list_methods", *_names]
_INSTANCES: dict[str, Method] = {}


def __getattr__(name: str):
    return _getattr(name)


def __dir__() -> list[str]:
    return sorted(__all__)


def list_methods() -> list[str]:
    """The names of the registered methods, in registration order (loads none of them)."""
    return list(METHOD_MODULES)


def get_method(name: str) -> Method:
    """The registered method called ``name``; ``ValueError`` listing the methods otherwise."""
    _checks.check_choice(name, "method", METHOD_MODULES)
    if name not in _INSTANCES:
        module, _, cls = METHOD_MODULES[name].partition(":")
        method = getattr(importlib.import_module(module), cls)()
        if method.name != name or method.config_class.method != name:
            raise RuntimeError(f"{METHOD_MODULES[name]} is registered as {name!r} but calls itself "
                               f"{method.name!r} (config: {method.config_class.method!r})")
        _INSTANCES[name] = method
    return _INSTANCES[name]


def all_knobs() -> list[Knob]:
    """Every knob of the registered methods' configs, once per name: what the command line and the Hub builder
    accept, each method taking its own. A name the methods explain differently gets each meaning, labelled with
    its methods (the largest group, when every method has the knob, last as "the other methods"); parsing is
    the first declaration's."""
    found: dict[str, Knob] = {}
    helps: dict[str, dict[str, list[str]]] = {}
    for name in list_methods():
        for item in get_method(name).config_class.knobs():
            found.setdefault(item.name, item)
            helps.setdefault(item.name, {}).setdefault(item.help, []).append(name)
    return [dataclasses.replace(item, help=_merged_help(helps[item.name])) for item in found.values()]


def _merged_help(helps: dict[str, list[str]]) -> str:
    if len(helps) == 1:
        return next(iter(helps))
    largest = max(helps, key=lambda text: len(helps[text]))
    if sum(len(methods) for methods in helps.values()) < len(METHOD_MODULES):
        largest = None  # some method lacks the knob: "the other methods" would name it
    parts = [f"{', '.join(methods)}: {text}" for text, methods in helps.items() if text != largest]
    return "; ".join(parts + ([f"the other methods: {largest}"] if largest else []))
