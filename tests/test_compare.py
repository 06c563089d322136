"""``compare``: several methods on the same data, each trained the same way, in the paper's table shapes.

A fake CUB (3 classes, 5 training images) and the tiny offline pipeline make the stores; the
classifier is the paper's ResNet-50 from random weights on 32-pixel images for one epoch (so the
paper's cells stand beside ours), or a small ShuffleNet where no paper cell applies.
"""

import json
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from diffii_datasets import cli
from diffii_datasets._io import read_json
from diffii_datasets.classify.paper import lookup, methods as paper_rows
from diffii_datasets.compare import OwnData, compare, known_methods, plan_comparison, table_settings
from diffii_datasets.store import SyntheticStore
from tests.helpers.cli import CLASSES
from tests.helpers.fakedata import write_cub

TINY_DIFFUSION = {"model": "tiny", "concept_train_steps": 2, "concept_batch_size": 2, "inversion_steps": 3,
                  "denoising_steps": 3, "expansion_rate": 1.0}
RESNET = {"weights": None, "image_size": 32, "resize": 32, "epochs": 1, "batch_size": 5}  # 5 images: one batch
SHUFFLENET = {"model": "shufflenet_v2_x0_5", "weights": None, "image_size": 32, "resize": 32, "epochs": 1,
              "batch_size": 6}
METHODS = ["original", "mixup", "cutmix", "diff-ii"]
ROWS = {"original": "Original", "mixup": "Mixup", "cutmix": "CutMix", "diff-ii": "Ours"}
METHOD_KNOBS = {"synthetic_probability", "mixup", "cutmix"}
pytestmark = pytest.mark.filterwarnings("ignore:few_shot. 3 classes have fewer images:UserWarning")


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    """One comparison of four methods on cub-5shot over two seeds, planned before and after it ran."""
    base = tmp_path_factory.mktemp("compare")
    write_cub(base / "data", CLASSES)
    arguments = dict(output_dir=base / "cmp", cache_dir=base / "cache", root=base / "data", recipe_knobs=RESNET,
                     method_knobs=TINY_DIFFUSION)
    before = plan_comparison("cub-5shot", METHODS, [0, 1], **arguments)
    document = compare("cub-5shot", METHODS, [0, 1], workers=0, progress=False, **arguments)
    return {"base": base, "arguments": arguments, "before": before, "document": document}


def run_dir(cub, method):
    return cub["base"] / "cmp" / "runs" / "cub-5shot" / "resnet50" / method


def test_the_plan_lists_each_store_and_run_with_what_it_costs(cub):
    plan = cub["before"]
    assert [store.method for store in plan.stores] == ["diff-ii"]
    store_plan = plan.stores[0].plan
    assert store_plan.classes == 3  # every class still to generate
    assert plan.unet_evaluations == store_plan.unet_evaluations > 0
    assert [(run.method, run.classifier, run.epochs_to_run) for run in plan.runs] == \
        [(method, "resnet50", 2) for method in METHODS]
    text = "\n".join(plan.lines())
    assert f"{store_plan.unet_evaluations:,} UNet evaluations to run" in text
    assert f"total still to run: {store_plan.unet_evaluations:,} UNet evaluations, 8 classifier epochs" in text


def test_every_run_has_the_recipe_of_the_others_but_what_its_method_changes(cub):
    reports = {method: read_json(run_dir(cub, method) / "report.json") for method in METHODS}
    recipes = {method: report["recipe"] for method, report in reports.items()}
    shared = {key: value for key, value in recipes["diff-ii"].items() if key not in METHOD_KNOBS}
    for method, recipe in recipes.items():
        assert {key: value for key, value in recipe.items() if key not in METHOD_KNOBS} == shared
        assert (recipe["mixup"], recipe["cutmix"]) == (method == "mixup", method == "cutmix")
        assert recipe["synthetic_probability"] == (0.5 if method == "diff-ii" else 0.0)  # the paper's p for all
        assert reports[method]["seeds"] == [0, 1]
        assert sorted(path.name for path in run_dir(cub, method).iterdir()) == ["report.json", "seed-0", "seed-1"]
    assert (shared["model"], shared["lr"], shared["epochs"]) == ("resnet50", 0.05, 1)  # CUB's published lr
    store = SyntheticStore.open(reports["diff-ii"]["store"])
    assert store.path == cub["before"].stores[0].path and store.header.method == "diff-ii"
    assert store.header.config.split_ratio == 0.3 and store.header.model == "tiny"  # the setting's own knob
    assert [reports[m]["store"] for m in METHODS[:3]] == [None] * 3


