"""Our runs beside the paper, shaped like its tables: the document, its Markdown and its HTML page."""

import json
import statistics
from html.parser import HTMLParser

import pytest

from diffii_datasets.classify.comparison import (WATERBIRDS_SETTINGS, build_comparison, format_markdown,
                                                 render_comparison_html, report_accuracies)
from diffii_datasets.classify.paper import lookup
from diffii_datasets.classify.report import build_report
from tests.classify.test_report import run

FEW_SHOT = {"cub": 55.0, "aircraft": 37.0, "pet": 87.0, "cars": 40.0}
GAIN = {"original": 0.0, "real-filter": 2.0, "diff-ii": 8.0, "my-augmentation": 1.0}


def seeds(base):
    return [base, base + 0.5, base - 0.3]


def few_shot_runs():
    """Four methods on the four 5-shot datasets with ResNet-50, given in no particular order."""
    runs = {}
    for method in ("diff-ii", "my-augmentation", "original", "real-filter"):
        for family in ("cars", "pet", "cub", "aircraft"):
            runs[method, f"{family}-5shot", "resnet50"] = seeds(FEW_SHOT[family] + GAIN[method])
    return runs


def markdown_tables(text):
    """{heading: [row cells, ...]} of the Markdown tables (header first, the --- line left out)."""
    tables, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
            tables[heading] = []
        elif line.startswith("| "):
            tables[heading].append([cell.strip() for cell in line.strip("|").split(" | ")])
    return tables


def ours(values):
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def test_markdown_is_shaped_like_table1():
    runs = few_shot_runs()
    document = build_comparison(runs, figure="best test accuracy over epochs")
    assert json.loads(json.dumps(document)) == document
    text = format_markdown(document)
    assert "Accuracy: best test accuracy over epochs." in text
    table = markdown_tables(text)["Few-shot classification, ResNet-50 (paper: Table 1)"]
    assert table[0] == ["Method", "5-shot CUB", "5-shot Aircraft", "5-shot Pet", "5-shot Car", "5-shot Avg"]
    assert [row[0] for row in table[1:]] == ["Original", "Real-Filter", "Ours", "my-augmentation"]
    datasets = ("cub", "aircraft", "pet", "cars")
    for row, method in zip(table[1:], ("original", "real-filter", "diff-ii", "my-augmentation")):
        for cell, dataset in zip(row[1:5], datasets):
            values = runs[method, f"{dataset}-5shot", "resnet50"]
            paper = lookup(1, method, shots=5, dataset=dataset) if method != "my-augmentation" else None
            assert cell == ours(values) + ("" if paper is None else f" (paper {paper.value:.2f})")
        average = statistics.mean(statistics.mean(runs[method, f"{d}-5shot", "resnet50"]) for d in datasets)
        baseline = statistics.mean(statistics.mean(runs["original", f"{d}-5shot", "resnet50"]) for d in datasets)
        text_average = f"{average:.2f}" + ("" if method == "original" else f" ({average - baseline:+.2f})")
        paper = lookup(1, method, shots=5, average=True) if method != "my-augmentation" else None
        if paper is not None:
            text_average += f" (paper {paper.value:.2f}" + (
                "" if paper.difference is None else f", {paper.difference:+.2f}") + ")"
        assert row[5] == text_average


def test_marked_cells_get_footnotes_in_reading_order():
    runs = {(method, f"{family}-{shots}shot", "resnet50"): [60.0]
            for method in ("real-filter", "diff-aug", "original") for family in FEW_SHOT for shots in (5, 10)}
    document = build_comparison(runs)
    diff_aug = lookup(1, "diff-aug", shots=5, average=True).note
    real_filter = lookup(1, "real-filter", shots=10, average=True).note
    assert document["notes"] == [real_filter, diff_aug]  # Real-Filter's row comes before Diff-AUG's
    assert lookup(1, "real-filter", shots=10, dataset="cars").note == real_filter
    text = format_markdown(document)
    table = markdown_tables(text)["Few-shot classification, ResNet-50 (paper: Table 1)"]
    header, rows = table[0], {row[0]: dict(zip(table[0], row)) for row in table[1:]}
    assert header[6:] == ["10-shot CUB", "10-shot Aircraft", "10-shot Pet", "10-shot Car", "10-shot Avg"]
    assert rows["Real-Filter"]["10-shot Car"] == "60.00 (paper 69.64[^1])"
    assert rows["Real-Filter"]["10-shot Avg"].endswith("(paper 70.66[^1], -0.45)")
    assert rows["Diff-AUG"]["5-shot Avg"] == "60.00 (+0.00) (paper 63.04[^2], +8.78)"
    assert sum("[^" in cell for row in rows.values() for cell in row.values()) == 3
    assert text.rstrip().splitlines()[-2:] == [f"[^1]: {real_filter}", f"[^2]: {diff_aug}"]


