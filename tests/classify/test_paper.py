"""The paper's numbers as data: internally consistent, as printed, looked up by the library's names; no torch."""

import subprocess
import sys

import pytest

from diffii_datasets.classify import paper
from diffii_datasets.classify.paper import PaperCell, lookup, paper_cell, paper_value, published_accuracy
from diffii_datasets.settings.base import FAMILIES

FEW_SHOT = ("cub", "aircraft", "pet", "cars")
LONG_TAIL = ("cub-lt", "flower-lt")


def blocks():
    """(table, coordinates of one block) for every block of Tables 1-3."""
    return ([(1, {"backbone": backbone, "shots": shots}) for backbone in ("resnet50", "vit_b_16") for shots in (5, 10)]
            + [(2, {"dataset": dataset}) for dataset in LONG_TAIL] + [(3, {})])


def columns(table):
    """The keyword that picks a column of ``table``, and its values in the printed order."""
    return {1: ("dataset", FEW_SHOT), 2: ("imbalance_factor", (100, 20, 10)), 3: ("group", (0, 3, 1, 2))}[table]


def rows(table):
    return [method for method in paper.methods() if paper.method_label(method, table) is not None]


def row_cells(table, method, block):
    name, values = columns(table)
    return [lookup(table, method, **block, **{name: value}) for value in values]


def inconsistent_cells():
    """The Avg cells whose printed Avg is not the mean of the row's cells, or whose difference is not
    Avg - baseline Avg, within the rounding of two-decimal numbers."""
    found = set()
    for table, block in blocks():
        baseline = lookup(table, "original", **block, average=True)
        for method in rows(table):
            average = lookup(table, method, **block, average=True)
            cells = [cell.value for cell in row_cells(table, method, block)]
            if average.printed and abs(sum(cells) / len(cells) - average.value) > 0.01:
                found.add(average.cell)
            if average.difference is not None and abs(average.value - baseline.value - average.difference) > 0.01:
                found.add(average.cell)
    return found


def test_every_printed_average_and_difference_adds_up_except_the_two_marked_cells():
    found = inconsistent_cells()
    assert found == {PaperCell("Table 1", "Diff-AUG", "ResNet-50, Avg, 5-shot"),
                     PaperCell("Table 1", "Real-Filter", "ResNet-50, Avg, 10-shot")}
    for cell in found:
        assert paper_value(cell).printed and paper_value(cell).note.startswith("As printed")
    # No other printed cell carries a note, but the Car cell of the Real-Filter row whose Avg does not add up.
    noted = {cell for cell in paper.PUBLISHED if paper_value(cell).note is not None}
    assert noted == found | {PaperCell("Table 1", "Real-Filter", "ResNet-50, Car, 10-shot")}
    assert paper_value(PaperCell("Table 1", "Real-Filter", "ResNet-50, Car, 10-shot")).value == \
        lookup(1, "original", shots=10, dataset="cars").value


def test_table2_averages_are_computed_and_marked_except_ce():
    for dataset in LONG_TAIL:
        ce = lookup(2, "original", dataset=dataset, average=True)
        assert ce.printed and ce.note is None and ce.difference is None
        assert ce.cell == PaperCell("Table 2", "CE", f"{paper.DATASET_COLUMNS[dataset]}, Avg")
        for method in rows(2)[1:]:
            average = lookup(2, method, dataset=dataset, average=True)
            cells = [cell.value for cell in row_cells(2, method, {"dataset": dataset})]
            assert not average.printed and "not printed" in average.note
            assert average.value == pytest.approx(sum(cells) / 3, abs=0.005)
            assert average.value == pytest.approx(ce.value + average.difference, abs=0.01)
            assert average.cell not in paper.PUBLISHED and published_accuracy(average.cell) is None


def test_table4_full_method_is_table1_resnet50_5shot_aircraft_ours():
    ablation = paper.ablation_rows()
    components = paper.ablation_components()
    assert list(components) == ["CL", "LI", "SI", "SE", "TD"]
    assert ablation[0].components == () and all(set(row.components) <= set(components) for row in ablation)
    assert ablation[-1].components == ("CL", "SI", "SE", "TD")
    assert ablation[-1].accuracy == lookup(1, "diff-ii", shots=5, dataset="aircraft").value
    assert max(row.accuracy for row in ablation) == ablation[-1].accuracy  # the full method is best


