"""What a quality evaluation found: per-class and overall measures, as dataclasses and as JSON (pure Python)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from diffii_datasets._io import FileFormatError

__all__ = ["MEASURES", "REPORT_FORMAT", "ClassQuality", "QualityReport"]

REPORT_FORMAT = 1

MEASURES: dict[str, tuple[str, str]] = {
    "lpips_synthetic": ("LPIPS synthetic", "diversity: mean LPIPS over all pairs of synthetic images (the paper's "
                                           "Table 4 measure; higher is more diverse)"),
    "lpips_real": ("LPIPS real", "the same among the real images, for scale"),
    "clip_score": ("CLIP score", "faithfulness: torchmetrics' CLIP score of the synthetic images against "
                                 "'a photo of a <class> <metaclass>' (the paper's Fig. 7 measure; 0-100)"),
    "clip_score_real": ("CLIP score real", "the same for the real images, for scale"),
    "own_similarity": ("own similarity", "mean CLIP image cosine of each synthetic image to the nearest real "
                                         "image of its class"),
    "other_similarity": ("other similarity", "the same to the nearest real image of any other class"),
    "own_nearest_share": ("nearest is own", "share of synthetic images whose nearest real image is of their class"),
    "kid": ("KID", "kernel inception distance to the real images on CLIP image features (lower is closer)"),
    "kid_std": ("KID std", "its standard deviation over the subsets"),
    "noise_started_share": ("noise-started", "share of synthetic images started from noise, not from a pair of "
                                             "inversions (from the store's metadata)"),
}
"""Each measure's key, its column label and what it means, in report order."""


@dataclass(frozen=True)
class ClassQuality:
    """The measures of one class (``index`` None: all classes together); None where a measure does not apply."""

    index: int | None
    name: str
    real_count: int
    synthetic_count: int
    lpips_synthetic: float | None = None
    lpips_real: float | None = None
    clip_score: float | None = None
    clip_score_real: float | None = None
    own_similarity: float | None = None
    other_similarity: float | None = None
    own_nearest_share: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    noise_started_share: float | None = None
    flags: tuple[str, ...] = ()
    provenance: dict[str, Any] | None = None

    def measures(self) -> dict[str, float | None]:
        return {key: getattr(self, key) for key in MEASURES}

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "flags": list(self.flags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassQuality:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, "flags": tuple(data.get("flags", ()))})


@dataclass
class QualityReport:
    """Per-class and overall measures, with what was measured (``source``) and how (``models``, ``settings``)."""

    classes: list[ClassQuality]
    overall: ClassQuality
    source: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    flag_rules: dict[str, str] = field(default_factory=dict)

    def flagged(self) -> list[ClassQuality]:
        return [row for row in self.classes if row.flags]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "source": self.source,
            "models": self.models,
            "settings": self.settings,
            "measures": {key: description for key, (_, description) in MEASURES.items()},
            "flag_rules": self.flag_rules,
            "overall": self.overall.to_dict(),
            "classes": [row.to_dict() for row in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Any, path: str = "report.json") -> QualityReport:
        """Read what :meth:`to_dict` wrote; anything else is a :class:`FileFormatError` naming ``path``."""
        if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
            raise FileFormatError(path, f"is not a quality report of format {REPORT_FORMAT}")
        try:
            return cls(classes=[ClassQuality.from_dict(row) for row in data["classes"]],
                       overall=ClassQuality.from_dict(data["overall"]), source=data["source"],
                       models=data["models"], settings=data["settings"], flag_rules=data["flag_rules"])
        except (KeyError, TypeError) as error:
            raise FileFormatError(path, f"is not a valid quality report ({error})") from None