def test_cells_not_run_show_a_dash_and_partial_groups_no_paper_average():
    runs = {("original", "cub-5shot", "resnet50"): [50.0], ("original", "pet-5shot", "resnet50"): [80.0],
            ("original", "cars-5shot", "resnet50"): [40.0], ("diff-ii", "cub-5shot", "resnet50"): [60.0, 62.0]}
    table = markdown_tables(format_markdown(build_comparison(runs)))["Few-shot classification, ResNet-50 (paper: "
                                                                     "Table 1)"]
    assert table[0] == ["Method", "5-shot CUB", "5-shot Pet", "5-shot Car", "5-shot Avg"]
    assert table[1] == ["Original", "50.00 (paper 54.52)", "80.00 (paper 86.98)", "40.00 (paper 40.10)",
                        "56.67"]  # three of the paper's four columns: no paper Avg beside ours
    assert table[2] == ["Ours", "61.00 ± 1.41 (paper 62.22)", "-", "-", "-"]


def test_long_tail_and_waterbirds_follow_tables_2_and_3():
    runs = {("diff-ii", f"flower-lt-if{factor}", "resnet50"): [90.0] for factor in (10, 100, 20)}
    runs["mixup", "flower-lt-if100", "resnet50"] = [85.0]
    runs.update({("diff-ii", setting, "resnet50"): [40.0 + g] for g, setting in enumerate(WATERBIRDS_SETTINGS)})
    document = build_comparison(runs)
    tables = markdown_tables(format_markdown(document))
    assert list(tables) == ["Long-tail classification, ResNet-50 (paper: Table 2)",
                            "OOD classification on Waterbirds, ResNet-50 (paper: Table 3)"]
    long_tail, waterbirds = tables.values()
    assert long_tail[0] == ["Method", "Flower-LT IF=100", "Flower-LT IF=20", "Flower-LT IF=10", "Flower-LT Avg"]
    assert long_tail[1] == ["Mixup", "85.00", "-", "-", "-"]  # no Mixup row in Table 2: ours only
    computed = lookup(2, "diff-ii", dataset="flower-lt", average=True)
    assert long_tail[2][4] == f"90.00 (paper {computed.value:.2f}[^1], {computed.difference:+.2f})"
    assert document["notes"] == [computed.note]
    assert waterbirds[0] == ["Method", "L,L", "W,W", "L,W", "W,L", "Avg"]
    # the library's groups 0-3 (test00 ... test11) land in the printed columns: 0, 3, 1, 2
    assert [cell.split(" ")[0] for cell in waterbirds[1][1:5]] == ["40.00", "43.00", "41.00", "42.00"]
    assert waterbirds[1][2] == f"43.00 (paper {lookup(3, 'diff-ii', group=3).value:.2f})"


def test_own_data_has_no_paper_numbers():
    runs = {("original", "my-flowers", "resnet50"): [70.0], ("diff-ii", "my-flowers", "resnet50"): [80.0, 81.0],
            ("original", "my-birds", "resnet50"): [60.0], ("diff-ii", "my-birds", "resnet50"): [66.0]}
    document = build_comparison(runs)
    assert document["notes"] == [] and [table["paper_table"] for table in document["tables"]] == [None]
    text = format_markdown(document)
    assert "paper " not in text and "[^" not in text
    table = markdown_tables(text)["Other settings, ResNet-50"]
    assert table == [["Method", "my-flowers", "my-birds", "Avg"], ["original", "70.00", "60.00", "65.00"],
                     ["diff-ii", "80.50 ± 0.71", "66.00", "73.25 (+8.25)"]]


def test_tables_come_in_the_papers_order_and_other_shot_counts_join_table1():
    runs = {("diff-ii", "my-data", "resnet50"): [1.0], ("diff-ii", "cub-lt-if100", "resnet50"): [2.0],
            ("diff-ii", "cub-5shot", "vit_b_16"): [3.0], ("diff-ii", "cub-7shot", "resnet50"): [4.0],
            ("diff-ii", "cub-5shot", "resnet50"): [5.0], ("diff-ii", "cub-5shot", "convnext"): [6.0]}
    document = build_comparison(runs)
    assert [(table["title"], table["paper_table"]) for table in document["tables"]] == [
        ("Few-shot classification, ResNet-50", "Table 1"), ("Few-shot classification, ViT-B/16", "Table 1"),
        ("Few-shot classification, convnext", "Table 1"), ("Long-tail classification, ResNet-50", "Table 2"),
        ("Other settings, ResNet-50", None)]
    first = markdown_tables(format_markdown(document))["Few-shot classification, ResNet-50 (paper: Table 1)"]
    assert first == [["Method", "5-shot CUB", "7-shot CUB"], ["Ours", "5.00 (paper 62.22)", "4.00"]]
    convnext = markdown_tables(format_markdown(document))["Few-shot classification, convnext (paper: Table 1)"]
    assert convnext[1] == ["Ours", "6.00"]  # a backbone the paper did not train