def test_the_table_puts_the_papers_number_beside_ours(cub):
    document = cub["document"]
    assert json.loads(json.dumps(document)) == document == read_json(cub["base"] / "cmp" / "comparison.json")
    (table,) = document["tables"]
    assert (table["paper_table"], table["backbone"]) == ("Table 1", "resnet50")
    assert [row["label"] for row in table["rows"]] == [ROWS[method] for method in METHODS]
    markdown = (cub["base"] / "cmp" / "comparison.md").read_text()
    for row in table["rows"]:
        (cell,) = row["groups"][0]["cells"]
        report = read_json(run_dir(cub, row["method"]) / "report.json")
        assert cell["ours"]["values"] == report["figures"]["best_test"]["values"]
        printed = lookup(1, row["method"], backbone="resnet50", dataset="cub", shots=5).value
        assert cell["paper"]["value"] == printed
        assert re.search(rf"\| {row['label']} \| [\d.]+ ± [\d.]+ \(paper {printed:.2f}\) \|", markdown)
    assert [run["report"] for run in document["runs"]] == \
        [str(run_dir(cub, method) / "report.json") for method in METHODS]
    page = (cub["base"] / "cmp" / "comparison.html").read_text()
    HTMLParser().feed(page)
    assert "Table 1" in page and "54.52" in page and "<script" not in page


def test_running_again_skips_finished_runs_and_reuses_the_store(cub):
    results = sorted(run_dir(cub, "original").parent.glob("*/seed-*/result.json"))
    store = cub["before"].stores[0].path
    written = {path: path.stat().st_mtime_ns for path in [*results, *store.glob("classes/*/images/*")]}
    assert len(results) == 8
    again = compare("cub-5shot", METHODS, [0, 1], workers=0, progress=False, **cub["arguments"])
    assert again == cub["document"]
    assert {path: path.stat().st_mtime_ns for path in written} == written
    after = plan_comparison("cub-5shot", METHODS, [0, 1], **cub["arguments"])
    assert (after.unet_evaluations, after.classifier_epochs) == (0, 0)
    assert "  cub-5shot  diff-ii  complete" in "\n".join(after.lines())
    more = plan_comparison("cub-5shot", METHODS, [0, 1, 2], **cub["arguments"])
    assert [(run.finished, run.epochs_to_run) for run in more.runs] == [((0, 1), 1)] * 4


def write_folder(root, per_class):
    for label, (name, count) in enumerate(per_class.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (16, 16), (90 * label, 255 - 60 * i, 40)).save(root / name / f"{i}.png")
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(root))


def test_own_images_make_a_table_of_their_own(tmp_path):
    train = write_folder(tmp_path / "train", {"circle": 3, "square": 3})
    test = write_folder(tmp_path / "test", {"circle": 2, "square": 2})
    methods = ["original", "cutmix", "real-mix", "diff-ii"]
    document = compare(OwnData("my-shapes", train, test, "shape"), methods, [0], output_dir=tmp_path / "cmp",
                       cache_dir=tmp_path / "cache", recipe_knobs=SHUFFLENET, method_knobs=TINY_DIFFUSION,
                       workers=0, progress=False)
    (table,) = document["tables"]
    assert (table["paper_table"], table["backbone"]) == (None, "shufflenet_v2_x0_5")
    assert [row["label"] for row in table["rows"]] == methods  # the paper's row order, by the library's names
    assert [group["columns"] for group in table["groups"]] == [[{"setting": "my-shapes", "label": "my-shapes"}]]
    assert all(row["groups"][0]["cells"][0]["paper"] is None for row in table["rows"])
    for run in document["runs"][2:]:
        store = SyntheticStore.open(run["store"])
        assert list(store.header.classes) == ["circle", "square"] and store.header.metaclass == "shape"
        assert [len(store.records(c)) for c in range(2)] == [3, 3]  # expansion rate 1: one per real image
        config = store.header.config  # the knobs given reach every method that declares them
        assert (config.model, config.resolution, config.denoising_steps) == ("tiny", 32, 3)
    report = read_json(tmp_path / "cmp" / "runs" / "my-shapes" / "shufflenet_v2_x0_5" / "real-mix" / "report.json")
    assert report["recipe"]["lr"] == 0.05 and report["method"] == "real-mix"  # the few-shot CUB recipe's lr


