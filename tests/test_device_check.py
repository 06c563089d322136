"""The device check (``benchmarks/device_check.py``) keeps working without a GPU.

Its dry run goes through every section's code at tiny sizes on the CPU and must
report figures for each; without CUDA and without ``--dry-run`` it refuses to start.
The runner's bookkeeping (budgets, errors, the table) is tested in-process with
stand-in sections.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "device_check.py"


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update(extra)
    return env


@pytest.fixture
def device_check(monkeypatch):
    """The script's module, imported as the benchmarks import each other (their folder on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import device_check

    return device_check


@pytest.mark.slow
def test_dry_run_reports_figures_for_every_section(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(SCRIPT), str(out), "--dry-run"], capture_output=True, text=True,
                            timeout=300, env=child_env(), cwd=BENCHMARKS.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "device_check.json").read_text())
    names = [entry["name"] for entry in data["sections"]]
    assert names == ["environment", "model", "generation", "inversion", "concept_step", "unet_share", "prepare",
                     "classifier", "torchrun", "compile"]
    assert data["complete"] is True and data["mode"].startswith("dry run")
    for entry in data["sections"]:
        # On the CPU every path runs: a section that fails here has rotted.
        assert entry["status"] == "ok", f"{entry['name']}: {entry.get('error') or entry.get('reason')}"
        assert entry["figures"], entry["name"]
        assert entry["seconds"] >= 0
    figures = {entry["name"]: entry["figures"] for entry in data["sections"]}
    assert figures["generation"]["speedup_batch_2_x"] > 0 and figures["generation"]["speedup_batch_4_x"] > 0
    assert figures["inversion"]["speedup_batch_2_x"] > 0
    assert {"step_s_plain", "step_s_checkpointing", "peak_mib_plain", "peak_mib_checkpointing"} <= set(
        figures["concept_step"])
    assert 0 < figures["unet_share"]["unet_pct"] <= 100
    assert figures["prepare"]["synthetic_images"] == 12  # 2 classes x 3 images x expansion 2
    assert figures["prepare"]["reopen_classes_generated"] == 0
    assert figures["classifier"]["resnet50_fp32_images_per_s"] > 0
    assert figures["classifier"]["vit_b_16_fp32_images_per_s"] > 0
    assert figures["torchrun"]["gloo_on_cpu"] == "ok"
    assert figures["torchrun"]["gloo_on_cpu_synthetic_images"] == 12
    assert figures["compile"]["compiled"] == "ok" and figures["compile"]["max_pixel_diff"] == 0
    table = (out / "device_check.md").read_text()
    for name in names:
        assert f"| {name} | ok |" in table
    assert table in result.stdout  # the table is also the end of the output


def test_refuses_to_start_without_cuda(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=120,
                            env=child_env(CUDA_VISIBLE_DEVICES=""), cwd=BENCHMARKS.parent)
    assert result.returncode == 2
    assert "CUDA is not available" in result.stderr and "--dry-run" in result.stderr
    assert not out.exists()


def stand_in(figures: dict | None = None, error: BaseException | None = None):
    def run(ctx, result, allowed_s):
        result.figures.update(figures or {})
        if error is not None:
            raise error
    return run