def test_figure7_trends_are_the_texts():
    points = paper.split_ratio_points()
    assert [point.split_ratio for point in points] == sorted(point.split_ratio for point in points)
    assert points[-1].split_ratio == 1.0
    # "with the increasing s, the CLIP score decreases ... while the LPIPS has a relatively large increase"
    assert all(a.lpips < b.lpips and a.clip_score > b.clip_score for a, b in zip(points, points[1:]))


def test_method_order_keeps_every_tables_printed_row_order():
    for table in (1, 2, 3):
        assert [paper.method_label(method, table) for method in rows(table)] == list(paper.table_rows(table))
        assert paper.method_label("diff-ii", table) == "Ours"
        assert paper.table_rows(table)[-1] == "Ours"
    assert paper.method_label("original", 1) == "Original" and paper.method_label("original", 2) == "CE"
    library = ["original", "mixup", "cutmix", "real-filter", "real-guidance", "real-mix", "da-fusion", "diff-aug",
               "diff-mix", "diff-ii", "real-gen"]
    assert set(library) <= set(paper.methods())
    assert paper.method_label("mixup", 2) is None and lookup(3, "mixup", group=0) is None


def test_dataset_columns_are_printed_in_the_printed_order():
    assert set(paper.DATASET_COLUMNS) == set(FAMILIES)
    assert [paper.DATASET_COLUMNS[family] for family in FEW_SHOT] == list(paper.table_columns(1))
    assert paper.DATASET_COLUMNS["cars"] == "Car"
    assert paper.table_columns(2) == ("IF=100", "IF=20", "IF=10")


def test_waterbirds_groups_map_to_the_printed_columns_as_bird_then_background():
    from diffii_datasets.classify.waterbirds import GROUP_NAMES

    letter = {"landbird": "L", "waterbird": "W", "land": "L", "water": "W"}
    for g, name in enumerate(GROUP_NAMES):  # "landbird on water": y = 0, place = 1, the authors' test01
        bird, _, place = name.split()
        assert paper.WATERBIRDS_PRINTED[g] == f"{letter[bird]},{letter[place]}"
        assert paper.WATERBIRDS_COLUMNS[g] == f"({letter[bird]}, {letter[place]})"
        assert lookup(3, "diff-ii", group=g).cell.column == paper.WATERBIRDS_COLUMNS[g]
    assert paper.table_columns(3) == tuple(paper.WATERBIRDS_PRINTED[g] for g in columns(3)[1])
    # The reading fits the numbers: a species classifier's accuracy follows the bird type, so the two groups of
    # one bird type agree more closely than the two groups of one background, in every row.
    for method in rows(3):
        landland, landwater, waterland, waterwater = (lookup(3, method, group=g).value for g in range(4))
        same_bird = abs(landland - landwater) + abs(waterland - waterwater)
        same_place = abs(landland - waterland) + abs(landwater - waterwater)
        assert same_bird < same_place, method
    # The text: Ours beats Diff-AUG by 3.45 on "(water, land)", waterbirds on land.
    assert lookup(3, "diff-ii", group=2).value - lookup(3, "diff-aug", group=2).value == pytest.approx(3.45)


def test_lookup_by_coordinates():
    ours = lookup(1, "diff-ii", backbone="vit_b_16", shots=10, dataset="pet")
    assert ours.cell == PaperCell("Table 1", "Ours", "ViT-B/16, Pet, 10-shot") and ours.printed and ours.note is None
    average = lookup(1, "diff-ii", shots=5, average=True)
    assert average.cell.column == "ResNet-50, Avg, 5-shot" and average.difference is not None
    assert lookup(1, "original", shots=5, average=True).difference is None
    assert lookup(2, "diff-mix", dataset="flower-lt", imbalance_factor=20).cell == \
        PaperCell("Table 2", "Diff-Mix", "Flower-LT, IF=20")
    assert lookup(2, "diff-mix", dataset="flower-lt", imbalance_factor=20.0) == \
        lookup(2, "diff-mix", dataset="flower-lt", imbalance_factor=20)
    assert lookup(3, "diff-ii", average=True).cell == PaperCell("Table 3", "Ours", "Avg")