def test_reports_give_the_accuracies_of_their_seeds():
    report = build_report([run(0, [40.0, 41.5]), run(1, [42.0, 39.0])], setting="aircraft-5shot",
                          backbone="resnet50")
    assert report_accuracies(report) == {("diff-ii", "aircraft-5shot", "resnet50"): [41.5, 42.0]}
    assert report_accuracies(report, figure="final_test", method="da-fusion") == \
        {("da-fusion", "aircraft-5shot", "resnet50"): [41.5, 39.0]}
    baseline = build_report([run(0, [50.0], synthetic_probability=0)], setting="cub-5shot", backbone="resnet50")
    assert list(report_accuracies(baseline)) == [("original", "cub-5shot", "resnet50")]
    named = build_report([run(0, [50.0], synthetic_probability=0)], setting="cub-5shot", backbone="resnet50",
                         method="mixup")
    assert list(report_accuracies(named)) == [("mixup", "cub-5shot", "resnet50")]
    waterbirds = build_report([run(0, [30.0, 35.0], groups=True), run(1, [31.0], groups=True)],
                              setting="waterbirds", backbone="resnet50")
    by_group = report_accuracies(waterbirds)
    assert list(by_group) == [("diff-ii", setting, "resnet50") for setting in WATERBIRDS_SETTINGS]
    assert [values for values in by_group.values()] == [
        [stats["values"][0], stats["values"][1]] for stats in waterbirds["per_group"]["best_test"]]
    own = build_report([run(0, [50.0])])
    assert list(report_accuracies(own, setting="my-data")) == [("diff-ii", "my-data", "resnet50")]
    with pytest.raises(ValueError, match="setting must be given for a report of one's own data"):
        report_accuracies(own)
    with pytest.raises(ValueError, match="figure must be one of the report's figures"):
        report_accuracies(report, figure="test_at_best_val")
    assert build_comparison({**report_accuracies(report), **report_accuracies(baseline)})["tables"]


class Page(HTMLParser):
    """Tags, their attributes, and the cells (data-key -> data-value) of each table row by method."""

    def __init__(self):
        super().__init__()
        self.tags, self.rows, self.row = [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr" and "data-method" in attrs:
            self.row = self.rows.setdefault(attrs["data-method"], {})
        elif tag == "td" and "data-key" in attrs:
            self.row[attrs["data-key"]] = attrs["data-value"]


def test_html_is_one_self_contained_page_with_the_documents_numbers():
    runs = few_shot_runs()
    runs.update({("real-filter", f"{family}-10shot", "resnet50"): [70.0] for family in FEW_SHOT})
    document = build_comparison(runs)
    html = render_comparison_html(document)
    page = Page()
    page.feed(html)
    assert [tag for tag, _ in page.tags].count("html") == 1 and html.lstrip().startswith("<!doctype html>")
    assert not any(tag in ("script", "link", "img", "iframe") for tag, _ in page.tags)
    references = [attrs[name] for _, attrs in page.tags for name in ("src", "href") if name in attrs]
    assert references and all(ref.startswith("#note-") for ref in references)
    assert {f"note-{n}" for n in range(1, len(document["notes"]) + 1)} == \
        {attrs["id"] for tag, attrs in page.tags if tag == "li"}
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html
    table = document["tables"][0]
    for row in table["rows"]:
        shown = page.rows[row["method"]]
        for group in row["groups"]:
            for cell in group["cells"]:
                expected = "" if cell["ours"] is None else cell["ours"]["mean"]
                assert (float(shown[cell["setting"]]) if shown[cell["setting"]] else "") == expected
    assert float(page.rows["diff-ii"]["5-shot Avg"]) == table["rows"][2]["groups"][0]["average"]["ours"]
    assert "paper 70.66, -0.45" in html and "Real-Filter" in html


def test_html_escapes_the_names_it_shows():
    html = render_comparison_html(build_comparison({("<b>me</b>", "a&b", "resnet50"): [1.0]}), title="x < y")
    assert "<b>me</b>" not in html and "&lt;b&gt;me&lt;/b&gt;" in html and "a&amp;b" in html
    assert "<title>x &lt; y</title>" in html


@pytest.mark.parametrize("accuracies, error, message", [
    ({}, ValueError, "accuracies must be a non-empty mapping"),
    ([("diff-ii", "cub-5shot", "resnet50")], TypeError, "accuracies must be a non-empty mapping"),
    ({("diff-ii", "cub-5shot"): [1.0]}, TypeError, r"accuracies must be keyed by \(method, setting, backbone\)"),
    ({("diff-ii", "cub-5shot", "resnet50"): []}, TypeError, "must be a non-empty list of accuracies"),
    ({("diff-ii", "cub-5shot", "resnet50"): "55"}, TypeError, "must be a non-empty list of accuracies"),
    ({("diff-ii", "cub-5shot", "resnet50"): [0.62, 101.0]}, ValueError, r"\[1\] must be"),
    ({("diff-ii", "cub-5shot", "resnet50"): [True]}, TypeError, r"\[0\] must be"),
])
def test_bad_input_is_refused_naming_it(accuracies, error, message):
    with pytest.raises(error, match=message):
        build_comparison(accuracies)
