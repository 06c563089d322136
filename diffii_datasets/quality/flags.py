"""Which classes to look at first: fixed rules on the per-class numbers (pure Python).

Two absolute rules catch the failures the measures were made for: a class whose
synthetic images look more like another class than like their own (*drifted*),
and a class whose synthetic images are much less diverse than its real ones
(*collapsed*). Relative rules flag a class far from the others on one measure,
by the robust z-score ``(x - median) / (1.4826 * MAD)`` over the classes
(Iglewicz and Hoaglin's cut-off of 3.5), in the bad direction only; they need at
least :data:`MIN_CLASSES_FOR_OUTLIERS` classes with a value and a non-zero MAD.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from diffii_datasets.quality.results import MEASURES

__all__ = ["FLAG_RULES", "MIN_CLASSES_FOR_OUTLIERS", "OUTLIER_Z", "flag_classes"]

OUTLIER_Z = 3.5
MIN_CLASSES_FOR_OUTLIERS = 5
DRIFT_SHARE = 0.5
COLLAPSE_RATIO = 0.5

# Relative rules: flag, the measure, and +1 when high values are bad (-1 when low ones are).
_OUTLIER_RULES = (
    ("low-clip-score", "clip_score", -1),
    ("low-diversity", "lpips_synthetic", -1),
    ("far-from-real", "kid", +1),
    ("low-own-similarity", "own_similarity", -1),
)

FLAG_RULES = {
    "drifted": f"fewer than {DRIFT_SHARE:.0%} of its synthetic images have their nearest real image (CLIP image "
               "similarity) in their own class",
    "collapsed": f"its synthetic images' LPIPS diversity is below {COLLAPSE_RATIO:g} x that of its real images",
    **{flag: f"{MEASURES[key][0]} is {'above' if sign > 0 else 'below'} the median of the classes by more than "
             f"{OUTLIER_Z:g} robust standard deviations (1.4826 x MAD; with at least {MIN_CLASSES_FOR_OUTLIERS} "
             "classes)"
       for flag, key, sign in _OUTLIER_RULES},
}
"""Every flag and its rule, as the report shows them."""


def _robust_z(values: Sequence[float]) -> list[float] | None:
    if len(values) < MIN_CLASSES_FOR_OUTLIERS:
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    if mad == 0:
        return None
    return [(v - median) / (1.4826 * mad) for v in values]


def flag_classes(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The flags of each row (a class's measures by name; a missing measure is None), in :data:`FLAG_RULES` order."""
    flags: list[list[str]] = [[] for _ in rows]
    for row, found in zip(rows, flags):
        share = row.get("own_nearest_share")
        if share is not None and share < DRIFT_SHARE:
            found.append("drifted")
        synthetic, real = row.get("lpips_synthetic"), row.get("lpips_real")
        if synthetic is not None and real is not None and synthetic < COLLAPSE_RATIO * real:
            found.append("collapsed")
    for flag, key, sign in _OUTLIER_RULES:
        present = [(i, row[key]) for i, row in enumerate(rows) if row.get(key) is not None]
        scores = _robust_z([value for _, value in present])
        if scores is None:
            continue
        for (i, _), z in zip(present, scores):
            if sign * z > OUTLIER_Z:
                flags[i].append(flag)
    return flags