def test_pairs_the_paper_does_not_train_are_left_out_and_said(tmp_path):
    plan = plan_comparison(["table1", "table2", "table3"], ["original", "mixup"], [0, 1, 2], output_dir=tmp_path,
                           backbones=["resnet50", "vit_b_16"], root=tmp_path)
    settings = table_settings("table1") + table_settings("table2") + ["waterbirds"]
    assert len(settings) == 15 and not plan.stores  # these methods make no images: no data read
    assert [(run.setting, run.classifier) for run in plan.runs[::2]] == \
        [(s, b) for s in settings for b in ("resnet50", "vit_b_16") if b == "resnet50" or s in settings[:8]]
    assert len(plan.skipped) == 7 and all("with vit_b_16" in reason for reason in plan.skipped)
    assert plan.classifier_epochs == 3 * 2 * (8 * 128 + 8 * 100 + 6 * 200 + 128)  # the published epochs
    with pytest.raises(ValueError, match="the paper trains none of these settings with vit_b_16"):
        plan_comparison("table2", ["original"], [0], output_dir=tmp_path, backbones=["vit_b_16"])
    with pytest.raises(ValueError, match="pass one backbone"):
        plan_comparison("sample", ["original"], [0], output_dir=tmp_path, backbones=["resnet50", "vit_b_16"])


def test_the_plan_counts_a_store_or_concepts_several_methods_read_once(tmp_path):
    from diffii_datasets.plan import CONCEPTS

    def plan(methods):
        return plan_comparison("sample", methods, [0], output_dir=tmp_path, cache_dir=tmp_path / "cache")

    alone = plan(["real-filter"])  # a filter of Real-Guidance's store, made first
    assert [(store.method, store.read_by) for store in alone.stores] == [("real-guidance", "real-filter"),
                                                                         ("real-filter", None)]
    assert "  sample  real-guidance (read by real-filter)" in "\n".join(alone.lines())
    both = plan(["real-guidance", "real-filter"])
    assert [(store.method, store.read_by) for store in both.stores] == [("real-guidance", None), ("real-filter", None)]
    assert [run.store for run in both.runs] == [store.path for store in both.stores]
    shared = plan(["diff-aug", "diff-ii"])  # the same concept recipe on the same images: learned once
    keys = [store.job.concepts_key() for store in shared.stores]
    concepts = [store.plan.stage(CONCEPTS).unet_evaluations for store in shared.stores]
    assert keys[0] == keys[1] and concepts[0] == concepts[1] > 0
    assert shared.unet_evaluations == sum(store.plan.unet_evaluations for store in shared.stores) - concepts[1]
    assert not (tmp_path / "cache").exists()  # planning writes nothing


