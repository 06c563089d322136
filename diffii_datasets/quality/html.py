"""The report as one self-contained HTML page: every image inlined as a data URI, inline CSS and a few lines of JS.

The page holds the overall and per-class tables (sortable by clicking a column;
each numeric cell carries its exact value in ``data-value``), the flag rules, the
provenance plots, and a grid of real and synthetic thumbnails per class. Nothing
is fetched when it is opened: no external stylesheet, script, font or image.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from diffii_datasets.methods.config import TINY_MODEL
from diffii_datasets.quality.results import MEASURES, ClassQuality, QualityReport

__all__ = ["TEMPLATE", "data_uri", "render_report_html", "thumbnail_uri"]

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "quality" / "report.html.j2"
TILE = 96
"""Side of a grid image on the page, in CSS pixels (thumbnails are stored at twice that, for sharp screens)."""

_SHARES = {"own_nearest_share", "noise_started_share"}


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(image: Image.Image, side: int = 2 * TILE) -> str:
    """A JPEG data URI of ``image`` fitted into ``side`` x ``side`` (JPEG keeps a large report small)."""
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((side, side), Image.BICUBIC)
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return data_uri(buffer.getvalue(), "image/jpeg")


def _text(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key in _SHARES:
        return f"{value:.0%}"
    return f"{value:.2f}" if key.startswith("clip_score") else f"{value:.4f}"


def _cells(row: ClassQuality) -> list[dict[str, Any]]:
    return [{"key": key, "value": "" if value is None else repr(float(value)), "text": _text(key, value),
             "missing": value is None} for key, value in row.measures().items()]


_KNOBS_SHOWN = (("split_ratio", "split ratio"), ("strength", "strength"), ("expansion_rate", "expansion rate"))
"""The knobs of a store's config the report's source line shows, when its method has them."""


def _source_line(report: QualityReport) -> str:
    source = report.source
    if source.get("kind") == "store":
        config = source["config"]
        parts = [f"store {source['path']}", f"method {source['method']}", f"model {source['model']}"]
        parts += [f"{label} {config[knob]:g}" for knob, label in _KNOBS_SHOWN if knob in config]
        if "interpolation" in config:
            parts.append(f"{config['interpolation']} interpolation")
        if source.get("missing_classes"):
            parts.append(f"{len(source['missing_classes'])} classes not generated yet (left out)")
    elif source.get("kind") == "datasets":
        parts = [f"real dataset {source['real']}", f"synthetic dataset {source['synthetic']}"]
    else:
        parts = []
    parts.append(f"prompt '{source.get('prompt', '')}'")
    return " · ".join(parts)


def _provenance_line(provenance: dict[str, Any]) -> str:
    count, noise = provenance["count"], provenance["noise_started"]
    line = f"{count} synthetic images, {noise} started from noise ({noise / count:.0%})" if count else "no images"
    if provenance["lam_mean"] is not None:
        line += (f"; λ from {provenance['lam_min']:.3g} to {provenance['lam_max']:.3g} "
                 f"(mean {provenance['lam_mean']:.3g})")
    return line + f"; {len(provenance['suffix_counts'])} distinct suffixes."


def render_report_html(report: QualityReport, *, grid: Sequence[tuple[Sequence[str], Sequence[str]]] | None = None,
                       plots: Sequence[tuple[bytes, str]] = (), grid_images: int = 0) -> str:
    """The page of ``report``; ``grid`` holds each class's real and synthetic image URIs, ``plots`` PNGs and alt texts.

    ``grid`` rows follow ``report.classes``.
    """
    import jinja2

    if grid is not None and len(grid) != len(report.classes):
        raise ValueError(f"grid must hold one row per class of the report ({len(report.classes)}), got {len(grid)}")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    classes = [{"index": row.index, "name": row.name, "real_count": row.real_count,
                "synthetic_count": row.synthetic_count, "cells": _cells(row), "flags": list(row.flags)}
               for row in report.classes]
    provenance = report.overall.provenance
    return template.render(
        title=report.source.get("path") or "images",
        source_line=_source_line(report),
        random_weights=bool(report.models.get("random_weights")),
        random_generator=report.source.get("model") == TINY_MODEL,
        columns=[{"key": key, "label": label, "description": description}
                 for key, (label, description) in MEASURES.items()],
        overall={"real_count": report.overall.real_count, "synthetic_count": report.overall.synthetic_count,
                 "cells": _cells(report.overall)},
        classes=classes,
        flagged=len(report.flagged()),
        flag_rules=report.flag_rules,
        plots=[{"uri": data_uri(png, "image/png"), "alt": alt} for png, alt in plots],
        provenance_line=_provenance_line(provenance) if provenance else "",
        grid=[{"index": row.index, "name": row.name, "flags": list(row.flags), "real": list(real),
               "synthetic": list(synthetic)} for row, (real, synthetic) in zip(report.classes, grid or ())],
        grid_images=grid_images,
        tile=TILE,
        models=report.models,
        settings=report.settings,
    )