@pytest.mark.parametrize("kwargs", [
    dict(table=1, method="diff-ii", shots=7, dataset="cub"),  # a shot count the paper did not run
    dict(table=2, method="diff-ii", dataset="cub-lt", imbalance_factor=50),
    dict(table=2, method="diff-ii", backbone="vit_b_16", dataset="cub-lt", average=True),  # ResNet-50 only
    dict(table=3, method="diff-ii", backbone="vit_b_16", group=0),
    dict(table=1, method="diff-ii", backbone="resnet18", shots=5, dataset="cub"),
    dict(table=1, method="cmo", shots=5, dataset="cub"),  # a method without a row in the table
])
def test_lookup_gives_none_where_the_paper_has_no_cell(kwargs):
    assert lookup(**kwargs) is None


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(table=4, method="diff-ii"), ValueError, "table must be one of 1, 2, 3"),
    (dict(table=1, method="ours", shots=5, dataset="cub"), ValueError, "method must be one of 'original'"),
    (dict(table=1, method="diff-ii", shots=5), ValueError, "pass dataset or average=True"),
    (dict(table=1, method="diff-ii", shots=5, dataset="cub", average=True), ValueError, "exactly one"),
    (dict(table=1, method="diff-ii", shots=5, dataset="cub-lt"), ValueError, "dataset must be one of 'cub'"),
    (dict(table=1, method="diff-ii", shots="5", dataset="cub"), TypeError, "shots must be"),
    (dict(table=2, method="diff-ii", dataset="cub", imbalance_factor=10), ValueError, "dataset must be one of"),
    (dict(table=2, method="diff-ii", dataset="cub-lt", shots=5, imbalance_factor=10), ValueError,
     "shots must be None for Table 2"),
    (dict(table=3, method="diff-ii", group=4), ValueError, "group must be an int in"),
    (dict(table=3, method="diff-ii", dataset="cub", group=0), ValueError, "dataset must be None for Table 3"),
    (dict(table=3, method="diff-ii", average=1), TypeError, "average must be a bool"),
])
def test_lookup_refuses_bad_coordinates_naming_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        lookup(**kwargs)


def test_paper_cell_by_setting_now_has_numbers():
    cell = paper_cell("aircraft-5shot", "resnet50", baseline=False)
    assert published_accuracy(cell) == lookup(1, "diff-ii", shots=5, dataset="aircraft").value
    assert paper_cell("cars-10shot", "resnet50", baseline=True) == \
        PaperCell("Table 1", "Original", "ResNet-50, Car, 10-shot")
    assert paper_cell("cub-lt-if20", "resnet50", method="real-gen") == PaperCell("Table 2", "Real-Gen", "CUB-LT, IF=20")
    assert paper_value(paper_cell("waterbirds", "resnet50", method="da-fusion", group=3)) == \
        lookup(3, "da-fusion", group=3)
    assert paper_cell("cub-5shot", "resnet50", method="my-own-method") is None
    assert paper_cell("waterbirds", "resnet50", method="mixup", group=0) is None
    with pytest.raises(ValueError, match="baseline=True is the method 'original'"):
        paper_cell("cub-5shot", "resnet50", baseline=True, method="diff-ii")
    # every paper setting has both its rows, with a printed number
    from diffii_datasets.settings.base import list_settings

    for setting in list_settings():
        for baseline in (False, True):
            assert published_accuracy(paper_cell(setting.name, "resnet50", baseline=baseline)) is not None


def test_every_published_number_is_a_printed_percentage():
    assert paper.PUBLISHED and all(0 < value < 100 for value in paper.PUBLISHED.values())
    assert all(paper_value(cell).printed for cell in paper.PUBLISHED)
    with pytest.raises(AttributeError, match="no attribute 'PUBLISHD'"):
        paper.PUBLISHD


def test_the_tables_load_lazily_once_and_without_torch():
    code = ("import sys; from diffii_datasets.classify import paper; assert paper._data.cache_info().currsize == 0; "
            "paper.lookup(1, 'diff-ii', shots=5, dataset='cub'); paper.lookup(3, 'diff-ii', group=1); "
            "paper.PUBLISHED; info = paper._data.cache_info(); assert info.misses == 1, info; "
            "assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_malformed_row_names_the_file(monkeypatch, tmp_path):
    text = paper.TABLES_FILE.read_text(encoding="utf-8").replace("[54.52, 36.63, 86.98, 40.10, 54.56, null]",
                                                                 "[54.52, 36.63, 86.98, 54.56, null]")
    (tmp_path / "tables.json").write_text(text, encoding="utf-8")
    monkeypatch.setattr(paper, "TABLES_FILE", tmp_path / "tables.json")
    for cached in (paper._data, paper._index, paper._backbones, paper._published):
        cached.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"tables.json: Table 1, 5-shot, row Original must hold 6 values"):
            lookup(1, "diff-ii", shots=5, dataset="cub")
    finally:
        monkeypatch.undo()
        for cached in (paper._data, paper._index, paper._backbones, paper._published):
            cached.cache_clear()
