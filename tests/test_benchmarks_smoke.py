"""The benchmarks keep running: each script, with ``--quick``, exits 0 and ends with parseable figure lines.

The scripts run as subprocesses, two at a time on one thread each (the figures of a
quick run mean nothing; only that every code path still works and reports).
"""

import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = ["bench_concept_step.py", "bench_generation.py", "bench_img2img.py", "bench_inversion.py",
           "bench_memory.py", "bench_store.py", "bench_unet_share.py"]
FIGURE = re.compile(r"^(?P<name>[a-z0-9_]+): (?P<value>-?\d+(\.\d+)?(e[-+]?\d+)?)(?P<unit>x|%)? "
                    r"\(target (?P<target>(>=|<=|<|>) ?\d+(\.\d+)?(x|%))\)$")


def closing_lines(stdout: str) -> list[str]:
    """The block after the last blank line: the benchmark's figures."""
    lines = stdout.rstrip("\n").splitlines()
    return lines[len(lines) - lines[::-1].index(""):] if "" in lines else lines


def test_every_benchmark_script_is_covered():
    assert sorted(p.name for p in BENCHMARKS.glob("bench_*.py")) == SCRIPTS


def test_the_figure_pattern():
    assert closing_lines("table\n\nnote: x\n\na: 1.5x (target >= 5x)\nb_2: 85.1% (target >= 85%)\n") == [
        "a: 1.5x (target >= 5x)", "b_2: 85.1% (target >= 85%)"]
    assert FIGURE.match("memory_peak_4n_over_n: 1.02x (target <= 1.1x)")
    assert FIGURE.match("store_open_vs_generate: 0.226% (target < 1%)")
    assert not FIGURE.match("speedup: fast (target >= 5x)")
    assert not FIGURE.match("speedup: 2x")


@pytest.fixture(scope="module")
def runs():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}

    def run(script):
        return subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", "--threads", "1"],
                              capture_output=True, text=True, timeout=300, cwd=BENCHMARKS.parent, env=env)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(SCRIPTS, pool.map(run, SCRIPTS)))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_run_reports_figures(runs, script):
    result = runs[script]
    assert result.returncode == 0, f"{script} failed:\n{result.stderr[-4000:]}"
    figures = closing_lines(result.stdout)
    assert figures, f"{script} printed no figures:\n{result.stdout[-2000:]}"
    for line in figures:
        match = FIGURE.match(line)
        assert match, f"{script}: {line!r} is not 'name: value (target ...)'"
        assert math.isfinite(float(match["value"])) and float(match["value"]) > 0
    names = [FIGURE.match(line)["name"] for line in figures]
    assert len(names) == len(set(names))
