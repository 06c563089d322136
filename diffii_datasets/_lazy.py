"""Lazy package exports: a package's public names load their module on first use (as timm's readers do).

A package ``__init__`` declares ``{module: (name, ...)}`` and takes from
:func:`lazy_exports` its module-level ``__getattr__``, ``__dir__`` and ``__all__``,
so ``import diffii_datasets.diffusion`` costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]], moved: Mapping[str, str] | None = None
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: each name of ``exports`` loads from its module.

    ``moved``: names of earlier versions, ``{old name: "new.module:new_name"}``, which still load,
    each warning once with its new spelling (:func:`~diffii_datasets._deprecated.moved_names`).
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in module_of:
            return getattr(importlib.import_module(module_of[name]), name)
        if moved and name in moved:
            from diffii_datasets._deprecated import moved_names

            return moved_names(package, moved)(name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(module_of)

    return __getattr__, __dir__, sorted(module_of)
