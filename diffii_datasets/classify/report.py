"""The report of a setting's runs: one JSON document, and the table printed from that same document.

The table is rendered from the JSON (never from the runs), so the two cannot disagree:
every number in the table is the JSON's, rounded to two decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diffii_datasets.classify.paper import paper_cell, published_accuracy
from diffii_datasets.classify.results import FIGURES, TrainResult, summarize

__all__ = ["FIGURE_LABELS", "build_report", "format_table"]

FIGURE_LABELS = {
    "best_test": "best test accuracy over epochs (the authors' figure)",
    "final_test": "test accuracy after the last epoch",
    "test_at_best_val": "test accuracy at the best validation epoch",
}


def build_report(results: Sequence[TrainResult], *, setting: str | None = None, backbone: str | None = None,
                 store: str | None = None, figures: Sequence[str] = FIGURES) -> dict[str, Any]:
    """Mean ± std over the runs (one per seed) of ``figures``, with the paper's cell beside the authors' figure.

    ``setting`` and ``backbone`` name the paper's setting (``"cub-5shot"``, ``"waterbirds"``),
    when the runs are one; ``store`` the synthetic set they were trained with.
    """
    summary = summarize(results, figures)
    recipe = results[0].recipe.to_dict()
    recipe.pop("seed")
    baseline = recipe["synthetic_probability"] == 0
    report: dict[str, Any] = {"setting": setting, "backbone": backbone, "store": store, "baseline": baseline,
                              "recipe": recipe, **summary}
    if setting is not None and backbone is not None and "best_test" in summary["figures"]:
        groups = summary.get("groups")
        cells = ([paper_cell(setting, backbone, baseline=baseline, group=g) for g in range(len(groups))] if groups
                 else [paper_cell(setting, backbone, baseline=baseline)])
        report["paper"] = [None if cell is None else {"cell": str(cell), "accuracy": published_accuracy(cell)}
                           for cell in cells]
    return report


def _number(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    if stats["std"] is None:
        return f"{stats['mean']:.2f}"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def _paper(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "no such cell in the paper"
    value = "not recorded" if entry["accuracy"] is None else f"{entry['accuracy']:.2f}"
    return f"{value} ({entry['cell']})"


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()

    return [line(header), line(["-" * width for width in widths]), *map(line, rows)]


def format_table(report: dict[str, Any], *, per_class: bool = False) -> str:
    """The report as text: a title line, the figures (per group for Waterbirds), optionally every class."""
    seeds = ", ".join(map(str, report["seeds"]))
    what = "baseline (no synthetic images)" if report["baseline"] else \
        f"synthetic p = {report['recipe']['synthetic_probability']:g}" + \
        (", class-balanced" if report["recipe"]["class_balanced"] else "")
    title = [report["setting"] or "custom data", report["backbone"] or report["recipe"]["model"], what,
             f"{len(report['seeds'])} seed{'s' if len(report['seeds']) > 1 else ''} ({seeds})",
             f"{report['recipe']['epochs']} epochs"]
    lines = [", ".join(title)]
    figures = report["figures"]
    paper = report.get("paper")
    if "groups" in report:
        header = ["group", *figures, *(["paper (authors' figure)"] if paper else [])]
        rows = [[group, *(_number(report["per_group"][name][g]) for name in figures),
                 *([_paper(paper[g])] if paper else [])] for g, group in enumerate(report["groups"])]
        rows.append(["all images", *(_number(figures[name]) for name in figures), *([""] if paper else [])])
        lines += _render(header, rows)
        lines.append("columns: " + "; ".join(f"{name} = {FIGURE_LABELS[name]}" for name in figures))
    else:
        header = ["figure", "ours (mean ± std)", *(["paper"] if paper else [])]
        rows = [[FIGURE_LABELS[name], _number(stats),
                 *([_paper(paper[0]) if name == "best_test" else ""] if paper else [])]
                for name, stats in figures.items()]
        lines += _render(header, rows)
    if per_class:
        header = ["class", *figures]
        rows = [[name, *(_number(report["per_class"][figure][c]) for figure in figures)]
                for c, name in enumerate(report["classes"])]
        lines += ["", *_render(header, rows)]
    return "\n".join(lines)
