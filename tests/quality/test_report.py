"""The report of a store: JSON and HTML say the same, every image of the page is inside it, provenance counts."""

import base64
import io
import json
from html.parser import HTMLParser

import pytest
from PIL import Image

from diffii_datasets.quality import QualityReport, QualitySettings, report_store
from tests.quality.stores import SUFFIXES, class_images, shifted, write_store

FAST = QualitySettings(lpips_size=32, kid_subsets=3)


class Page(HTMLParser):
    """The images of a page and the cells of its tables, by table id."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.table, self.row, self.tags = [], {}, None, None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self.table is not None:
            self.row = {}
            self.table.append(self.row)
        elif tag == "td" and "data-key" in attrs:
            self.row[attrs["data-key"]] = attrs["data-value"]

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None


@pytest.fixture(scope="module")
def written(tmp_path_factory, metric_models):
    tmp = tmp_path_factory.mktemp("report")
    names, real = class_images(4, 3)
    synthetic = [[shifted(image, k + 1) for image in images for k in range(2)] for images in real]
    store = write_store(tmp / "store", real, synthetic, names, noise_class=2, uncommitted=(3,))
    report = report_store(store, tmp / "report", models=metric_models, settings=FAST, grid_images=4, progress=False)
    return report, tmp / "report", store


def test_json_is_the_report(written):
    report, output, store = written
    data = json.loads((output / "report.json").read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    assert QualityReport.from_dict(data) == report
    assert [row["index"] for row in data["classes"]] == [0, 1, 2]
    assert data["source"]["missing_classes"] == [3] and data["source"]["path"] == str(store.path)
    assert data["models"]["random_weights"] is True
    assert data["settings"]["lpips_size"] == 32


def test_html_tables_hold_the_json_numbers(written):
    report, output, _ = written
    page = Page()
    page.feed((output / "report.html").read_text())
    data = json.loads((output / "report.json").read_text())
    for shown, row in zip(page.tables["classes"][1:], data["classes"]):
        measures = {key: row[key] for key in data["measures"]}
        assert {key: float(v) if v else None for key, v in shown.items()} == measures
    overall = {key: float(v) if v else None for key, v in page.tables["overall"][1].items()}
    assert overall == {key: data["overall"][key] for key in data["measures"]}
    assert len(page.tables["classes"]) == 1 + len(data["classes"])


def test_every_image_of_the_page_is_embedded(written):
    report, output, _ = written
    text = (output / "report.html").read_text()
    page = Page()
    page.feed(text)
    # 3 committed classes x (3 real + 4 of 6 synthetic) thumbnails, and the lambda and suffix plots.
    assert len(page.images) == 3 * (3 + 4) + 2
    for image in page.images:
        mime, _, payload = image["src"].partition(";base64,")
        assert mime in ("data:image/jpeg", "data:image/png")
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as decoded:
            decoded.load()
            assert decoded.size[0] > 0
    references = [attrs.get(name) for _, attrs in page.tags for name in ("src", "href")
                  if attrs.get(name) is not None]
    assert all(ref.startswith("data:") or ref.startswith("#class-") for ref in references)
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert "random-weight metric networks" in text


def test_provenance_from_the_store_metadata(written):
    report, _, _ = written
    overall = report.overall.provenance
    assert overall["count"] == 18 and overall["noise_started"] == 6
    assert report.overall.noise_started_share == pytest.approx(1 / 3)
    assert [row.noise_started_share for row in report.classes] == [0.0, 0.0, 1.0]
    assert overall["lam_max"] == 2.5 and sum(overall["lam_counts"]) == 12
    assert overall["suffix_counts"] == {suffix: 6 for suffix in SUFFIXES}
    assert report.classes[0].provenance["lam_edges"] == overall["lam_edges"]  # shared bins


def test_overall_measures_pool_the_classes(written):
    report, _, _ = written
    rows = report.classes
    assert report.overall.real_count == 9 and report.overall.synthetic_count == 18
    assert report.overall.lpips_synthetic == pytest.approx(sum(r.lpips_synthetic for r in rows) / 3)
    # Equal class sizes: the pooled CLIP score is the mean of the classes' (none is clamped at 0 here).
    assert all(r.clip_score > 0 for r in rows)
    assert report.overall.clip_score == pytest.approx(sum(r.clip_score for r in rows) / 3)
    assert report.overall.own_similarity == pytest.approx(sum(r.own_similarity for r in rows) / 3)
    assert report.overall.kid is not None