def test_mistakes_are_refused_naming_the_argument(tmp_path):
    def plan(methods=("original",), **changes):
        return plan_comparison(changes.pop("data", "sample"), list(methods), changes.pop("seeds", [0]),
                               output_dir=tmp_path, **changes)

    with pytest.raises(ValueError, match="methods must be one of " + ", ".join(map(repr, known_methods()))):
        plan(["original", "dif-ii"])
    assert known_methods()[:4] == ["original", "mixup", "cutmix", "diff-ii"]
    with pytest.raises(ValueError, match="data must be one of"):
        plan(data="cub-7shot")
    with pytest.raises(ValueError, match="backbones must be one of"):
        plan(backbones=["resnet5"])
    with pytest.raises(ValueError, match="seeds must be distinct"):
        plan(seeds=[1, 1])
    with pytest.raises(ValueError, match="recipe_knobs: 'mixup' is not the caller's to set"):
        plan(recipe_knobs={"mixup": True})
    with pytest.raises(ValueError, match="recipe_knobs must be one of"):
        plan(recipe_knobs={"epoch": 3})
    with pytest.raises(ValueError, match="synthetic_probability 0 would train every method on the real images"):
        plan(["original", "diff-ii"], recipe_knobs={"synthetic_probability": 0})
    with pytest.raises(ValueError, match="method_knobs: 'split_ratio' is a knob of none of the methods"):
        plan(method_knobs={"split_ratio": 0.5})
    with pytest.raises(ValueError, match="test_at_best_val needs a validation_fraction"):
        plan(figure="test_at_best_val")
    with pytest.raises(ValueError, match="root must be the folder holding cub-5shot's dataset"):
        plan(["diff-ii"], data="cub-5shot")
    for name in ("cub-5shot", "cub-7shot", "waterbirds-test00", "my data"):
        with pytest.raises(ValueError, match="data.name"):
            OwnData(name, [], [], "bird")
    assert set(paper_rows()) >= {"original", "mixup", "cutmix", "diff-ii"}


@pytest.fixture
def command_line(monkeypatch):
    """``cli.main`` with this command registered (whether or not COMMAND_GROUPS lists it yet)."""
    if "diffii_datasets.cli.compare" not in cli.COMMAND_GROUPS:
        monkeypatch.setattr(cli, "COMMAND_GROUPS", (*cli.COMMAND_GROUPS, "diffii_datasets.cli.compare"))
    return cli.main


SHUFFLENET_FLAGS = ["--classifier-model", "shufflenet_v2_x0_5", "--classifier-weights", "none",
                    "--classifier-image-size", "32", "--classifier-resize", "32", "--classifier-epochs", "1",
                    "--classifier-batch-size", "6", "--workers", "0", "-q"]


def test_the_command_runs_a_comparison_and_answers_mistakes_with_the_flag(command_line, tmp_path, capsys):
    out = tmp_path / "cmp"
    common = ["--seeds", "0", "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert command_line(["compare", "sample", "--methods", "original,diff-ii", "--model", "tiny", "--dry-run",
                         *common, *SHUFFLENET_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"  sample  diff-ii  [\d,]+ UNet evaluations to run", printed)
    assert "  sample  shufflenet_v2_x0_5  original  real images  1 x 1 epochs  1 epochs to run" in printed
    assert not out.exists()

    assert command_line(["compare", "sample", "--methods", "original,cutmix", *common, *SHUFFLENET_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "## Other settings, shufflenet_v2_x0_5" in printed and "| cutmix | " in printed
    assert f"comparison: {out / 'comparison.json'}, {out / 'comparison.md'}" in printed
    assert read_json(out / "runs" / "sample" / "shufflenet_v2_x0_5" / "cutmix" / "report.json")["recipe"]["cutmix"]

    write_folder(tmp_path / "mine", {"circle": 1, "square": 1})
    mine = ["--image-folder", str(tmp_path / "mine"), "--test-folder", str(tmp_path / "mine")]
    for arguments, message in [
        ([*mine, "--metaclass", "shape", "--data-name", "cub-5shot", "--methods", "original"],
         "--data-name must be unlike the paper's settings"),
        ([*mine, "--metaclass", "shape", "--methods", "paper"], "--methods paper: the settings have no paper table"),
        (["sample", "--methods", "original,foo"], "--methods: 'foo' is not a method here; choose from original, "
                                                  "mixup, cutmix, diff-ii"),
        (["cub-5shot", "--methods", "original"], "cub-5shot needs --root DIR"),
        (["--methods", "original"], "name the data"),
        (["--image-folder", str(tmp_path), "--methods", "original"], "add --test-folder"),
        (["sample", "--methods", "diff-ii", "--config", "mixup=x.json"], "--config mixup=x.json: expected "
                                                                         "METHOD=FILE"),
        (["sample", "--methods", "original", "--split-ratio", "2"], "--split-ratio must be"),
    ]:
        assert command_line(["compare", *arguments, *common]) == 1
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command_line(["compare", "sample", "--methods", "original", "--seeds", "0,0", "--output-dir", str(out)])
