"""Print the declared minimum of every requirement in pyproject.toml as ``name==floor``, one per line.

    python scripts/min_requirements.py                  # core dependencies and every extra
    python scripts/min_requirements.py --skip torch torchvision

What ``make test-min`` installs: each floor of ``pyproject.toml`` exactly, so a floor
that does not hold fails there. A requirement without a ``>=`` floor is an error (a
floor must be declared to be tested).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*$")


def floors(skip: set[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"{PYPROJECT}: {requirement!r} is not of the form 'name>=floor'")
        name, version = match.groups()
        if name.lower() not in skip:
            pins[name.lower()] = f"{name}=={version}"
    return list(pins.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip", nargs="*", default=[], metavar="NAME", help="requirements to leave out")
    args = parser.parse_args(argv)
    print("\n".join(floors({name.lower() for name in args.skip})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
