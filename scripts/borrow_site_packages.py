"""Give a fresh virtual environment packages installed in another one, without copying or downloading them.

    python scripts/borrow_site_packages.py .venv /tmp/clean-venv --all-but diffii-datasets
    python scripts/borrow_site_packages.py .venv .venv-min --only torch torchvision --keep numpy pillow

Torch with its CUDA libraries is several GB; the wheel check and the minimum-versions
environment need one, not another download. The chosen distributions' files are
linked into ``<target>/borrowed/`` and a ``.pth`` file puts that folder on the target's
``sys.path`` after the target's own site-packages, so a package installed in the target
wins over a borrowed one, and pip sees the borrowed distributions as installed.

``--all-but NAMES``: every distribution except these (and never their files, ``.pth``
hooks included): a clean environment for a wheel. ``--only NAMES``: these and every
distribution they require, except the ``--keep`` ones, which the target installs itself.
Run it with the source environment's Python (it reads the source's metadata). Prints
the borrowed distributions.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement

BORROWED_DIR = "borrowed"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(site: Path) -> dict[str, importlib.metadata.Distribution]:
    return {normalise(dist.metadata["Name"]): dist for dist in importlib.metadata.distributions(path=[str(site)])}


def required_closure(dists: dict[str, importlib.metadata.Distribution], roots: list[str], keep: set[str]) -> set[str]:
    """``roots`` and, transitively, every installed distribution they require (with the extras asked for)."""
    chosen: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(normalise(name), frozenset[str]()) for name in roots]
    while pending:
        name, extras = pending.pop()
        if name in keep or name not in dists or (name, extras) in seen:
            continue
        seen.add((name, extras))
        chosen.add(name)
        for line in dists[name].requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((normalise(requirement.name), frozenset(requirement.extras)))
    return chosen


def top_level_entries(dist: importlib.metadata.Distribution) -> set[str]:
    """The names directly under site-packages that a distribution's files occupy (scripts in bin/ are left out)."""
    return {Path(str(path)).parts[0] for path in dist.files or [] if not str(path).startswith("..")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the environment to borrow from (its Python runs this script)")
    parser.add_argument("target", type=Path, help="the fresh environment (python -m venv) to give them to")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--all-but", nargs="+", metavar="NAME", help="borrow every distribution except these")
    choice.add_argument("--only", nargs="+", metavar="NAME", help="borrow these and what they require")
    parser.add_argument("--keep", nargs="*", default=[], metavar="NAME",
                        help="with --only: requirements the target installs itself")
    args = parser.parse_args(argv)

    site = Path(sysconfig.get_paths()["purelib"])
    if Path(sys.prefix).resolve() != args.source.resolve():
        parser.error(f"run this with {args.source}/bin/python (it reads that environment's metadata)")
    dists = installed(site)
    if args.all_but:
        excluded = {normalise(name) for name in args.all_but}
        chosen = set(dists) - excluded
        forbidden = {entry for name in excluded if name in dists for entry in top_level_entries(dists[name])}
    else:
        chosen = required_closure(dists, args.only, {normalise(name) for name in args.keep})
        forbidden = set()
    entries = {entry for name in chosen for entry in top_level_entries(dists[name])} - forbidden
    entries = {entry for entry in entries if not entry.endswith(".pth") and (site / entry).exists()}

    target_sites = list(args.target.glob("lib/python*/site-packages"))
    if len(target_sites) != 1:
        parser.error(f"{args.target} is not a virtual environment (python -m venv {args.target})")
    borrowed = args.target / BORROWED_DIR
    borrowed.mkdir(exist_ok=True)
    for entry in sorted(entries):
        link = borrowed / entry
        if not link.is_symlink():
            link.symlink_to(site / entry)
    (target_sites[0] / "_borrowed.pth").write_text(f"{borrowed.resolve()}\n")
    print("borrowed from " + str(args.source) + ": " + ", ".join(
        f"{dists[name].metadata['Name']} {dists[name].version}" for name in sorted(chosen)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
