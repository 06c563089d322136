"""Our runs beside the paper's numbers, in the paper's table shapes: one JSON document, then Markdown and HTML.

The input is, per (method, setting, backbone), the per-seed accuracies of runs in percent
(the caller collects them; :func:`report_accuracies` reads them from a report of
:func:`~diffii_datasets.classify.report.build_report`).
:func:`build_comparison` lays them out as the paper does; :func:`format_markdown` and
:func:`render_comparison_html` render that document (never the input), so the three agree.

- Few-shot settings (``cub-5shot``) form Table 1: per backbone, a column group per shot
  count, the datasets in the printed order CUB, Aircraft, Pet, Car.
- Long-tail settings (``cub-lt-if100``) form Table 2: a group per dataset, imbalance
  factors falling as printed (100, 20, 10).
- Waterbirds groups (:data:`WATERBIRDS_SETTINGS`) form Table 3, in the printed order
  L,L, W,W, L,W, W,L.
- Any other setting (one's own data) goes in a table of its own, in the order given.

Rows are methods in the paper's row order (:func:`~diffii_datasets.classify.paper.methods`),
then methods the paper does not know, in the order given; the paper's tables label them as
printed ("Ours" for ``diff-ii``), one's own data by the library's names. A cell reads "mean ± std
(paper X)", the paper's number only where the paper has the cell; "-" where no run was
given (the document keeps the paper's number there too). A group of two or more
columns gets the paper's Avg column: the mean of the row's cell means (only with every
cell present), and its difference from the ``original`` row's Avg. The paper's Avg (and
printed difference) stands beside it only when the group holds exactly the paper's
columns. Notes of printed cells that do not add up, and of averages the paper does not
print, become numbered footnotes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffii_datasets import _checks
from diffii_datasets.classify import paper
from diffii_datasets.classify.results import mean_std
from diffii_datasets.settings.base import FAMILIES, custom_setting

__all__ = ["TEMPLATE", "WATERBIRDS_SETTINGS", "build_comparison", "format_markdown", "render_comparison_html",
           "report_accuracies"]

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "compare" / "comparison.html.j2"

WATERBIRDS_SETTINGS = ("waterbirds-test00", "waterbirds-test01", "waterbirds-test10", "waterbirds-test11")
"""The setting names of the four Waterbirds groups, in the library's group order (the authors' list names)."""

_TITLES = {1: "Few-shot classification", 2: "Long-tail classification", 3: "OOD classification on Waterbirds",
           None: "Other settings"}
_SETTING = re.compile(r"(?P<family>.+)-(?:(?P<shots>\d+)shot|if(?P<factor>\d+(?:\.\d+)?))")


@dataclass(frozen=True)
class _Column:
    """Where a setting goes: its table, its column group and its place in both, and its paper coordinates."""

    setting: str
    table: int | None
    group: str
    group_order: float
    order: float
    label: str
    coordinates: tuple[tuple[str, Any], ...] = ()
    group_coordinates: tuple[tuple[str, Any], ...] = ()


def _column(setting: str, position: int) -> _Column:
    if setting in WATERBIRDS_SETTINGS:
        label = paper.WATERBIRDS_PRINTED[WATERBIRDS_SETTINGS.index(setting)]
        return _Column(setting, 3, "", 0, paper.table_columns(3).index(label), label,
                       (("group", WATERBIRDS_SETTINGS.index(setting)),))
    match = _SETTING.fullmatch(setting)
    family = FAMILIES.get(match["family"]) if match else None
    if family is not None and (family.kind == "few-shot") == (match["shots"] is not None):
        value = int(match["shots"]) if match["shots"] else float(match["factor"])
        if custom_setting(family.name, value).name == setting:
            families = list(paper.DATASET_COLUMNS)
            if family.kind == "few-shot":
                return _Column(setting, 1, f"{value}-shot", value, families.index(family.name),
                               paper.DATASET_COLUMNS[family.name], (("dataset", family.name), ("shots", value)),
                               (("shots", value),))
            dataset = (("dataset", family.name),)
            return _Column(setting, 2, paper.DATASET_COLUMNS[family.name], families.index(family.name), -value,
                           f"IF={value:g}", (*dataset, ("imbalance_factor", value)), dataset)
    return _Column(setting, None, "", 0, position, setting)


def _check_accuracies(accuracies: Any) -> dict[tuple[str, str, str], list[float]]:
    if not isinstance(accuracies, Mapping) or not accuracies:
        _checks.fail(TypeError if not isinstance(accuracies, Mapping) else ValueError, "accuracies",
                     "a non-empty mapping (method, setting, backbone) -> per-seed accuracies", accuracies)
    checked = {}
    for key, values in accuracies.items():
        if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(part, str) and part for part in key)):
            _checks.fail(TypeError, "accuracies", "keyed by (method, setting, backbone) tuples of non-empty strings",
                         key)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            _checks.fail(TypeError, f"accuracies[{key!r}]", "a non-empty list of accuracies (percent)", values)
        checked[key] = [_checks.check_number(value, f"accuracies[{key!r}][{i}]", minimum=0, maximum=100)
                        for i, value in enumerate(values)]
    return checked


def report_accuracies(report: Mapping[str, Any], *, figure: str = "best_test", method: str | None = None,
                      setting: str | None = None) -> dict[tuple[str, str, str], list[float]]:
    """The per-seed accuracies of a report of :func:`~diffii_datasets.classify.report.build_report`, keyed for
    :func:`build_comparison`; a Waterbirds report gives one entry per group (:data:`WATERBIRDS_SETTINGS`).

    ``method`` defaults to the report's (``original`` for runs without synthetic images,
    ``diff-ii`` otherwise), ``setting`` to the report's (required for one's own data), the
    backbone is the report's or its recipe's model.
    """
    method = method or report.get("method") or ("original" if report["baseline"] else "diff-ii")
    setting = setting or report.get("setting")
    if setting is None:
        _checks.fail(ValueError, "setting", "given for a report of one's own data (it names no setting)", setting)
    if figure not in report["figures"]:
        _checks.fail(ValueError, "figure", f"one of the report's figures ({', '.join(report['figures'])})", figure)
    backbone = report.get("backbone") or report["recipe"]["model"]
    if setting == "waterbirds":
        return {(method, WATERBIRDS_SETTINGS[g], backbone): [value for value in stats["values"] if value is not None]
                for g, stats in enumerate(report["per_group"][figure])}
    return {(method, setting, backbone): list(report["figures"][figure]["values"])}


def _paper_entry(table: int | None, method: str, backbone: str, coordinates: tuple[tuple[str, Any], ...],
                 average: bool = False) -> dict[str, Any] | None:
    """The paper's cell, its note as text (:func:`_number_notes` turns it into a footnote number)."""
    if table is None or method not in paper.methods():
        return None
    found = paper.lookup(table, method, backbone=backbone, average=average, **dict(coordinates))
    return None if found is None else {"value": found.value, "difference": found.difference,
                                       "printed": found.printed, "note": found.note}


