"""The report of a setting's runs: one JSON document, and the table printed from that same document.

The table is rendered from the JSON (never from the runs), so the two cannot disagree:
every number in the table is the JSON's, rounded to two decimals. Beside the authors'
figure stands the paper's number of the same cell (:mod:`~diffii_datasets.classify.paper`),
with its note when the printed cell does not add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diffii_datasets.classify.paper import PaperCell, paper_cell, paper_value
from diffii_datasets.classify.results import FIGURES, TrainResult, summarize

__all__ = ["FIGURE_LABELS", "build_report", "format_table"]

FIGURE_LABELS = {
    "best_test": "best test accuracy over epochs (the authors' figure)",
    "final_test": "test accuracy after the last epoch",
    "test_at_best_val": "test accuracy at the best validation epoch",
}


def build_report(results: Sequence[TrainResult], *, setting: str | None = None, backbone: str | None = None,
                 store: str | None = None, figures: Sequence[str] = FIGURES, method: str | None = None
                 ) -> dict[str, Any]:
    """Mean ± std over the runs (one per seed) of ``figures``, with the paper's cell beside the authors' figure.

    ``setting`` and ``backbone`` name the paper's setting (``"cub-5shot"``, ``"waterbirds"``),
    when the runs are one; ``store`` the synthetic set they were trained with; ``method``
    the paper's row they reproduce (a name of :func:`~diffii_datasets.classify.paper.methods`),
    by default ``diff-ii`` for runs with synthetic images, and for runs without ``mixup`` or
    ``cutmix`` when the recipe has that one on (no row when both are), else ``original``.
    """
    summary = summarize(results, figures)
    recipe = results[0].recipe.to_dict()
    recipe.pop("seed")
    baseline = recipe["synthetic_probability"] == 0
    report: dict[str, Any] = {"setting": setting, "backbone": backbone, "store": store, "baseline": baseline,
                              "recipe": recipe, **summary}
    if method is not None:
        report["method"] = method
    if setting is not None and backbone is not None and "best_test" in summary["figures"]:
        row = method or _default_row(recipe)
        groups = summary.get("groups")
        if row is None:
            cells = [None] * (len(groups) if groups else 1)
        elif groups:
            cells = [paper_cell(setting, backbone, method=row, group=g) for g in range(len(groups))]
        else:
            cells = [paper_cell(setting, backbone, method=row)]
        report["paper"] = [_paper_entry(cell) for cell in cells]
    return report


def _default_row(recipe: dict[str, Any]) -> str | None:
    """The paper's row a recipe reproduces when no method is named."""
    if recipe["synthetic_probability"] > 0:
        return "diff-ii"
    mixing = [name for name in ("mixup", "cutmix") if recipe.get(name)]
    if len(mixing) > 1:
        return None
    return mixing[0] if mixing else "original"


def _paper_entry(cell: PaperCell | None) -> dict[str, Any] | None:
    entry = paper_value(cell)
    if entry is None:
        return None
    return {"cell": str(cell), "accuracy": entry.value, "note": entry.note}


def _number(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    if stats["std"] is None:
        return f"{stats['mean']:.2f}"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def _paper(entry: dict[str, Any] | None, notes: list[str]) -> str:
    """The paper's cell as text; its note (if any) joins ``notes`` and the cell carries its marker."""
    if entry is None:
        return "no such cell in the paper"
    # None: a report written before the paper's numbers were recorded
    value = "not recorded" if entry["accuracy"] is None else f"{entry['accuracy']:.2f}"
    if entry.get("note"):
        if entry["note"] not in notes:
            notes.append(entry["note"])
        value += f" [note {notes.index(entry['note']) + 1}]"
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
    title = [report["setting"] or "custom data", *([report["method"]] if report.get("method") else []),
             report["backbone"] or report["recipe"]["model"], what,
             f"{len(report['seeds'])} seed{'s' if len(report['seeds']) > 1 else ''} ({seeds})",
             f"{report['recipe']['epochs']} epoch{'s' if report['recipe']['epochs'] != 1 else ''}"]
    lines = [", ".join(title)]
    figures = report["figures"]
    paper = report.get("paper")
    notes: list[str] = []
    if "groups" in report:
        header = ["group", *figures, *(["paper (authors' figure)"] if paper else [])]
        rows = [[group, *(_number(report["per_group"][name][g]) for name in figures),
                 *([_paper(paper[g], notes)] if paper else [])] for g, group in enumerate(report["groups"])]
        rows.append(["all images", *(_number(figures[name]) for name in figures), *([""] if paper else [])])
        lines += _render(header, rows)
        lines.append("columns: " + "; ".join(f"{name} = {FIGURE_LABELS[name]}" for name in figures))
    else:
        header = ["figure", "ours (mean ± std)", *(["paper"] if paper else [])]
        rows = [[FIGURE_LABELS[name], _number(stats),
                 *([_paper(paper[0], notes) if name == "best_test" else ""] if paper else [])]
                for name, stats in figures.items()]
        lines += _render(header, rows)
    lines += [f"note {n}: {note}" for n, note in enumerate(notes, 1)]
    if per_class:
        header = ["class", *figures]
        rows = [[name, *(_number(report["per_class"][figure][c]) for figure in figures)]
                for c, name in enumerate(report["classes"])]
        lines += ["", *_render(header, rows)]
    return "\n".join(lines)
