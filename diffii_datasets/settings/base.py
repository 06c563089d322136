"""Dataset families and the paper's settings, as data: the one place that says what ``cub-5shot`` is.

Two levels of names:

- families (:data:`FAMILIES`): ``cub``, ``aircraft``, ``cars``, ``pet`` (few-shot: a shot
  count) and ``cub-lt``, ``flower-lt`` (long-tail: an imbalance factor). Each is one
  :class:`Family` declaration in a file of :mod:`diffii_datasets.settings.families`: its
  loader, classes, metaclass, splits, card, classifier recipe, suffix list and the name the
  authors' archives use; adding a family is a new file there, one registration line and a card;
- settings (:func:`list_settings`): the paper's 14 fixed combinations, ``cub-5shot`` ...
  ``pet-10shot``, ``cub-lt-if100`` ... ``flower-lt-if10``; :func:`get_setting` looks one
  up by name for the loaders, the Hub builder and the command line.

This module imports no torch: the command line lists the settings in its help
without loading any dataset code. Loading is :mod:`diffii_datasets.settings.loading`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks

if TYPE_CHECKING:
    from diffii_datasets.config import DiffIIConfig
    from diffii_datasets.methods.config import MethodConfig
    from diffii_datasets.settings.loading import SettingSplits

__all__ = ["FAMILIES", "KINDS", "LONG_TAIL_PROFILES", "SPLIT_RATIO_SOURCES", "Family", "Setting", "custom_setting",
           "get_setting", "list_settings", "official_splits"]

SPLIT_RATIO_SOURCES = ("paper", "scripts")
"""Where a setting's split ratio comes from: the paper's text, or the authors' ``scripts/run.sh``."""
LONG_TAIL_PROFILES = ("exponential", "diffmix")
"""How a long-tail subset's class sizes fall off (see :func:`~diffii_datasets.image_datasets.long_tail`)."""
KINDS = ("few-shot", "long-tail")

PoolLoader = Callable[[Path, Any, Any, Any, bool], tuple[Any, Any]]
"""``(root, transform, test_transform, target_transform, download) -> (training pool, test set)``."""


@dataclass(frozen=True)
class Family:
    """A dataset as the paper uses it, declared once.

    Attributes:
        name: how settings and commands name it (``"cub"``; settings ``cub-5shot``).
        kind: ``"few-shot"`` (a shot count) or ``"long-tail"`` (an imbalance factor).
        metaclass: the super-category word of the prompts (``"bird"``).
        num_classes: how many classes the dataset has.
        train_split, test_split: what the training pool and the test set are, in words.
        published: the paper's shot counts or imbalance factors.
        load_pools: reads the training pool and the test set (imports its dataset code when called).
        classifier_lr: the published classifier learning rate per backbone (few-shot; the long-tail
            recipe is one for all families).
        paper_column: the dataset's column label in the paper's tables (Table 1 prints ``Car``).
        authors_name: the dataset's name in the authors' scripts and released archives (``car``).
        suffix_list: the built-in suffix list of its metaclass.
        scripts_split_ratio: the split ratio the authors' ``scripts/run.sh`` made this family's few-shot
            sets with, when it is not the paper's (``None``: the paper's value).
        card: the ``hub_cards/`` template of its Hub dataset card (default: its name).
    """

    name: str
    kind: str
    metaclass: str
    num_classes: int
    train_split: str
    test_split: str
    published: tuple[float, ...]
    load_pools: PoolLoader = field(repr=False, compare=False)
    paper_column: str
    authors_name: str
    suffix_list: str
    classifier_lr: Mapping[str, float] = field(default_factory=dict)
    scripts_split_ratio: float | None = None
    card: str = ""

    def __post_init__(self) -> None:
        _checks.check_choice(self.kind, "kind", KINDS)
        object.__setattr__(self, "classifier_lr", MappingProxyType(dict(self.classifier_lr)))
        if not self.card:
            object.__setattr__(self, "card", self.name)


def official_splits(dataset: str, train_split: str, test_split: str) -> PoolLoader:
    """The loader of a family whose pool and test set are two official splits of ``dataset`` (a class of
    :mod:`diffii_datasets.image_datasets`, imported when the loader runs)."""

    def load_pools(root: Path, transform: Any, test_transform: Any, target_transform: Any,
                   download: bool) -> tuple[Any, Any]:
        from diffii_datasets import image_datasets

        cls = getattr(image_datasets, dataset)
        train = cls(root, train_split, transform=transform, target_transform=target_transform, download=download)
        test = cls(root, test_split, transform=test_transform, target_transform=target_transform)
        return train, test

    return load_pools


@functools.cache
def _families() -> Mapping[str, Family]:
    from diffii_datasets.settings.families import FAMILY_MODULES

    found = {}
    for module in FAMILY_MODULES:
        family = importlib.import_module(f"diffii_datasets.settings.families.{module}").FAMILY
        if family.name in found:
            raise RuntimeError(f"two families are called {family.name!r}")
        found[family.name] = family
    return MappingProxyType(found)


class _Families(Mapping[str, Family]):
    """:data:`FAMILIES`: the registered families by name, read from their declarations on first use."""

    def __getitem__(self, name: str) -> Family:
        return _families()[name]

    def __iter__(self):
        return iter(_families())

    def __len__(self) -> int:
        return len(_families())

    def __repr__(self) -> str:
        return f"FAMILIES({', '.join(self)})"


