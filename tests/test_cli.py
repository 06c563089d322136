"""The command line, run in a subprocess as a user would."""

import re
import subprocess
import sys

import pytest
from PIL import Image

from diffii_datasets import __version__
from tests.helpers.cli import child_env


def _demo(out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "diffii_datasets", "demo", "--output-dir", str(out),
         "--denoising-steps", "2", "--concept-train-steps", "2", *extra],
        capture_output=True, text=True, timeout=300,
    )


# What the demo may write on stderr: its plan, ETA lines and the bars of its stages; nothing from the libraries.
OWN_STDERR = re.compile(r"(Diff-II plan: |  concept learning |  DDIM inversion |  generation |  total |ETA "
                        r"|Encoding images: |Learning concepts: |DDIM inversion: |generation: )")


def test_demo_runs_end_to_end_then_reuses_its_store(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out)
    assert first.returncode == 0, first.stderr
    preview = out / "preview.png"
    assert str(preview) in first.stdout
    assert "generated 24 synthetic images for 3 classes" in first.stdout
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


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["generate", "--help"], ["demo", "--help"]])
def test_help_and_version_import_no_torch(argv):
    code = (
        "import sys\n"
        "from diffii_datasets.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        f"print('LOADED', sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=child_env())
    assert result.returncode == 0, result.stderr
    assert "usage: diffii-datasets" in result.stdout or f"diffii-datasets {__version__}" in result.stdout
    assert result.stdout.splitlines()[-1] == "LOADED []"
