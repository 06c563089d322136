"""The command line, run in a subprocess as a user would."""

import subprocess
import sys

from PIL import Image


def _demo(out):
    return subprocess.run(
        [sys.executable, "-m", "diffii_datasets", "demo", "--output-dir", str(out),
         "--steps", "2", "--concept-steps", "2", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )


def test_demo_runs_end_to_end_then_reuses_its_store(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out)
    assert first.returncode == 0, first.stderr
    preview = out / "preview.png"
    assert str(preview) in first.stdout
    assert "generated 24 synthetic images for 3 classes" in first.stdout
    with Image.open(preview) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 100
    second = _demo(out)
    assert second.returncode == 0, second.stderr
    assert "reused the existing store: nothing generated (3 classes already complete)" in second.stdout


def test_unknown_command_fails_with_usage():
    result = subprocess.run([sys.executable, "-m", "diffii_datasets", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "demo" in result.stderr
