"""What the package declares and ships: every import declared, the card templates inside the wheel.

`make check-wheel` (scripts/check_wheel.sh) goes further: it installs the wheel in a
clean environment and exports a store with it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from diffii_datasets.hf.cards import cards_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffii_datasets"
TEMPLATES = sorted(path.name for path in (ROOT / "hub_cards").glob("*.md"))


def declared_distributions() -> dict[str, str]:
    """``{normalised distribution name: requirement}`` of the core dependencies and every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {normalise(re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]): requirement
            for requirement in requirements}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> dict[str, str]:
    """``{top-level module: a file importing it}`` for every non-stdlib import in the package."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("__future__", "diffii_datasets"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared():
    """yaml (PyYAML) and pyarrow were imported without being declared: a loose install could lack them."""
    declared = declared_distributions()
    owners = importlib.metadata.packages_distributions()
    imports = third_party_imports()
    assert {"yaml", "pyarrow", "torch", "datasets"} <= set(imports)
    undeclared = {module: (where, owners.get(module)) for module, where in imports.items()
                  if not any(normalise(dist) in declared for dist in owners.get(module, [module]))}
    assert undeclared == {}
    assert declared["pyyaml"].startswith("pyyaml>=") and declared["pyarrow"].startswith("pyarrow>=")


def test_card_templates_are_found_next_to_the_package(monkeypatch):
    """The package's hub_cards/ is the top-level folder (a link in a checkout), so both hold the same files."""
    monkeypatch.delenv("DIFFII_HUB_CARDS", raising=False)
    folder = cards_dir()
    assert folder == PACKAGE / "hub_cards"
    assert (PACKAGE / "hub_cards").resolve() == (ROOT / "hub_cards").resolve()
    assert sorted(path.name for path in folder.glob("*.md")) == TEMPLATES
    assert {"_base.md", "generic.md", "cub.md", "flower-lt.md"} <= set(TEMPLATES)


def test_wheel_carries_the_card_templates_and_the_declared_requirements(tmp_path):
    """A wheel built from the sources holds every template of hub_cards/, byte for byte, inside the package."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "hub_cards", source / "hub_cards", ignore=ignore)
    shutil.copytree(PACKAGE, source / "diffii_datasets", symlinks=True, ignore=ignore)  # the link stays a link
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path / "dist")], check=True, env=env, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("diffii_datasets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name[len("diffii_datasets/hub_cards/"):]: archive.read(name) for name in archive.namelist()
                   if name.startswith("diffii_datasets/hub_cards/")}
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        requires = [line.split(": ", 1)[1] for line in archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist: ")]
        assert "diffii_datasets/data/sample/" in "\n".join(archive.namelist())
    assert sorted(shipped) == TEMPLATES
    assert all(shipped[name] == (ROOT / "hub_cards" / name).read_bytes() for name in TEMPLATES)
    core = {normalise(re.split(r"[<>=!~ ;\[]", line, maxsplit=1)[0]) for line in requires if "extra ==" not in line}
    assert {"pyyaml", "pyarrow", "torch", "datasets", "jinja2"} <= core


def test_every_requirement_has_a_floor_that_test_min_installs():
    """`make test-min` pins each declared floor exactly; a requirement without one could not be tested there."""
    declared = declared_distributions()
    printed = subprocess.run([sys.executable, str(ROOT / "scripts" / "min_requirements.py"), "--skip", "torch",
                              "torchvision"], check=True, capture_output=True, text=True).stdout.split()
    pins = {normalise(line.split("==")[0]): line.split("==")[1] for line in printed}
    assert set(pins) == set(declared) - {"torch", "torchvision"}
    for name, version in pins.items():
        assert re.fullmatch(rf"{re.escape(declared[name].split('>=')[0])}>={re.escape(version)}", declared[name])
