"""The command line, run in a subprocess as a user would."""

import re
import subprocess
import sys

import pytest
from PIL import Image

from diffii_datasets import __version__
from tests.helpers.cli import child_env


DEMO_HANG_S = 3600
"""Only catches a hang: the demo takes a minute or two, several times that on a busy two-core machine, and a slow
machine must never fail a test (its speed is measured by the benchmarks)."""


def _demo(out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "diffii_datasets", "demo", "--output-dir", str(out),
         "--denoising-steps", "2", "--concept-train-steps", "2", *extra],
        capture_output=True, text=True, timeout=DEMO_HANG_S,
    )


# What the demo may write on stderr: its plan, ETA lines and the bars of its stages; nothing from the libraries.
OWN_STDERR = re.compile(r"(Diff-II plan: |  concept learning |  DDIM inversion |  generation |  total "
                        r"|  estimated time |ETA |Encoding images: |Learning concepts: |DDIM inversion: |generation: )")


def test_demo_runs_end_to_end_then_reuses_its_store(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out)
    assert first.returncode == 0, first.stderr
    preview = out / "preview.png"
    assert str(preview) in first.stdout
    assert "generated 24 synthetic images for 3 classes" in first.stdout
    store = re.search(r"store: (\S+) ", first.stdout).group(1)
    assert f"diffii-datasets report {store} -o {out / 'report'} --tiny-models" in first.stdout  # what to do next
    assert f"diffii-datasets train sample --store {store} --seeds 0" in first.stdout
    with Image.open(preview) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 100
    assert "Diff-II plan: 3 of 3 classes to generate" in first.stderr
    assert "12/12 img" in first.stderr and "24/24 img" in first.stderr
    lines = [line for line in re.split(r"[\r\n]|\x1b\[A", first.stderr) if line.strip()]
    assert [line for line in lines if not OWN_STDERR.match(line)] == []
    second = _demo(out, "--quiet")
    assert second.returncode == 0, second.stderr
    assert "reused the existing store: nothing generated (3 classes already complete)" in second.stdout
    assert second.stderr == ""


def test_unknown_command_fails_with_usage():
    result = subprocess.run([sys.executable, "-m", "diffii_datasets", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "demo" in result.stderr


def test_version_prints_the_package_version():
    result = subprocess.run([sys.executable, "-m", "diffii_datasets", "--version"], capture_output=True, text=True,
                            timeout=120, env=child_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"diffii-datasets {__version__}"


# What a command line that only prints help or the version must not load (issue 13: fast start-up).
HEAVY_MODULES = ("torch", "torchvision", "diffusers", "transformers", "datasets", "huggingface_hub")


def _loaded_after(argv):
    """(exit status, stdout, stderr) of ``main(argv)`` in a fresh interpreter; stdout ends with the heavy modules
    it loaded."""
    code = (
        "import sys\n"
        "from diffii_datasets.cli import main\n"
        "try:\n"
        f"    status = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    status = exit.code\n"
        f"print('LOADED', sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules))\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=child_env())
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["generate", "--help"], ["demo", "--help"],
                                  ["plan", "--help"], ["train", "--help"], ["push", "--help"]])
def test_help_and_version_import_no_torch(argv):
    status, out, err = _loaded_after(argv)
    assert status == 0, err
    assert "usage: diffii-datasets" in out or f"diffii-datasets {__version__}" in out
    assert out.splitlines()[-1] == "LOADED []"


@pytest.mark.parametrize("argv, status, message", [
    (["plan", "my-birds"], 2, "for your own images pass --image-folder DIR --metaclass WORD"),
    (["generate", "cub-5shot", "--root", "/does/not/exist"], 1, "--root /does/not/exist: no such directory"),
    (["generate", "cub-5shot", "--root", ".", "--split-ratio", "2"], 1, "--split-ratio must be a finite number"),
    (["generate", "cub", "--root", "."], 1, "cub is a few-shot family: pass --shots N"),
    (["generate", "--image-folder", "/does/not/exist", "--metaclass", "bird"], 1,
     "--image-folder /does/not/exist: no such directory"),
    (["plan", "--image-folder", "."], 1, "needs --metaclass WORD"),
    (["generate", "cub-5shot", "--root", ".", "--concepts", "/no/such/concepts"], 1,
     "--concepts /no/such/concepts: no such file or directory"),
    (["train", "cub-5shot", "--output-dir", "o"], 1, "cub-5shot needs --root DIR"),
    (["train", "--test-folder", "/does/not/exist", "--image-folder", ".", "--output-dir", "o"], 1,
     "--test-folder /does/not/exist: no such directory"),
    (["evaluate", "cub-5shot", "--root", ".", "--output-dir", "/does/not/exist"], 1, "holds no run (seed-*/)"),
    (["info", "/does/not/exist"], 1, "/does/not/exist: no such store directory"),
    (["push", "/does/not/exist", "--repo-id", "bad id", "--config-name", "x"], 1, "--repo-id: repo_id must be "),
    (["export", "/does/not/exist", "out", "--config-name", "data"], 1, "--config-name: config_name must "),
    (["generate", "--concept-train", "5", "cub-5shot"], 2, "unrecognized arguments: --concept-train (did you mean "
                                                           "--concept-train-steps?)"),
    (["genrate"], 2, "invalid choice: 'genrate'"),
])
def test_argument_checks_answer_before_torch_loads(argv, status, message):
    got, out, err = _loaded_after(argv)
    assert got == status and message in err and "Traceback" not in err, err
    assert err.count("\n") == 1, err  # one line, no usage block
    loaded = eval(out.splitlines()[-1].removeprefix("LOADED "))  # a printed list of names
    assert set(loaded) <= {"huggingface_hub"}, loaded  # the Hub's client checks a repository id, in milliseconds
