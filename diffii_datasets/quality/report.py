"""Write a quality report: ``report.json`` and the self-contained ``report.html`` beside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._io import atomic_write, write_json
from diffii_datasets.quality.images import load_rgb
from diffii_datasets.quality.inputs import ImageSets
from diffii_datasets.quality.results import QualityReport
from diffii_datasets.quality.settings import GRID_IMAGES, QualitySettings

__all__ = ["GRID_IMAGES", "report_store", "write_report"]


def write_report(report: QualityReport, output_dir: str | os.PathLike, sets: ImageSets | None = None, *,
                 grid_images: int = GRID_IMAGES) -> Path:
    """Write ``report.json`` and ``report.html`` into ``output_dir``; returns the page's path.

    With ``sets`` (the :class:`ImageSets` the report was computed from), the page shows
    the first ``grid_images`` real and synthetic images of each class.
    """
    from diffii_datasets.quality.html import render_report_html, thumbnail_uri
    from diffii_datasets.quality.plots import lambda_histogram_png, suffix_usage_png

    if not isinstance(report, QualityReport):
        raise TypeError(f"report must be a QualityReport, got {type(report).__name__}")
    _checks.check_int(grid_images, "grid_images", minimum=1)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    grid = None
    if sets is not None:
        if list(sets.class_indices) != [row.index for row in report.classes]:
            raise ValueError("sets must be the ImageSets the report was computed from (their classes differ)")
        grid = [([thumbnail_uri(load_rgb(item)) for item in real[:grid_images]],
                 [thumbnail_uri(load_rgb(item)) for item in synthetic[:grid_images]])
                for real, synthetic in zip(sets.real, sets.synthetic)]
    plots = []
    provenance = report.overall.provenance
    if provenance is not None and provenance["count"]:
        plots = [(lambda_histogram_png(provenance), "histogram of the interpolation strength lambda"),
                 (suffix_usage_png(provenance), "how often each suffix was used")]
    page = render_report_html(report, grid=grid, plots=plots, grid_images=grid_images)
    write_json(output / "report.json", report.to_dict())
    atomic_write(output / "report.html", page.encode("utf-8"))
    return output / "report.html"


def report_store(store: Any, output_dir: str | os.PathLike, *, models: Any = None,
                 settings: QualitySettings | None = None, classes: Any = None, device: Any = None,
                 grid_images: int = GRID_IMAGES, progress: bool = True) -> QualityReport:
    """Evaluate a :class:`~diffii_datasets.store.SyntheticStore` and write its report into ``output_dir``.

    ``models`` defaults to :func:`load_quality_models` of ``settings`` on ``device``;
    pass :func:`~diffii_datasets.testing.metrics.tiny_metric_models` to run offline
    without weights (meaningless numbers, for the demo and tests).
    """
    from diffii_datasets.quality.evaluation import evaluate
    from diffii_datasets.quality.models import load_quality_models

    settings = settings or QualitySettings()
    sets = ImageSets.from_store(store, classes)
    models = models if models is not None else load_quality_models(settings, device=device)
    report = evaluate(sets, models, settings, progress=progress)
    write_report(report, output_dir, sets, grid_images=grid_images)
    return report
