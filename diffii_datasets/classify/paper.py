"""Where the paper reports each setting's accuracy, and the published numbers that are recorded here.

The paper (CVPR 2025, arXiv 2408.16266v2) reports top-1 accuracy in percent, averaged
over three trials: Table 1 (few-shot; rows "Original" and "Ours", one column per
backbone, dataset and shot count), Table 2 (long tail, ResNet-50; rows "CE" and "Ours",
one column per dataset and imbalance factor) and Table 3 (OOD on Waterbirds; rows
"Original" and "Ours", one column per (bird, background) group: L = land, W = water).

:data:`PUBLISHED` holds the numbers of those cells. The copy of the paper this project
works from (``shared/reference/diff-ii-paper.md``) carries the captions and the text
but not the table bodies, so no cell is recorded yet: the report shows "not recorded"
in the paper column until a cell is added here, keyed by its :class:`PaperCell`. What
the text states is relative and kept for reference only: few-shot, the average gain
over "Original" of 10.05 points for Diff-II against 3.56 for the others (Sec. 4.1);
long tail, +3.6 over Diff-Mix on average on CUB-LT, shrinking from 5.8 (IF 10) to 0.86
(IF 100); OOD, +11.39 on average over "Original" and +3.45 over Diff-AUG on the
(water, land) group (Sec. 4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BACKBONE_NAMES", "PUBLISHED", "PaperCell", "paper_cell", "published_accuracy"]

BACKBONE_NAMES = {"resnet50": "ResNet-50", "vit_b_16": "ViT-B/16"}
_DATASETS = {"cub": "CUB", "aircraft": "Aircraft", "cars": "Cars", "pet": "Pet", "cub-lt": "CUB-LT",
             "flower-lt": "Flower-LT"}
WATERBIRDS_COLUMNS = ("(L, L)", "(L, W)", "(W, L)", "(W, W)")
"""Table 3's groups, (bird, background), in the order of the authors' lists test00, test01, test10, test11."""


@dataclass(frozen=True)
class PaperCell:
    """A cell of the paper's tables: ``table`` ("Table 1"), ``row`` (the method) and ``column``."""

    table: str
    row: str
    column: str

    def __str__(self) -> str:
        return f"{self.table}, row {self.row}, column {self.column}"


PUBLISHED: dict[PaperCell, float] = {}
"""Published accuracies (percent) by cell; see the module docstring for why it is empty."""


def paper_cell(setting: str, backbone: str, *, baseline: bool, group: int | None = None) -> PaperCell | None:
    """The cell that reports ``setting`` with ``backbone``: row "Ours", or the baseline row when ``baseline``.

    ``setting`` is a paper setting name or ``"waterbirds"`` (with ``group`` 0-3, or None
    for no single cell); None when the paper has no such cell (ViT-B/16 on a long tail,
    a setting that is not the paper's).
    """
    from diffii_datasets.datasets.settings import list_settings

    backbone_name = BACKBONE_NAMES.get(backbone)
    if backbone_name is None:
        return None
    if setting == "waterbirds":
        if backbone != "resnet50" or group is None:
            return None
        return PaperCell("Table 3", "Original" if baseline else "Ours", WATERBIRDS_COLUMNS[group])
    spec = next((paper for paper in list_settings() if paper.name == setting), None)
    if spec is None:
        return None
    dataset = _DATASETS[spec.family]
    if spec.long_tail:
        if backbone != "resnet50":
            return None
        return PaperCell("Table 2", "CE" if baseline else "Ours", f"{dataset}, IF={spec.imbalance_factor:g}")
    return PaperCell("Table 1", "Original" if baseline else "Ours", f"{backbone_name}, {dataset}, {spec.shots}-shot")


def published_accuracy(cell: PaperCell | None) -> float | None:
    """The recorded number of ``cell``, or None."""
    return None if cell is None else PUBLISHED.get(cell)
