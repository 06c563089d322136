"""The paper's published numbers (Tables 1-4, the labels of Figure 7) and where each setting's accuracy is reported.

The numbers are data, ``data/paper/tables.json``, read once on first use: every cell of
arXiv 2408.16266v2 as printed (top-1 accuracy in percent, averaged over three trials),
with the row and column labels as printed. Each row of Tables 1-3 holds its block's
cells left to right, then "Avg", then the signed difference from the baseline row's Avg
(the green and red numbers). Two printed cells of Table 1 do not add up and are kept as
printed, each with a note saying why (:attr:`PaperValue.note`); Table 2 prints no
absolute Avg for rows other than CE, so those are computed here and marked
(:attr:`PaperValue.printed` is False). Figure 7 has no table: its point labels were
read from the vector figure and assigned to split ratios by position.

Cells are looked up by the library's names: :func:`lookup` by coordinates (table,
method, backbone, dataset family, shots or imbalance factor, Waterbirds group);
:func:`paper_cell` finds a setting's cell by name and :func:`paper_value` its number. Methods are the library's
names (``original``, ``diff-ii`` = "Ours", ...; :func:`methods`); "CE" of Table 2 is
``original``, and ``cmo`` / ``cmo-drw`` name Table 2's rows that no library method runs.

Waterbirds groups: the library numbers them ``2 * y + place`` (bird type y, background
place; 1 = water), the order of the authors' lists test00, test01, test10, test11 and of
Diff-Mix's group names ``f"{y}{place}"``. Table 3 prints its columns as "L,L", "W,W",
"L,W", "W,L" and says only that L is land and W water, not which letter is the bird.
Read here as (bird, background), the reading under which the two columns of each bird
type agree closely in every row, as they should for a classifier of bird species; the
text's "+3.45 over Diff-AUG on (water, land)" is the "W,L" column, waterbirds on land.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks
from diffii_datasets.settings.base import FAMILIES, list_settings

__all__ = [
    "BACKBONE_NAMES",
    "DATASET_COLUMNS",
    "PUBLISHED",
    "TABLES_FILE",
    "WATERBIRDS_COLUMNS",
    "WATERBIRDS_PRINTED",
    "AblationRow",
    "PaperCell",
    "PaperValue",
    "SplitRatioPoint",
    "ablation_components",
    "ablation_rows",
    "lookup",
    "method_label",
    "methods",
    "paper_cell",
    "paper_value",
    "published_accuracy",
    "split_ratio_points",
    "table_columns",
    "table_rows",
]

TABLES_FILE = Path(__file__).resolve().parents[1] / "data" / "paper" / "tables.json"

BACKBONE_NAMES = {"resnet50": "ResNet-50", "vit_b_16": "ViT-B/16"}
"""The backbones as a :class:`PaperCell` names them (the paper's text writes ResNet-50; Table 1's block, ResNet50)."""


class _DatasetColumns(Mapping[str, str]):
    """Dataset family -> its label as printed (each family declares it: Table 1 prints "Car"), in the printed order
    (Table 1's columns, Pet before Car; then the long-tail families); read on first use."""

    @functools.cached_property
    def _columns(self) -> dict[str, str]:
        printed = list(table_columns(1))

        def position(family: Any) -> tuple[int, int]:
            label = family.paper_column
            return (family.kind != "few-shot", printed.index(label) if label in printed else len(printed))

        return {family.name: family.paper_column for family in sorted(FAMILIES.values(), key=position)}

    def __getitem__(self, family: str) -> str:
        return self._columns[family]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


DATASET_COLUMNS: Mapping[str, str] = _DatasetColumns()
"""Dataset family -> its label as printed (Table 1 prints "Car"), in the printed order (Pet before Car)."""

WATERBIRDS_PRINTED = ("L,L", "L,W", "W,L", "W,W")
"""Table 3's printed column of each library group (test00, test01, test10, test11): (bird, background)."""

WATERBIRDS_COLUMNS = ("(L, L)", "(L, W)", "(W, L)", "(W, W)")
"""The same groups as a :class:`PaperCell` addresses them."""

_TABLES = (1, 2, 3)
_COORDINATES = {1: ("shots", "dataset"), 2: ("dataset", "imbalance_factor"), 3: ("group",)}  # the column last
_KINDS = {1: "few-shot", 2: "long-tail"}
_AVG = "Avg"


@dataclass(frozen=True)
class PaperCell:
    """A cell of the paper's tables: ``table`` ("Table 1"), ``row`` (the method, as printed) and ``column``.

    ``column`` addresses the column within the table: "ResNet-50, CUB, 5-shot" (Table 1),
    "CUB-LT, IF=100" (Table 2), "(W, L)" (Table 3); "Avg" takes the dataset's place.
    """

    table: str
    row: str
    column: str

    def __str__(self) -> str:
        return f"{self.table}, row {self.row}, column {self.column}"


@dataclass(frozen=True)
class PaperValue:
    """A cell's number; ``difference`` is an Avg cell's printed difference from the baseline row's Avg."""

    cell: PaperCell
    value: float
    difference: float | None = None
    printed: bool = True  # False: computed here, the paper does not print it (Table 2's Avg of rows other than CE)
    note: str | None = None  # why the printed number does not add up, or how it was computed


@dataclass(frozen=True)
class AblationRow:
    """A row of Table 4 (5-shot Aircraft, ResNet-50): the components checked, LPIPS (%) and accuracy."""

    components: tuple[str, ...]
    lpips: float
    accuracy: float


@dataclass(frozen=True)
class SplitRatioPoint:
    """A point of Figure 7 (5-shot CUB, ResNet-50): split ratio s, LPIPS (%) and CLIP score."""

    split_ratio: float
    lpips: float
    clip_score: float


@functools.cache
def _data() -> dict[str, Any]:
    return json.loads(TABLES_FILE.read_text(encoding="utf-8"))


def _table(table: int) -> dict[str, Any]:
    return _data()["tables"][f"Table {table}"]


def _address(table: int, backbone: str, header: str, column: str) -> str:
    """The :attr:`PaperCell.column` of a printed column of a block."""
    if table == 1:
        return f"{BACKBONE_NAMES[backbone]}, {column}, {header}"
    if table == 2:
        return f"{header}, {column}"
    return column if column == _AVG else WATERBIRDS_COLUMNS[WATERBIRDS_PRINTED.index(column)]


@functools.cache
def _index() -> dict[PaperCell, PaperValue]:
    """Every cell of Tables 1-3 (Avg cells included, computed where the paper prints none)."""
    backbones = {printed: name for name, printed in _data()["backbones"].items()}
    index = {}
    for table in _TABLES:
        spec = _table(table)
        for block in spec["blocks"]:
            backbone, columns = backbones[block["backbone"]], block["columns"]
            notes = {(note["row"], column): note["text"] for note in block["notes"] for column in note["columns"]}
            for row, values in block["values"].items():
                if len(values) != len(columns) + 2:
                    raise ValueError(f"{TABLES_FILE}: Table {table}, {block['header']}, row {row} must hold "
                                     f"{len(columns) + 2} values (the columns, Avg, difference), got {len(values)}")
                *cells, average, difference = values
                for column, value in [*zip(columns, cells), (_AVG, average)]:
                    note, printed = notes.get((row, column)), True
                    if value is None:  # an Avg the paper leaves out: the mean of the row's cells, marked
                        value, printed, note = round(sum(cells) / len(cells), 2), False, spec["unprinted_average"]
                    cell = PaperCell(f"Table {table}", row, _address(table, backbone, block["header"], column))
                    extra = {"difference": difference} if column == _AVG and row != spec["baseline"] else {}
                    index[cell] = PaperValue(cell, value, printed=printed, note=note, **extra)
    return index


@functools.cache
def _backbones(table: int) -> frozenset[str]:
    printed = {block["backbone"] for block in _table(table)["blocks"]}
    return frozenset(name for name, label in _data()["backbones"].items() if label in printed)


@functools.cache
def _published() -> dict[PaperCell, float]:
    return {cell: entry.value for cell, entry in _index().items() if entry.printed}


if TYPE_CHECKING:
    PUBLISHED: dict[PaperCell, float]


def __getattr__(name: str) -> Any:
    """``PUBLISHED``: every printed number of Tables 1-3 by cell (percent), loaded on first use."""
    if name == "PUBLISHED":
        return _published()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def methods() -> tuple[str, ...]:
    """The methods with a row in Tables 1-3, in an order that keeps every table's printed row order."""
    return tuple(_data()["methods"])


def method_label(method: str, table: int) -> str | None:
    """The printed label of ``method``'s row of Table ``table`` (``diff-ii`` -> "Ours"), None without a row."""
    _checks.check_choice(table, "table", _TABLES)
    return _data()["methods"][_check_method(method)].get(f"Table {table}")


def table_rows(table: int) -> tuple[str, ...]:
    """Table ``table``'s row labels in the printed order."""
    _checks.check_choice(table, "table", _TABLES)
    return tuple(label for label, _ in _table(table)["rows"])


def table_columns(table: int) -> tuple[str, ...]:
    """The printed labels of each block's columns, before "Avg": Table 1's datasets, Table 2's IFs, Table 3's groups."""
    _checks.check_choice(table, "table", _TABLES)
    return tuple(_table(table)["blocks"][0]["columns"])


def _check_method(method: str) -> str:
    return _checks.check_choice(method, "method", tuple(_data()["methods"]))


def lookup(table: int, method: str, *, backbone: str = "resnet50", dataset: str | None = None,
           shots: int | None = None, imbalance_factor: float | None = None, group: int | None = None,
           average: bool = False) -> PaperValue | None:
    """A cell of Table 1, 2 or 3 by coordinates; None where the paper has no such cell.

    Table 1 takes ``shots`` and ``dataset`` (``cub``, ``aircraft``, ``pet``, ``cars``),
    Table 2 ``dataset`` (``cub-lt``, ``flower-lt``) and ``imbalance_factor``, Table 3
    ``group`` (0-3: test00, test01, test10, test11); ``average=True`` instead of the
    dataset (Table 1), imbalance factor (Table 2) or group (Table 3) gives the Avg cell
    with its difference. ``method`` is a name of :func:`methods`; a method without a
    row in the table, a backbone, shot count or factor the paper did not run gives None.
    """
    _checks.check_choice(table, "table", _TABLES)
    _check_method(method)
    _checks.check_bool(average, "average")
    given = {"dataset": dataset, "shots": shots, "imbalance_factor": imbalance_factor, "group": group}
    for name, value in given.items():
        if value is not None and name not in _COORDINATES[table]:
            _checks.fail(ValueError, name, f"None for Table {table} (it takes {' and '.join(_COORDINATES[table])})",
                         value)
    column_of = _COORDINATES[table][-1]
    if average == (given[column_of] is not None):
        raise ValueError(f"Table {table}: pass {column_of} or average=True, exactly one")
    families = [family for family in DATASET_COLUMNS if FAMILIES[family].kind == _KINDS.get(table)]  # 1 and 2
    if table == 1:
        shots = _checks.check_int(shots, "shots", minimum=1)
        label = _AVG if average else DATASET_COLUMNS[_checks.check_choice(dataset, "dataset", families)]
        column = f"{BACKBONE_NAMES.get(backbone)}, {label}, {shots}-shot"
    elif table == 2:
        label = DATASET_COLUMNS[_checks.check_choice(dataset, "dataset", families)]
        factor = None if average else _checks.check_number(imbalance_factor, "imbalance_factor", minimum=1)
        column = f"{label}, {_AVG if average else f'IF={factor:g}'}"
    else:
        column = _AVG if average else WATERBIRDS_COLUMNS[_checks.check_int(group, "group", minimum=0, maximum=3)]
    row = method_label(method, table)
    if row is None or backbone not in _backbones(table):
        return None
    return _index().get(PaperCell(f"Table {table}", row, column))


def paper_cell(setting: str, backbone: str, *, baseline: bool = False, group: int | None = None,
               method: str | None = None) -> PaperCell | None:
    """The cell that reports ``setting`` with ``backbone`` for ``method`` (default: "Ours", or "Original" when
    ``baseline``).

    ``setting`` is a paper setting name or ``"waterbirds"`` (with ``group`` 0-3, or None
    for no single cell); None when the paper has no such cell (ViT-B/16 on a long tail,
    a setting or a method that is not the paper's, a method without a row in that table).
    """
    if method is None:
        method = "original" if baseline else "diff-ii"
    elif baseline and method != "original":
        raise ValueError(f"baseline=True is the method 'original'; got method={method!r}")
    if method not in methods():
        return None
    if setting == "waterbirds":
        found = None if group is None else lookup(3, method, backbone=backbone, group=group)
    else:
        spec = next((paper for paper in list_settings() if paper.name == setting), None)
        if spec is None:
            return None
        if spec.long_tail:
            found = lookup(2, method, backbone=backbone, dataset=spec.family, imbalance_factor=spec.imbalance_factor)
        else:
            found = lookup(1, method, backbone=backbone, dataset=spec.family, shots=spec.shots)
    return None if found is None else found.cell


def paper_value(cell: PaperCell | None) -> PaperValue | None:
    """The number of ``cell`` with its note (computed Avg cells included), or None."""
    return None if cell is None else _index().get(cell)


def published_accuracy(cell: PaperCell | None) -> float | None:
    """The printed number of ``cell``, or None (no cell, or one the paper does not print)."""
    return None if cell is None else _published().get(cell)


def ablation_components() -> dict[str, str]:
    """Table 4's column abbreviations and what they stand for (CL: Concept Learning, ...)."""
    return dict(_data()["tables"]["Table 4"]["components"])


def ablation_rows() -> tuple[AblationRow, ...]:
    """Table 4's rows as printed; the last is the full method (Table 1's ResNet50 5-shot Aircraft "Ours")."""
    return tuple(AblationRow(tuple(checked), lpips, accuracy)
                 for checked, lpips, accuracy in _data()["tables"]["Table 4"]["rows"])


def split_ratio_points() -> tuple[SplitRatioPoint, ...]:
    """Figure 7's point labels by split ratio (assigned by their position in the figure: an inference)."""
    return tuple(SplitRatioPoint(*point) for point in _data()["tables"]["Figure 7"]["points"])
