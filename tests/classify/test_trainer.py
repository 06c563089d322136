"""The trainer on CPU with a small random backbone: seeds, the report, resuming after a kill, groups, data parallel."""

import re
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from diffii_datasets._io import fingerprint, read_json, write_json
from diffii_datasets.classify import TrainResult, Waterbirds, build_report, format_table, summarize, train
from diffii_datasets.classify.paper import paper_cell, published_accuracy
from diffii_datasets.classify.trainer import CHECKPOINT_FILE, RESULT_FILE, WEIGHTS_FILE
from diffii_datasets.testing import tiny_image_dataset
from tests.classify.fixtures import tiny_recipe, write_waterbirds
from tests.classify.train_worker import EPOCHS, datasets
from tests.helpers.cli import child_env, torchrun


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the tiny model gains nothing from two, and loses much when the cores are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_two_seeds_give_two_results_and_a_mean_and_std_that_json_and_table_agree_on(tmp_path):
    train_set, test_set = tiny_image_dataset(3, 6, 32, seed=0), tiny_image_dataset(3, 3, 32, seed=1)
    validation_set = tiny_image_dataset(3, 2, 32, seed=2)
    results = [train(train_set, test_set, tiny_recipe(seed=seed), validation_set=validation_set, workers=0,
                     progress=False) for seed in (0, 1)]
    assert [result.seed for result in results] == [0, 1]
    assert [record.train_loss for record in results[0].history] != [record.train_loss for record in results[1].history]
    for result in results:
        assert len(result.history) == 2 and result.class_totals == [3, 3, 3]
        best = max(record.test_accuracy for record in result.history)
        assert result.figures()["best_test"] == best
        assert result.figures()["final_test"] == result.history[-1].test_accuracy
        assert set(result.figures()) == {"best_test", "final_test", "test_at_best_val"}

    summary = summarize(results)
    finals = [result.figures()["final_test"] for result in results]
    assert summary["figures"]["final_test"]["values"] == finals
    assert summary["figures"]["final_test"]["mean"] == pytest.approx(sum(finals) / 2)
    assert summary["figures"]["final_test"]["std"] == pytest.approx(abs(finals[0] - finals[1]) / 2 ** 0.5)

    write_json(tmp_path / "report.json", build_report(results))
    report = read_json(tmp_path / "report.json")
    table = format_table(report, per_class=True)
    assert "2 seeds (0, 1)" in table
    for name, stats in report["figures"].items():
        assert f"{stats['mean']:.2f} ± {stats['std']:.2f}" in table, name
    for c, name in enumerate(report["classes"]):
        row = next(line for line in table.splitlines() if line.startswith(name))
        numbers = re.findall(r"(\d+\.\d\d) ± (\d+\.\d\d)", row)
        expected = [(f"{report['per_class'][f][c]['mean']:.2f}", f"{report['per_class'][f][c]['std']:.2f}")
                    for f in report["figures"]]
        assert numbers == expected, name
    assert TrainResult.from_dict(results[0].to_dict()).figures() == results[0].figures()


def test_a_killed_run_resumes_to_the_same_final_weights(tmp_path):
    threads = str(torch.get_num_threads())  # float results depend on the thread count: the workers use as many
    train_set, test_set = datasets()
    reference = train(train_set, test_set, tiny_recipe(epochs=EPOCHS), output_dir=tmp_path / "reference", workers=0,
                      progress=False)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "tests.classify.train_worker", str(run)]
    killed = subprocess.run([*command, "--kill-at-evaluation", "2"], capture_output=True, text=True, timeout=300,
                            env=child_env(DIFFII_TEST_THREADS=threads))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert torch.load(run / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    assert not (run / RESULT_FILE).exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300,
                             env=child_env(DIFFII_TEST_THREADS=threads))
    assert resumed.returncode == 0, resumed.stderr
    assert not (run / CHECKPOINT_FILE).exists()
    ours, theirs = load_file(str(run / WEIGHTS_FILE)), load_file(str(tmp_path / "reference" / WEIGHTS_FILE))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    history = TrainResult.from_dict(read_json(run / RESULT_FILE)).history
    assert [(r.train_loss, r.test_accuracy) for r in history] == \
        [(r.train_loss, r.test_accuracy) for r in reference.history]
    # A complete run is read back, not trained again.
    again = train(train_set, test_set, tiny_recipe(epochs=EPOCHS), output_dir=run, workers=0, progress=False)
    assert again.history == history
    with pytest.raises(ValueError, match="result of a run with another recipe"):
        train(train_set, test_set, tiny_recipe(epochs=EPOCHS, lr=0.01), output_dir=run, workers=0, progress=False)