def test_runner_records_ok_errors_and_skips(device_check, tmp_path):
    from _device_context import Context, Skipped

    sections = [
        device_check.Section("first", "works", stand_in({"a_s": 1.5, "b": "text"}), 10),
        device_check.Section("broken", "fails after one figure", stand_in({"kept_x": 2.0}, ValueError("boom")), 10),
        device_check.Section("short", "runs out of time", stand_in({"eager_s": 1.0}, Skipped("over budget: slow")), 10),
        device_check.Section("large", "needs more than is left", stand_in({"never": 1}), 1000),
        device_check.Section("child", "starts with less than its budget", stand_in({"c_x": 3.0}), 1000, least_s=5),
        device_check.Section("unwanted", "not selected", stand_in({"never": 1}), 1),
    ]
    report = device_check.Report(tmp_path, sections, "test", budget_s=100)
    selected = {"first", "broken", "short", "large", "child"}
    device_check.run_sections(sections, Context(True, tmp_path), report, 100, selected)
    entries = {entry["name"]: entry for entry in report.data["sections"]}
    assert entries["first"]["status"] == "ok" and entries["first"]["figures"] == {"a_s": 1.5, "b": "text"}
    assert entries["broken"]["status"] == "error" and entries["broken"]["error"] == "ValueError: boom"
    assert entries["broken"]["figures"] == {"kept_x": 2.0}  # measured before the error: kept
    assert "ValueError" in entries["broken"]["traceback"]
    assert entries["short"]["status"] == "skipped" and entries["short"]["reason"] == "over budget: slow"
    assert entries["short"]["figures"] == {"eager_s": 1.0}
    assert entries["large"]["status"] == "skipped"
    assert entries["large"]["reason"].startswith("over budget: needs 1000 s")
    assert "figures" not in entries["large"]
    assert entries["child"]["status"] == "ok" and entries["child"]["figures"] == {"c_x": 3.0}
    assert entries["unwanted"]["status"] == "skipped"
    assert entries["unwanted"]["reason"] == "not selected (--sections)"
    written = json.loads((tmp_path / "device_check.json").read_text())
    assert [entry["status"] for entry in written["sections"]] == ["ok", "error", "skipped", "skipped", "ok", "skipped"]
    table = (tmp_path / "device_check.md").read_text()
    assert "| first | ok |" in table and "| | | | b | text |" in table
    assert "| broken | error |" in table and "boom" in table
    assert "| large | skipped |  | reason | over budget" in table


def test_budget_stop_records_the_running_section(device_check, tmp_path):
    sections = [device_check.Section(name, name, stand_in(), 1) for name in ("done", "running", "pending")]
    report = device_check.Report(tmp_path, sections, "test", budget_s=60)
    report.entry("done")["status"] = "ok"
    report.entry("running")["status"] = "running"
    report.stop_at_budget()
    statuses = [(entry["status"], entry.get("error") or entry.get("reason")) for entry in report.data["sections"]]
    assert statuses == [("ok", None), ("error", "stopped: the run reached its budget of 60 s during this section"),
                        ("skipped", "over budget: the run reached its global budget")]
    assert json.loads((tmp_path / "device_check.json").read_text())["sections"][1]["status"] == "error"


def test_watchdog_stops_at_the_budget(device_check, tmp_path):
    stopped = []
    report = device_check.Report(tmp_path, [device_check.Section("slow", "slow", stand_in(), 1)], "test", 0.05)
    report.entry("slow")["status"] = "running"
    device_check.start_watchdog(report, 0.05, leave=stopped.append).join(timeout=10)
    assert stopped == [0]
    assert report.entry("slow")["status"] == "error"


def test_figures_json_cannot_take_are_written_as_text(device_check, tmp_path):
    import numpy as np

    report = device_check.Report(tmp_path, [device_check.Section("s", "s", stand_in(), 1)], "test", 60)
    figures = {"ratio_x": float("inf"), "none": None, "count": np.int64(3), "seconds_s": np.float64(1.5), "flag": True}
    report.entry("s").update(status="ok", figures=figures)
    report.write()
    assert json.loads((tmp_path / "device_check.json").read_text())["sections"][0]["figures"] == {
        "ratio_x": "inf", "none": None, "count": "3", "seconds_s": 1.5, "flag": True}


def test_last_error_of_a_child(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from _device_children import last_error

    log = ("[rank1]: Traceback (most recent call last):\n"
           "[rank1]:   File \"x.py\", line 1, in <module>\n"
           "[rank1]: torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1, invalid usage\n"
           "[rank1]: Last error:\n"
           "[rank1]: Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 18000\n"
           "E1130 06:12:00.123000 1 site-packages/torch/distributed/elastic/multiprocessing/api.py:1] failed\n"
           "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
           "============================================================\n")
    assert last_error(log) == ("torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1, invalid "
                               "usage | Last error: | Duplicate GPU detected : rank 1 and rank 0 both on CUDA device "
                               "18000")
    assert last_error("one\ntwo\n") == "one | two"
    assert last_error("") == "no output"
