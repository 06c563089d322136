"""The report of a setting's runs carries the paper's number of the same cell, with its note."""

import json

from diffii_datasets.classify.paper import lookup
from diffii_datasets.classify.recipes import Recipe
from diffii_datasets.classify.report import build_report, format_table
from diffii_datasets.classify.results import EpochRecord, TrainResult

GROUPS = ["landbird on land", "landbird on water", "waterbird on land", "waterbird on water"]


def run(seed, accuracies, *, synthetic_probability=0.5, groups=False):
    """A finished run read back from its history (no training): one epoch per accuracy."""
    history = [EpochRecord(epoch=epoch, train_loss=1.0, train_accuracy=50.0, images_per_second=100.0, lr=0.1,
                           test_accuracy=accuracy, test_class_correct=[1, epoch % 2],
                           test_group_correct=[1, 1, epoch % 2, 0] if groups else None)
               for epoch, accuracy in enumerate(accuracies, 1)]
    recipe = Recipe(seed=seed, synthetic_probability=synthetic_probability, epochs=len(accuracies))
    return TrainResult(recipe, ["a", "b"], [2, 2], GROUPS if groups else None, [2, 2, 2, 2] if groups else None,
                       history)


def test_a_paper_setting_gets_the_number_of_its_cell():
    report = build_report([run(0, [40.0, 41.5]), run(1, [42.0, 39.0])], setting="aircraft-5shot",
                          backbone="resnet50")
    expected = lookup(1, "diff-ii", shots=5, dataset="aircraft")
    assert report["paper"] == [{"cell": str(expected.cell), "accuracy": expected.value, "note": None}]
    assert json.loads(json.dumps(report)) == report
    table = format_table(report)
    line = next(line for line in table.splitlines() if line.startswith("best test accuracy"))
    assert line.endswith(f"{expected.value:.2f} (Table 1, row Ours, column ResNet-50, Aircraft, 5-shot)")
    assert "note" not in table


def test_the_baseline_run_gets_the_original_row_and_a_method_its_own_row():
    baseline = build_report([run(0, [60.0], synthetic_probability=0)], setting="cars-10shot", backbone="vit_b_16")
    assert baseline["paper"][0]["accuracy"] == lookup(1, "original", backbone="vit_b_16", shots=10,
                                                      dataset="cars").value
    assert "method" not in baseline
    mixup = build_report([run(0, [60.0], synthetic_probability=0)], setting="cars-10shot", backbone="vit_b_16",
                         method="mixup")
    assert mixup["method"] == "mixup"
    assert mixup["paper"][0]["cell"] == "Table 1, row Mixup, column ViT-B/16, Car, 10-shot"
    assert format_table(mixup).splitlines()[0].startswith("cars-10shot, mixup, vit_b_16, baseline")


def test_a_printed_cell_that_does_not_add_up_shows_its_note():
    report = build_report([run(0, [70.0])], setting="cars-10shot", backbone="resnet50", method="real-filter")
    expected = lookup(1, "real-filter", shots=10, dataset="cars")
    assert report["paper"][0]["note"] == expected.note and expected.note
    lines = format_table(report).splitlines()
    assert any(line.endswith(f"{expected.value:.2f} [note 1] ({expected.cell})") for line in lines)
    assert lines[-1] == f"note 1: {expected.note}"


def test_waterbirds_groups_get_their_table3_columns():
    report = build_report([run(0, [30.0, 35.0], groups=True, synthetic_probability=0)], setting="waterbirds",
                          backbone="resnet50")
    values = [lookup(3, "original", group=g).value for g in range(4)]
    assert [entry["accuracy"] for entry in report["paper"]] == values
    rows = format_table(report).splitlines()[3:7]
    for row, group, column, value in zip(rows, GROUPS, ("(L, L)", "(L, W)", "(W, L)", "(W, W)"), values):
        assert row.startswith(group) and row.endswith(f"{value:.2f} (Table 3, row Original, column {column})")


def test_no_paper_cell_for_own_data_or_a_method_outside_the_table():
    assert "paper" not in build_report([run(0, [50.0])])
    report = build_report([run(0, [50.0])], setting="cub-lt-if10", backbone="resnet50", method="da-fusion")
    assert report["paper"] == [None]
    assert format_table(report).splitlines()[3].endswith("no such cell in the paper")
    own = build_report([run(0, [50.0])], setting="cub-5shot", backbone="resnet50", method="my-augmentation")
    assert own["paper"] == [None] and own["method"] == "my-augmentation"


def test_a_report_written_before_the_numbers_were_recorded_still_prints():
    report = build_report([run(0, [50.0])], setting="cub-5shot", backbone="resnet50")
    report["paper"] = [{"cell": "Table 1, row Ours, column ResNet-50, CUB, 5-shot", "accuracy": None}]
    assert format_table(report).splitlines()[3].endswith("not recorded (Table 1, row Ours, column ResNet-50, CUB, "
                                                         "5-shot)")
