"""The quality package: its names resolve lazily, and reading settings or results loads no heavy library."""

import subprocess
import sys

import pytest

import diffii_datasets.quality as quality


def test_every_export_resolves():
    assert sorted(dir(quality)) == sorted(quality.__all__)
    for name in quality.__all__:
        assert getattr(quality, name) is not None, name


@pytest.mark.parametrize("statement", [
    "import diffii_datasets.quality",
    "from diffii_datasets.quality import QualitySettings, QualityReport, FLAG_RULES, summarize_provenance; "
    "QualitySettings(lpips_size=64)",
    "import diffii_datasets.cli.report",
])
def test_light_parts_load_no_heavy_library(statement):
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & "\
           "{'torch', 'transformers', 'lpips', 'torchmetrics', 'matplotlib', 'PIL', 'numpy'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
