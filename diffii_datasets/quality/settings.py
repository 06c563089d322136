"""``QualitySettings``: every knob of the quality measures, declared once (pure Python, no torch).

The defaults follow the tools the numbers come from: CLIP ViT-L/14 is the model
torchmetrics' ``CLIPScore`` uses by default, AlexNet is the ``lpips`` package's
default (and recommended) LPIPS backbone, and KID's subsets follow torchmetrics'
``KernelInceptionDistance`` (100 subsets of at most 1000 images).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._knobs import choice, knob, knobs_of, positive_int, seed, validate

__all__ = ["DEFAULT_CLIP_MODEL", "GRID_IMAGES", "LPIPS_NETS", "QualitySettings"]

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
"""torchmetrics' ``CLIPScore`` default, the usual model behind a reported "CLIP score"."""

GRID_IMAGES = 6
"""Real and synthetic images shown per class in a report page's grid, by default."""

LPIPS_NETS = ("alex", "vgg", "squeeze")
"""The backbones of the ``lpips`` package; ``alex`` is its default."""


def _model_id(value: Any, name: str) -> str:
    return _checks.check_one_line(value, name, expected="a Hub id or a local directory")


def _at_least(minimum: int):
    def check(value: Any, name: str) -> int:
        return _checks.check_int(value, name, minimum=minimum)

    return check


@dataclass(frozen=True)
class QualitySettings:
    """How the quality measures are computed; recorded in every report."""

    clip_model: str = knob(DEFAULT_CLIP_MODEL, "CLIP model (Hub id or local directory) for the CLIP score, the "
                                               "image similarities and KID's features", _model_id)
    lpips_net: str = knob("alex", "LPIPS backbone: " + ", ".join(LPIPS_NETS), choice(LPIPS_NETS), choices=LPIPS_NETS)
    lpips_size: int = knob(256, "side in pixels that images are resized (shorter side) and centre-cropped to "
                                "for LPIPS, the same for real and synthetic images", _at_least(32))
    lpips_max_images: int = knob(100, "LPIPS diversity of a class averages all pairs among at most this many of "
                                      "its images (a seeded random subset beyond)", _at_least(2))
    kid_subsets: int = knob(100, "KID subsets whose mean and standard deviation are reported", positive_int)
    kid_subset_size: int = knob(1000, "largest KID subset; a class uses min(this, its real count, its synthetic "
                                      "count)", _at_least(2))
    batch_size: int = knob(32, "images per CLIP and LPIPS batch", positive_int)
    seed: int = knob(0, "seed of the LPIPS subsets and the KID subsets", seed)

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def knobs(cls):
        """The declared knobs (for command-line flags)."""
        return knobs_of(cls)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> QualitySettings:
        return dataclasses.replace(self, **changes)
