"""What the store's metadata says about how a set was made: lambda, suffixes, noise starts (pure Python).

Every synthetic image's record holds its interpolation strength ``lam`` (None when
it started from Gaussian noise, as in a class with one real image) and the suffix
of its first denoising stage ("" when the suffixed stage did not run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticRecord

__all__ = ["LAMBDA_BINS", "NO_SUFFIX", "lambda_edges", "summarize_provenance"]

LAMBDA_BINS = 20
NO_SUFFIX = "(no suffix)"
"""How the suffix usage names images whose suffixed stage did not run."""


def lambda_edges(records: Sequence[SyntheticRecord], bins: int = LAMBDA_BINS) -> list[float]:
    """``bins + 1`` equal-width edges from 0 to the largest ``lam`` of ``records`` (to 1 when there is none)."""
    lams = [float(r.lam) for r in records if r.lam is not None]
    top = max(lams, default=0.0) or 1.0
    return [top * i / bins for i in range(bins + 1)]


def _histogram(values: list[float], edges: list[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    width = edges[-1] - edges[0]
    for value in values:
        position = int((value - edges[0]) / width * len(counts)) if width else 0
        counts[min(max(position, 0), len(counts) - 1)] += 1
    return counts


def summarize_provenance(records: Sequence[SyntheticRecord], edges: Sequence[float]) -> dict[str, Any]:
    """Counts, the noise-started share, ``lam``'s range, mean and histogram over ``edges``, and suffix usage.

    The histogram's last bin includes its upper edge. Suffixes are listed most used first.
    """
    lams = [float(r.lam) for r in records if r.lam is not None]
    noise = len(records) - len(lams)
    suffixes = Counter(r.suffix or NO_SUFFIX for r in records)
    return {
        "count": len(records),
        "noise_started": noise,
        "noise_started_share": noise / len(records) if records else None,
        "lam_min": min(lams, default=None),
        "lam_mean": sum(lams) / len(lams) if lams else None,
        "lam_max": max(lams, default=None),
        "lam_edges": list(edges),
        "lam_counts": _histogram(lams, list(edges)),
        "suffix_counts": dict(sorted(suffixes.items(), key=lambda item: (-item[1], item[0]))),
    }
