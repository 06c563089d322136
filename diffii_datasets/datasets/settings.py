"""The paper's settings by name, as data: the one place that says what ``cub-5shot`` is.

Two levels of names:

- families (:data:`FAMILIES`): ``cub``, ``aircraft``, ``cars``, ``pet`` (few-shot: a shot
  count) and ``cub-lt``, ``flower-lt`` (long-tail: an imbalance factor);
- settings (:func:`list_settings`): the paper's 14 fixed combinations, ``cub-5shot`` ...
  ``pet-10shot``, ``cub-lt-if100`` ... ``flower-lt-if10``; :func:`get_setting` looks one
  up by name for the loaders, the Hub builder and the command line.

Splits (the training subset is drawn from the first, evaluation uses the second):

======================  =============================================  ==========================
family                  training pool                                  test set
======================  =============================================  ==========================
cub, cub-lt             CUB-200-2011 ``train`` (5,994 images)          ``test`` (5,794)
aircraft                FGVC-Aircraft variants ``trainval`` (6,667)    ``test`` (3,333)
cars                    Stanford Cars ``train`` (8,144)                ``test`` (8,041)
pet                     Oxford-IIIT Pet ``trainval`` (3,680)           ``test`` (3,669)
flower-lt               half of every class of all 8,189 Flowers-102   the other half
                        images (official train + val + test pooled)
======================  =============================================  ==========================

This module imports no torch: the command line lists the settings in its help
without loading any dataset code. Loading is :mod:`diffii_datasets.datasets.loading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks

if TYPE_CHECKING:
    from diffii_datasets.config import DiffIIConfig
    from diffii_datasets.datasets.loading import SettingSplits

__all__ = ["FAMILIES", "LONG_TAIL_PROFILES", "Family", "Setting", "custom_setting", "get_setting", "list_settings"]

LONG_TAIL_PROFILES = ("exponential", "diffmix")
"""How a long-tail subset's class sizes fall off (see :func:`~diffii_datasets.datasets.long_tail`)."""


@dataclass(frozen=True)
class Family:
    """A dataset as the paper uses it: few-shot or long-tail, its metaclass, its splits, its published settings."""

    name: str
    kind: str  # "few-shot" or "long-tail"
    metaclass: str
    num_classes: int
    train_split: str
    test_split: str
    published: tuple[int, ...]  # shot counts (few-shot) or imbalance factors (long-tail) of the paper


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family("cub", "few-shot", "bird", 200, "CUB-200-2011 train", "CUB-200-2011 test", (5, 10)),
    Family("aircraft", "few-shot", "aircraft", 100, "FGVC-Aircraft (variant) trainval",
           "FGVC-Aircraft (variant) test", (5, 10)),
    Family("cars", "few-shot", "car", 196, "Stanford Cars train", "Stanford Cars test", (5, 10)),
    Family("pet", "few-shot", "animal", 37, "Oxford-IIIT Pet trainval", "Oxford-IIIT Pet test", (5, 10)),
    Family("cub-lt", "long-tail", "bird", 200, "CUB-200-2011 train", "CUB-200-2011 test", (100, 20, 10)),
    Family("flower-lt", "long-tail", "flower", 102,
           "Flowers-102, all splits pooled, first half of each class (fixed split seed 0)",
           "Flowers-102, all splits pooled, second half of each class", (100, 20, 10)),
)}


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
        """The paper's two-stage split ratio for this setting: 0.3 (5-shot), 0.1 (10-shot), 1.0 (long-tail)."""
        if self.long_tail:
            return 1.0
        return 0.3 if self.shots <= 5 else 0.1

    def default_knobs(self) -> dict[str, Any]:
        """The ``DiffIIConfig`` knobs this setting sets unasked: its split ratio, and for the long tail
        class-balanced concept learning (``concept_balance_classes``, as the published long-tail runs)."""
        knobs: dict[str, Any] = {"split_ratio": self.split_ratio}
        if self.long_tail:
            knobs["concept_balance_classes"] = True
        return knobs

    def diffii_config(self, **knobs: Any) -> DiffIIConfig:
        """The paper's configuration for this setting (:meth:`default_knobs` over the defaults), then ``knobs``."""
        from diffii_datasets.config import DiffIIConfig

        return DiffIIConfig(**{**self.default_knobs(), **knobs})

    def load(self, root: str | Path, seed: int = 0, **kwargs: Any) -> SettingSplits:
        """The training subset, metaclass and test set (``kwargs``: those of :func:`.loading.load_family`)."""
        from diffii_datasets.datasets.loading import load_family

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
