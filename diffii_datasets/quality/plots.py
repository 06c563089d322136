"""The report's figures as PNG bytes: matplotlib's object API on the Agg canvas (no pyplot, no display)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["lambda_histogram_png", "split_ratio_curve_png", "suffix_usage_png"]

SUFFIX_BARS = 20
"""The suffix plot shows the most used suffixes, at most this many."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def lambda_histogram_png(provenance: Mapping[str, Any]) -> bytes:
    """Bars of :func:`~diffii_datasets.quality.provenance.summarize_provenance`'s lambda histogram."""
    edges, counts = provenance["lam_edges"], provenance["lam_counts"]
    figure = _figure(6, 3.2)
    axes = figure.add_subplot()
    axes.bar(edges[:-1], counts, width=[b - a for a, b in zip(edges, edges[1:])], align="edge", color="#4c72b0",
             edgecolor="white")
    axes.set_xlabel("λ, interpolation strength (Eq. 5: θ = λα)")
    axes.set_ylabel("synthetic images")
    noise = provenance["noise_started"]
    axes.set_title(f"λ of {provenance['count'] - noise} interpolated images"
                   + (f" ({noise} noise-started, not shown)" if noise else ""), fontsize=10)
    return _png(figure)


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def suffix_usage_png(provenance: Mapping[str, Any]) -> bytes:
    """Horizontal bars of the most used suffixes (most used on top)."""
    items = list(provenance["suffix_counts"].items())[:SUFFIX_BARS]
    figure = _figure(6, 0.9 + 0.28 * max(len(items), 1))
    axes = figure.add_subplot()
    axes.barh([_short(name) for name, _ in items][::-1], [count for _, count in items][::-1], color="#55a868")
    axes.set_xlabel("synthetic images")
    hidden = len(provenance["suffix_counts"]) - len(items)
    axes.set_title("suffix of the first denoising stage" + (f" (top {len(items)}; {hidden} more)" if hidden else ""),
                   fontsize=10)
    axes.tick_params(axis="y", labelsize=8)
    return _png(figure)


def split_ratio_curve_png(split_ratios: Sequence[float], clip_scores: Sequence[float | None],
                          lpips: Sequence[float | None], title: str = "") -> bytes:
    """The paper's Fig. 7: CLIP score (left axis) and mean LPIPS (right axis) against the split ratio."""
    figure = _figure(6, 3.6)
    left = figure.add_subplot()
    right = left.twinx()
    left.plot(split_ratios, [float("nan") if v is None else v for v in clip_scores], "o-", color="#c44e52",
              label="CLIP score")
    right.plot(split_ratios, [float("nan") if v is None else v for v in lpips], "s--", color="#4c72b0", label="LPIPS")
    left.set_xlabel("split ratio s")
    left.set_ylabel("CLIP score", color="#c44e52")
    right.set_ylabel("LPIPS (diversity)", color="#4c72b0")
    left.set_title(title, fontsize=10)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=8)
    return _png(figure)