def _number_notes(tables: list[dict[str, Any]]) -> list[str]:
    """Replace each note's text by its footnote number, numbered in reading order; the texts in that order."""
    notes: list[str] = []
    for table in tables:
        for row in table["rows"]:
            for group in row["groups"]:
                for cell in [*group["cells"], *([group["average"]] if group["average"] else [])]:
                    entry = cell["paper"]
                    if entry is not None and entry["note"] is not None:
                        if entry["note"] not in notes:
                            notes.append(entry["note"])
                        entry["note"] = notes.index(entry["note"]) + 1
    return notes


def _row_label(method: str, table: int | None) -> str:
    """The row's printed label (from another table for a method this one lacks); one's own data keeps the names."""
    if table is None or method not in paper.methods():
        return method
    labels = [paper.method_label(method, other) for other in (table, 1, 2, 3)]
    return next(label for label in labels if label is not None)


def _build_table(table: int | None, backbone: str, columns: list[_Column], runs: dict[tuple[str, str], list[float]],
                 method_order: list[str]) -> dict[str, Any]:
    groups: dict[str, list[_Column]] = {}
    for column in sorted(columns, key=lambda c: (c.group_order, c.order)):
        groups.setdefault(column.group, []).append(column)
    rows = []
    for method in method_order:
        row_groups = []
        for members in groups.values():
            cells = [{"setting": column.setting,
                      "ours": mean_std(runs[method, column.setting]) if (method, column.setting) in runs else None,
                      "paper": _paper_entry(table, method, backbone, column.coordinates)}
                     for column in members]
            row_groups.append({"cells": cells, "average": None})
        rows.append({"method": method, "label": _row_label(method, table), "groups": row_groups})
    for g, members in enumerate(groups.values()):
        if len(members) < 2:
            continue
        paper_columns = table is not None and {c.label for c in members} == set(paper.table_columns(table))
        for row in rows:
            means = [cell["ours"]["mean"] for cell in row["groups"][g]["cells"] if cell["ours"] is not None]
            found = (_paper_entry(table, row["method"], backbone, members[0].group_coordinates, average=True)
                     if paper_columns else None)
            row["groups"][g]["average"] = {"ours": sum(means) / len(means) if len(means) == len(members) else None,
                                           "difference": None, "paper": found}
        baseline = next((row["groups"][g]["average"]["ours"] for row in rows if row["method"] == "original"), None)
        for row in rows:
            average = row["groups"][g]["average"]
            if row["method"] != "original" and baseline is not None and average["ours"] is not None:
                average["difference"] = average["ours"] - baseline
    return {"title": f"{_TITLES[table]}, {paper.BACKBONE_NAMES.get(backbone, backbone)}",
            "paper_table": None if table is None else f"Table {table}", "backbone": backbone,
            "groups": [{"label": label, "columns": [{"setting": c.setting, "label": c.label} for c in members],
                        "average": len(members) >= 2} for label, members in groups.items()],
            "rows": rows}


