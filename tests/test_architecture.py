"""docs/architecture.md stays true: every module and file it names exists, and no module outgrows one job."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def test_every_path_the_architecture_names_exists():
    text = DOC.read_text(encoding="utf-8")
    paths = sorted(set(re.findall(r"`((?:diffii_datasets|tests|hub_cards)/[\w./<>-]*)`", text)))
    assert len(paths) > 30  # the page names the modules it is about
    missing = [path for path in paths if "<" not in path and not (ROOT / path).exists()]
    assert missing == []


def test_every_registry_the_architecture_names_is_where_it_says():
    from diffii_datasets.cli import COMMAND_GROUPS
    from diffii_datasets.methods import METHOD_MODULES
    from diffii_datasets.settings.families import FAMILY_MODULES

    text = DOC.read_text(encoding="utf-8")
    for name, registry in (("METHOD_MODULES", METHOD_MODULES), ("FAMILY_MODULES", FAMILY_MODULES),
                           ("COMMAND_GROUPS", COMMAND_GROUPS)):
        assert f"`{name}`" in text and registry, name


def test_no_module_is_over_500_lines():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in (ROOT / "diffii_datasets").rglob("*.py")}
    assert len(sizes) > 50
    assert {path: lines for path, lines in sizes.items() if lines > 500} == {}
