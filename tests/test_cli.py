"""The command line, run in a subprocess as a user would."""

import subprocess
import sys

from PIL import Image


def test_demo_writes_a_preview_png(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "diffii_datasets", "demo", "--output-dir", str(out), "--steps", "2", "--per-class", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    preview = out / "preview.png"
    assert str(preview) in result.stdout
    with Image.open(preview) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 100


def test_unknown_command_fails_with_usage():
    result = subprocess.run([sys.executable, "-m", "diffii_datasets", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "demo" in result.stderr