def build_comparison(accuracies: Mapping[tuple[str, str, str], Sequence[float]], *,
                     figure: str | None = None) -> dict[str, Any]:
    """The comparison document (JSON-able) of ``{(method, setting, backbone): [accuracy per seed, ...]}``.

    ``figure`` says which accuracy the runs report (e.g. "best test accuracy over epochs").
    """
    runs = _check_accuracies(accuracies)
    if figure is not None:
        _checks.check_one_line(figure, "figure")
    settings = list(dict.fromkeys(setting for _, setting, _ in runs))
    columns = {setting: _column(setting, position) for position, setting in enumerate(settings)}
    known = paper.methods()
    given = list(dict.fromkeys(method for method, _, _ in runs))
    tables = []
    for table, backbone in sorted({(columns[setting].table, backbone) for _, setting, backbone in runs},
                                  key=_table_order):
        mine = {(m, s): values for (m, s, b), values in runs.items() if b == backbone and columns[s].table == table}
        present = {method for method, _ in mine}
        order = [m for m in known if m in present] + [m for m in given if m in present and m not in known]
        chosen = [columns[s] for s in settings if any(setting == s for _, setting in mine)]
        tables.append(_build_table(table, backbone, chosen, mine, order))
    notes = _number_notes(tables)
    return {"kind": "diffii-datasets comparison", "figure": figure, "tables": tables, "notes": notes}


def _table_order(key: tuple[int | None, str]) -> tuple[Any, ...]:
    """Tables 1, 2, 3, then one's own settings; the paper's backbones first, as in Table 1."""
    table, backbone = key
    backbones = list(paper.BACKBONE_NAMES)
    return (table is None, table or 0, backbones.index(backbone) if backbone in backbones else len(backbones),
            backbone)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _headers(table: dict[str, Any]) -> list[tuple[str, str]]:
    """(group label, column label) of every column after "Method", the Avg columns included."""
    return [(group["label"], label) for group in table["groups"]
            for label in [*(column["label"] for column in group["columns"]), *(["Avg"] if group["average"] else [])]]


