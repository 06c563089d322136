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
    ("import diffii_datasets.diffusion, diffii_datasets.settings, diffii_datasets.image_datasets, "
     "diffii_datasets.hf, diffii_datasets.store, diffii_datasets.methods", []),
    ("from diffii_datasets.settings import list_settings, get_setting; get_setting('cub-5shot')", []),
    ("from diffii_datasets.methods import get_method, list_methods; [get_method(m) for m in list_methods()]", []),
    ("import diffii_datasets.job, diffii_datasets.plan", []),
    ("import diffii_datasets.diffusion.interpolation", ["numpy", "torch"]),
])
def test_light_modules_load_no_heavy_library(statement, allowed):
    assert loaded_after(statement) == allowed


@pytest.mark.parametrize("package", ["diffii_datasets", "diffii_datasets.diffusion",
                                     "diffii_datasets.diffusion.concepts", "diffii_datasets.diffusion.suffixes",
                                     "diffii_datasets.settings", "diffii_datasets.image_datasets", "diffii_datasets.hf",
                                     "diffii_datasets.store", "diffii_datasets.methods"])
def test_every_lazy_export_resolves(package):
    module = importlib.import_module(package)
    names = [name for name in module.__all__ if name != "__version__"]
    assert names and sorted(dir(module)) == sorted(names)
    for name in names:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        module.nonexistent


@pytest.mark.parametrize("old, name, new", [
    ("diffii_datasets.datasets", "get_setting", "diffii_datasets.settings.get_setting"),
    ("diffii_datasets.datasets", "CUB200", "diffii_datasets.image_datasets.CUB200"),
    ("diffii_datasets.datasets.settings", "FAMILIES", "diffii_datasets.settings.base.FAMILIES"),
    ("diffii_datasets.data", "scan_dataset", "diffii_datasets.base_dataset.scan_dataset"),
    ("diffii_datasets.store_header", "StoreHeader", "diffii_datasets.store.header.StoreHeader"),
    ("diffii_datasets.synthesis", "SynthesisJob", "diffii_datasets.job.PreparationJob"),
])
def test_a_moved_name_still_imports_and_warns_once_with_its_new_spelling(old, name, new):
    code = ("import warnings, importlib; warnings.simplefilter('always'); "
            f"m = importlib.import_module({old!r})\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            f"    first = getattr(m, {name!r}); again = getattr(m, {name!r})\n"
            f"new_module, _, new_name = {new!r}.rpartition('.')\n"
            "assert first is getattr(importlib.import_module(new_module), new_name)\n"
            "print([str(w.message) for w in caught])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == [f"{old}.{name} is deprecated and will be removed; use {new}"]
