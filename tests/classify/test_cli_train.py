"""``diffii-datasets train`` and ``evaluate`` on a fake CUB root and a store written directly."""

import re

import pytest

from diffii_datasets._io import read_json
from diffii_datasets.cli import build_parser
from tests.classify.fixtures import write_store
from tests.helpers.cli import CLASS_NAMES, CLASSES, run_cli
from tests.helpers.fakedata import write_cub

TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "32", "--resize", "32",
        "--batch-size", "5", "--workers", "0", "-q"]  # 5 real images: one batch (no lone item for batch norm)


@pytest.fixture
def inputs(tmp_path):
    write_cub(tmp_path / "data", CLASSES)
    store = write_store(tmp_path / "store", [2, 2, 1], classes=CLASS_NAMES, size=16)
    return tmp_path / "data", store.path


@pytest.mark.slow
def test_train_from_a_store_over_two_seeds_then_evaluate(inputs, tmp_path):
    root, store = inputs
    out = tmp_path / "runs"
    trained = run_cli("train", "cub-5shot", "--root", str(root), "--store", str(store), "--seeds", "0,1",
                      "--output-dir", str(out), "--epochs", "2", *TINY)
    assert trained.returncode == 0, trained.stderr
    report = read_json(out / "report.json")
    assert report["seeds"] == [0, 1] and report["store"] == str(store)
    assert report["recipe"]["synthetic_probability"] == 0.5 and report["recipe"]["lr"] == 0.05  # CUB's published lr
    assert "shufflenet_v2_x0_5, synthetic p = 0.5, 2 seeds (0, 1), 2 epochs" in trained.stdout
    assert trained.stdout.startswith("test set: CUB-200-2011 test (--released tests on the authors' list "
                                     "datasets/cub/test.txt)\n")
    for stats in report["figures"].values():
        assert len(stats["values"]) == 2
        assert f"{stats['mean']:.2f} ± {stats['std']:.2f}" in trained.stdout
    assert sorted(p.name for p in (out / "seed-0").iterdir()) == ["model.safetensors", "result.json"]

    again = run_cli("train", "cub-5shot", "--root", str(root), "--store", str(store), "--seeds", "0,1",
                    "--output-dir", str(out), "--epochs", "2", *TINY)
    assert again.returncode == 0 and read_json(out / "report.json") == report  # finished runs are read back

    evaluated = run_cli("evaluate", "cub-5shot", "--root", str(root), "--output-dir", str(out), "--workers", "0")
    assert evaluated.returncode == 0, evaluated.stderr
    evaluation = read_json(out / "evaluation-cub-5shot.json")
    assert list(evaluation["figures"]) == ["final_test"]
    assert evaluation["figures"]["final_test"]["values"] == report["figures"]["final_test"]["values"]


@pytest.mark.slow
def test_train_without_a_store_is_the_baseline(inputs, tmp_path):
    root, _ = inputs
    refused = run_cli("train", "cub-5shot", "--root", str(root), "--output-dir", str(tmp_path / "x"),
                      "--synthetic-probability", "0.5", *TINY)
    assert refused.returncode == 1 and "--synthetic-probability needs --store" in refused.stderr
    baseline = run_cli("train", "cub-5shot", "--root", str(root), "--output-dir", str(tmp_path / "base"),
                       "--epochs", "1", "--seeds", "3", *TINY)
    assert baseline.returncode == 0, baseline.stderr
    report = read_json(tmp_path / "base" / "report.json")
    assert report["baseline"] and report["recipe"]["synthetic_probability"] == 0 and report["store"] is None
    assert "baseline (no synthetic images), 1 seed (3)" in baseline.stdout


def test_command_line_errors_name_what_to_fix(tmp_path, capsys):
    parser = build_parser()
    arguments = parser.parse_args(["train", "cub-5shot", "--root", "r", "--output-dir", "o", "--seeds", "0,1,2",
                                   "--backbone", "vit_b_16", "--weights", "none", "--lr", "0.01"])
    assert arguments.seeds == [0, 1, 2] and arguments.weights == "none" and arguments.lr == 0.01
    assert (arguments.mixup, arguments.cutmix, arguments.bn_group_size) == (None, None, None)  # the recipe's
    mixing = parser.parse_args(["train", "cub-5shot", "--output-dir", "o", "--mixup", "--cutmix",
                                "--mixup-probability", "0.5", "--bn-group-size", "32"])
    assert (mixing.mixup, mixing.cutmix, mixing.mixup_probability, mixing.bn_group_size) == (True, True, 0.5, 32)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    assert "does not name their seeds" in " ".join(capsys.readouterr().out.split())
    for bad in (["--seeds", "0,0"], ["--seeds", "a"], ["--validation-fraction", "1"], ["--workers", "-1"],
                ["--bn-group-size", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "cub-5shot", "--output-dir", "o", *bad])
    no_root = run_cli("train", "cub-5shot", "--output-dir", str(tmp_path))
    assert no_root.returncode == 1 and "cub-5shot needs --root" in no_root.stderr
    lt_vit = run_cli("train", "cub-lt-if10", "--root", "r", "--output-dir", str(tmp_path), "--backbone", "vit_b_16")
    assert lt_vit.returncode == 1 and re.search(r"long-tail settings with resnet50 only", lt_vit.stderr)