@dataclass(frozen=True)
class _Shown:
    """A cell as both renderings show it: our text and number, and the paper's entry when it stands beside ours."""

    key: str
    ours: str
    mean: float | None
    paper: dict[str, Any] | None
    difference: float | None = None


def _shown(row: dict[str, Any], table: dict[str, Any]) -> list[_Shown]:
    shown = []
    for group, spec in zip(row["groups"], table["groups"]):
        for cell in group["cells"]:
            stats = cell["ours"]
            text = "-" if stats is None else f"{stats['mean']:.2f}" + (
                "" if stats["std"] is None else f" ± {stats['std']:.2f}")
            shown.append(_Shown(cell["setting"], text, None if stats is None else stats["mean"],
                                None if stats is None else cell["paper"]))
        average = group["average"]
        if average is not None:
            mean, difference = average["ours"], average["difference"]
            text = "-" if mean is None else f"{mean:.2f}" + ("" if difference is None else f" ({_signed(difference)})")
            shown.append(_Shown(f"{spec['label']} Avg".strip(), text, mean, None if mean is None else average["paper"],
                                difference))
    return shown


def _paper_text(entry: dict[str, Any], marker: str) -> str:
    """The paper's number (with its printed difference), ``marker`` formatted with the note's number."""
    text = f"{entry['value']:.2f}" + (marker.format(entry["note"]) if entry["note"] else "")
    return text + (f", {_signed(entry['difference'])}" if entry["difference"] is not None else "")


def format_markdown(document: dict[str, Any]) -> str:
    """The document as Markdown: a heading and a table per paper table and backbone, then the footnotes."""
    figure = f" Accuracy: {document['figure']}." if document["figure"] else ""
    lines = ["# Our runs beside the paper", "",
             "Each cell: our mean ± std over seeds (the paper's number). Avg: the mean of the row's cells, with its "
             f"difference from Original in parentheses. \"-\": no runs.{figure}"]
    for table in document["tables"]:
        where = f" (paper: {table['paper_table']})" if table["paper_table"] else ""
        headers = [f"{group} {label}" if group else label for group, label in _headers(table)]
        lines += ["", f"## {table['title']}{where}", "", "| " + " | ".join(["Method", *headers]) + " |",
                  "|" + "---|" * (1 + len(headers))]
        for row in table["rows"]:
            cells = [cell.ours if cell.paper is None else f"{cell.ours} (paper {_paper_text(cell.paper, '[^{}]')})"
                     for cell in _shown(row, table)]
            lines.append("| " + " | ".join([row["label"], *cells]) + " |")
    if document["notes"]:
        lines += ["", *(f"[^{n}]: {note}" for n, note in enumerate(document["notes"], 1))]
    return "\n".join(lines) + "\n"


def render_comparison_html(document: dict[str, Any], *, title: str = "Our runs beside the paper") -> str:
    """The document as one self-contained HTML page (inline CSS; no script, stylesheet, font or image to fetch)."""
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    tables = [{"title": table["title"], "paper_table": table["paper_table"],
               "grouped": any(group["label"] for group in table["groups"]),
               "groups": [{"label": group["label"], "span": len(group["columns"]) + group["average"]}
                          for group in table["groups"]],
               "columns": [label for _, label in _headers(table)],
               "rows": [{"label": row["label"], "method": row["method"],
                         "cells": [_html_cell(cell) for cell in _shown(row, table)]} for row in table["rows"]]}
              for table in document["tables"]]
    return template.render(title=title, figure=document["figure"], tables=tables, notes=document["notes"])


def _html_cell(cell: _Shown) -> dict[str, Any]:
    classes = [*(["avg"] if cell.key.endswith("Avg") else []), *(["na"] if cell.mean is None else [])]
    return {"key": cell.key, "ours": cell.ours, "value": "" if cell.mean is None else repr(float(cell.mean)),
            "classes": " ".join(classes),
            "trend": None if cell.difference is None else ("up" if cell.difference >= 0 else "down"),
            "paper": None if cell.paper is None else _paper_text(cell.paper, ""),
            "note": None if cell.paper is None else cell.paper["note"],
            "computed": cell.paper is not None and not cell.paper["printed"]}
