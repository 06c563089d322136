"""Import costs: the light modules load no heavy library, and every lazy export resolves."""

import importlib
import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers", "datasets", "huggingface_hub", "safetensors", "PIL", "numpy")


def loaded_after(statement: str) -> list[str]:
    """The heavy top-level packages a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return eval(out)  # a printed list of names


@pytest.mark.parametrize("statement, allowed", [
    ("import diffii_datasets", []),
    ("import diffii_datasets.config as c; c.DiffIIConfig(split_ratio=0.1, suffixes='captioned')", []),
    ("import diffii_datasets.diffusion, diffii_datasets.datasets, diffii_datasets.hf", []),
    ("from diffii_datasets.datasets import list_settings, get_setting; get_setting('cub-5shot')", []),
    ("import diffii_datasets.diffusion.interpolation", ["numpy", "torch"]),
])
def test_light_modules_load_no_heavy_library(statement, allowed):
    assert loaded_after(statement) == allowed


@pytest.mark.parametrize("package", ["diffii_datasets", "diffii_datasets.diffusion",
                                     "diffii_datasets.diffusion.concepts", "diffii_datasets.diffusion.suffixes",
                                     "diffii_datasets.datasets", "diffii_datasets.hf"])
def test_every_lazy_export_resolves(package):
    module = importlib.import_module(package)
    names = [name for name in module.__all__ if name != "__version__"]
    assert names and sorted(dir(module)) == sorted(names)
    for name in names:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        module.nonexistent