def test_runs_written_before_the_mixing_batch_norm_and_soft_label_knobs_are_still_read_back(tmp_path):
    train_set, test_set = tiny_image_dataset(3, 4, 32, seed=0), tiny_image_dataset(3, 2, 32, seed=1)
    recipe = tiny_recipe(epochs=1)
    train(train_set, test_set, recipe, output_dir=tmp_path, workers=0, progress=False)
    before = {name: value for name, value in recipe.to_dict().items()
              if name not in ("mixup", "cutmix", "mixup_probability", "bn_group_size", "soft_label_gamma")}
    identity = fingerprint({"recipe": before, "classes": train_set.classes, "train": 12, "test": 6, "validation": None,
                            "ranks": 1})  # how the version before these knobs named a run
    assert read_json(tmp_path / RESULT_FILE)["identity"] == identity
    with pytest.raises(ValueError, match="result of a run with another recipe"):
        train(train_set, test_set, recipe.replace(mixup=True), output_dir=tmp_path, workers=0, progress=False)


def test_waterbirds_groups_are_scored_each_at_its_own_best_epoch(tmp_path):
    rows = [(c, 0, 0, 0) for c in (1, 2, 3) for _ in range(4)]
    rows += [(c, 2, y, place) for c in (1, 2, 3) for y in (0, 1) for place in (0, 1)]
    write_waterbirds(tmp_path, rows)
    test_set = Waterbirds(tmp_path, "test")
    assert test_set.classes == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    assert len(test_set) == 12 and test_set.groups.count(3) == 3
    result = train(Waterbirds(tmp_path, "train"), test_set, tiny_recipe(epochs=2), workers=0, progress=False)
    assert result.groups == ["landbird on land", "landbird on water", "waterbird on land", "waterbird on water"]
    assert result.group_totals == [3, 3, 3, 3]
    for record in result.history:
        assert sum(record.test_group_correct) == sum(record.test_class_correct)
    per_epoch = [[100 * hit / 3 for hit in record.test_group_correct] for record in result.history]
    assert result.group_accuracy("best_test") == [max(column) for column in zip(*per_epoch)]
    assert result.group_accuracy("final_test") == per_epoch[-1]
    table = format_table(build_report([result], setting="waterbirds", backbone="resnet50"))
    rows = table.splitlines()[3:7]
    for index, (row, group, column) in enumerate(zip(rows, result.groups, ("(L, L)", "(L, W)", "(W, L)", "(W, W)"))):
        published = published_accuracy(paper_cell("waterbirds", "resnet50", baseline=True, group=index))
        shown = "not recorded" if published is None else f"{published:.2f}"
        assert row.startswith(group) and row.endswith(f"{shown} (Table 3, row Original, column {column})")


@pytest.mark.slow
def test_data_parallel_training_under_torchrun_with_gloo(tmp_path):
    launched = torchrun(2, "-m", "tests.classify.train_worker", str(tmp_path / "run"), timeout=300)
    assert launched.returncode == 0, launched.stderr
    lines = [read_json(tmp_path / "run" / f"rank-{rank}.json") for rank in (0, 1)]
    assert sorted(line["rank"] for line in lines) == [0, 1]
    assert lines[0]["figures"] == lines[1]["figures"]  # every rank holds the same evaluation
    assert lines[0]["class_totals"] == [3, 3, 3]  # each test item counted once, 5 and 4 on the two ranks
    assert read_json(tmp_path / "run" / RESULT_FILE)["history"][-1]["epoch"] == EPOCHS