FAMILIES: Mapping[str, Family] = _Families()
"""Every registered dataset family by name (:mod:`diffii_datasets.settings.families`)."""


@dataclass(frozen=True)
class Setting:
    """One of the paper's settings: a family with a shot count or an imbalance factor."""

    name: str
    family: str
    metaclass: str
    num_classes: int
    train_split: str
    test_split: str
    shots: int | None = None
    imbalance_factor: float | None = None

    @property
    def long_tail(self) -> bool:
        return self.imbalance_factor is not None

    @property
    def split_ratio(self) -> float:
        """The paper's two-stage split ratio for this setting: 0.3 (5-shot), 0.1 (10-shot), 1.0 (long-tail).

        The authors' ``scripts/run.sh`` made the CUB and Aircraft few-shot sets at 1.0 instead
        (``ours_1.0_5.0``; :attr:`scripts_split_ratio`); ``diffii_config(split_ratio_from="scripts")``
        uses it.
        """
        if self.long_tail:
            return 1.0
        return 0.3 if self.shots <= 5 else 0.1

    @property
    def scripts_split_ratio(self) -> float:
        """The split ratio the authors' ``scripts/run.sh`` used for this setting (CUB and Aircraft few-shot:
        1.0; the others: the paper's)."""
        declared = self.family_spec.scripts_split_ratio
        return self.split_ratio if declared is None else declared

    def default_knobs(self, split_ratio_from: str = "paper") -> dict[str, Any]:
        """The ``DiffIIConfig`` knobs this setting sets unasked: its family's built-in suffix list, its split
        ratio (the paper's text, or with ``split_ratio_from="scripts"`` the authors' scripts'), and for the long
        tail class-balanced concept learning (``concept_balance_classes``, as the published long-tail runs)."""
        _checks.check_choice(split_ratio_from, "split_ratio_from", SPLIT_RATIO_SOURCES)
        ratio = self.split_ratio if split_ratio_from == "paper" else self.scripts_split_ratio
        knobs: dict[str, Any] = {"suffixes": f"builtin:{self.family_spec.suffix_list}", "split_ratio": ratio}
        if self.long_tail:
            knobs["concept_balance_classes"] = True
        return knobs

    def diffii_config(self, *, split_ratio_from: str = "paper", **knobs: Any) -> DiffIIConfig:
        """The paper's configuration for this setting (:meth:`default_knobs` over the defaults), then ``knobs``."""
        return self.method_config("diff-ii", split_ratio_from=split_ratio_from, **knobs)

    def method_config(self, method: str, *, preset: str = "paper", split_ratio_from: str = "paper",
                      **knobs: Any) -> MethodConfig:
        """``method``'s config for this setting: its ``preset`` (``"paper"``: its published defaults), this
        setting's :meth:`default_knobs` that the method declares (a baseline with concepts learns them
        class-balanced on a long tail too), then ``knobs``."""
        from diffii_datasets.methods import get_method

        cls = get_method(method).config_class
        return cls.preset(preset, **{**cls.declared(self.default_knobs(split_ratio_from)), **knobs})

    @property
    def family_spec(self) -> Family:
        """The :class:`Family` declaration of this setting's family."""
        return FAMILIES[self.family]

    def load(self, root: str | Path, seed: int = 0, **kwargs: Any) -> SettingSplits:
        """The training subset, metaclass and test set (``kwargs``: those of :func:`.loading.load_family`)."""
        from diffii_datasets.settings.loading import load_family

        return load_family(self.family, root, shots=self.shots, imbalance_factor=self.imbalance_factor, seed=seed,
                           **kwargs)


def list_settings() -> list[Setting]:
    """The paper's settings, in a stable order: few-shot (5 and 10 shots), then long-tail (IF 100, 20, 10)."""
    return [custom_setting(family.name, value) for family in FAMILIES.values() for value in family.published]


def get_setting(name: str) -> Setting:
    """The paper's setting called ``name`` (``"cub-5shot"``); ``ValueError`` listing the names otherwise."""
    for setting in list_settings():
        if setting.name == name:
            return setting
    names = ", ".join(s.name for s in list_settings())
    raise ValueError(f"setting must be one of {names}; got {name!r}. Other shot counts or imbalance factors: "
                     "load_family(<family>, root, shots=... or imbalance_factor=...)")


def custom_setting(family: str, value: float) -> Setting:
    """The setting of ``family`` with ``value`` shots (few-shot) or imbalance factor ``value`` (long-tail).

    Named like the paper's (``cub-7shot``, ``cub-lt-if50``); the paper's own values give its settings.
    """
    spec = FAMILIES.get(family)
    if spec is None:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    common = dict(family=family, metaclass=spec.metaclass, num_classes=spec.num_classes,
                  train_split=spec.train_split, test_split=spec.test_split)
    if spec.kind == "few-shot":
        shots = _checks.check_int(value, "shots", minimum=1)
        return Setting(f"{family}-{shots}shot", shots=shots, **common)
    factor = _checks.check_number(value, "imbalance_factor", minimum=1)
    factor = int(factor) if factor.is_integer() else factor
    return Setting(f"{family}-if{factor:g}", imbalance_factor=factor, **common)
