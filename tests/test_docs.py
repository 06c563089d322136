"""The documentation: the site builds in strict mode, offline, and the code blocks of README.md and docs/ run.

Which blocks run:

- every ```` ```python ```` block runs, in page order, the blocks of one page sharing one namespace, in a fresh
  temporary working directory, offline (the network guard covers them), with the default cache
  (``$DIFFII_DATASETS_CACHE``) in one folder shared by all pages: the pages that generate with the tiny model
  make one store between them. A block that cannot run here is marked on the line before its fence with
  ``<!-- not run: <reason> -->``, the reason saying what it needs (``<!-- not run: needs the pretrained SD-1.5
  weights -->``);
- a ```` ```bash ```` block runs only when marked ``<!-- run -->`` (with ``bash -euo pipefail``, ``.venv/bin`` on
  ``PATH``): keep that for cheap commands (``--help``, ``--version``); the rest are commands for real data;
- other blocks (```` ```text ````, output) are never run.

A page's blocks get a name of 0.2 that moved (:class:`~diffii_datasets._deprecated.DiffIIDeprecationWarning`) as an
error, so the docs teach today's spelling.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
PAGE_TIMEOUT_S = 300
"""Per page: the generating page makes the tiny store in about 15 s on an idle 2-core machine, 40 s on a loaded
one (one torch thread); the rest read it."""

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"\s*<!--\s*(?P<kind>not run|run)\b\s*:?\s*(?P<reason>.*?)\s*-->\s*")
MARKER_START = re.compile(r"\s*<!--\s*(not run|run)\b")
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell"}

# The public packages and modules of the API reference, with their page; every name they export has an entry in the
# reference (under the module that defines it, on the page of the package it is imported from).
API_PAGES = {
    "diffii_datasets": "index.md",
    "diffii_datasets.config": "config.md",
    "diffii_datasets.methods": "methods.md",
    "diffii_datasets.job": "job.md",
    "diffii_datasets.prepare": "prepare.md",
    "diffii_datasets.plan": "plan.md",
    "diffii_datasets.store": "store.md",
    "diffii_datasets.settings": "settings.md",
    "diffii_datasets.image_datasets": "image_datasets.md",
    "diffii_datasets.diffusion": "diffusion.md",
    "diffii_datasets.hf": "hf.md",
    "diffii_datasets.classify": "classify.md",
    "diffii_datasets.compare": "compare.md",
    "diffii_datasets.quality": "quality.md",
    "diffii_datasets.released": "released.md",
    "diffii_datasets.testing": "testing.md",
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the first line of code (the line after the opening fence), 1-based
    lang: str
    code: str
    marker: str | None  # "run", "not run" or None
    reason: str


def parse_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page`` with the marker on the line before each (blank lines between allowed).

    A marker that precedes no fence, or a fence left open, is a ``ValueError`` naming the line.
    """
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    pending: tuple[int, str, str] | None = None  # (line, kind, reason) of a marker waiting for its fence
    i = 0
    while i < len(lines):
        line = lines[i]
        if MARKER_START.match(line):
            marker = MARKER.fullmatch(line)
            if marker is None:
                raise ValueError(f"{page}:{i + 1}: a marker is one line: <!-- not run: reason --> or <!-- run -->")
            if pending:
                raise ValueError(f"{page}:{pending[0]}: a marker not followed by a code block")
            pending = (i + 1, marker["kind"], marker["reason"])
            i += 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if pending and line.strip():
                raise ValueError(f"{page}:{pending[0]}: a marker not followed by a code block")
            i += 1
            continue
        indent, closing, start = len(fence["indent"]), fence["fence"], i + 1
        i += 1
        while i < len(lines) and not re.fullmatch(rf"\s*{re.escape(closing[0])}{{{len(closing)},}}\s*", lines[i]):
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start}: a code block that is never closed")
        code = "\n".join(text[indent:] if text[:indent].strip() == "" else text for text in lines[start:i])
        kind, reason = (pending[1], pending[2]) if pending else (None, "")
        blocks.append(Block(page, start + 1, fence["lang"].lower(), code, kind, reason))
        pending = None
        i += 1
    if pending:
        raise ValueError(f"{page}:{pending[0]}: a marker not followed by a code block")
    return blocks


def runs(block: Block) -> bool:
    if block.lang in PYTHON:
        return block.marker != "not run"
    return block.lang in SHELL and block.marker == "run"


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def has_runnable_blocks(page: Path) -> bool:
    try:
        return any(runs(block) for block in parse_blocks(page))
    except ValueError:  # a misplaced marker: the page's test reports it
        return True


RUNNABLE_PAGES = [page for page in PAGES if has_runnable_blocks(page)]


# -- the site ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_in_strict_mode_without_fetching_anything(tmp_path, monkeypatch):
    """In this process, so the network guard fails a build that reaches for a host (fonts, a CDN, an inventory)."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    monkeypatch.chdir(ROOT)  # mkdocs.yml names the griffe extension by its path from here
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    site = tmp_path / "site"
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(site), strict=True)
    assert config.strict and config.theme["font"] is False
    warned = WarningList()
    logging.getLogger("mkdocs").addHandler(warned)
    try:
        build(config)  # strict: any warning (a broken link, an unresolved reference, a page left out) aborts
        aborted = ""
    except Abort as abort:
        aborted = str(abort)
    finally:
        logging.getLogger("mkdocs").removeHandler(warned)
    if aborted:
        pytest.fail(f"mkdocs build --strict: {aborted}\n" + "\n".join(warned.messages), pytrace=False)

    assert (site / "index.html").is_file() and (site / "api" / "diffusion" / "index.html").is_file()
    fetched = set()  # what a browser would load from another host when a page opens (links are not loads)
    for page in site.rglob("*.html"):
        for tag in re.findall(r"<(?:link|script|img|iframe)\b[^>]*>", page.read_text()):
            url = re.search(r"\b(?:href|src)=\"?(https?://[^\" >]+)", tag)
            if url and not re.search(r"\brel=\"?(?:canonical|alternate)\b", tag):
                fetched.add(url[1])
    for style in site.rglob("*.css"):
        fetched |= set(re.findall(r"(?:url\(|@import\s+)[\"']?(https?://[^\"')\s]+)", style.read_text()))
    assert fetched == set(), "the pages load these from the network: " + ", ".join(sorted(fetched))


class WarningList(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def test_every_public_name_has_an_entry_in_the_api_reference():
    """The reference lists names one by one (they load lazily, so griffe cannot see a package's exports): a name
    added to a package's exports needs its line. (Pages left out of the nav fail the strict build.)"""
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE))
    missing = []
    for module_name, page in API_PAGES.items():
        module = importlib.import_module(module_name)
        absent = [name for name in module.__all__
                  if not name.startswith("__") and f"{home(module_name, name)}.{name}" not in documented]
        if absent:
            missing.append(f"{module_name} {absent}: add '::: <defining module>.<name>' lines to docs/api/{page}")
    assert missing == []


def home(module_name: str, name: str) -> str:
    """The module that defines ``name`` of ``module_name``: its lazy export table followed down (packages only
    are imported, which load no torch)."""
    module = importlib.import_module(module_name)
    for exporter, names in getattr(module, "_EXPORTS", {}).items():
        if name in names:
            return home(exporter, name)
    return module_name


# -- the code blocks --------------------------------------------------------------------------------------------------


def test_markers_say_why_and_sit_on_the_right_blocks():
    problems = []
    for page in PAGES:
        for block in parse_blocks(page):
            where = f"{page_id(page)}:{block.line - 1}"
            if block.marker == "not run" and block.lang not in PYTHON:
                problems.append(f"{where}: 'not run' marks a {block.lang or 'plain'} block (only Python blocks run)")
            if block.marker == "not run" and len(block.reason.split()) < 2:
                problems.append(f"{where}: 'not run' needs a reason: <!-- not run: needs ... -->")
            if block.marker == "run" and block.lang not in SHELL:
                problems.append(f"{where}: 'run' marks a {block.lang or 'plain'} block (Python blocks run anyway)")
    assert problems == []


def test_the_marker_parser_reads_markers_and_refuses_a_stray_one(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- not run: needs SD-1.5 -->\n```python\nx = 1\n```\n\n<!-- run -->\n\n```bash\necho\n```\n"
                    "  ```py\n  y = 2\n  ```\n")
    blocks = parse_blocks(page)
    assert [(b.line, b.lang, b.marker, b.reason, b.code) for b in blocks] == [
        (3, "python", "not run", "needs SD-1.5", "x = 1"), (9, "bash", "run", "", "echo"),
        (12, "py", None, "", "y = 2")]
    assert [runs(block) for block in blocks] == [False, True, True]
    page.write_text("<!-- not run: needs SD-1.5 -->\nsome text\n```python\nx = 1\n```\n")
    with pytest.raises(ValueError, match="page.md:1: a marker not followed by a code block"):
        parse_blocks(page)
    page.write_text("<!-- not run: needs\nSD-1.5 -->\n```python\nx = 1\n```\n")
    with pytest.raises(ValueError, match="page.md:1: a marker is one line"):
        parse_blocks(page)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("docs-cache")


@pytest.mark.slow
@pytest.mark.timeout(PAGE_TIMEOUT_S)
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=page_id)
def test_the_code_blocks_of_a_page_run(page, tmp_path, monkeypatch, shared_cache):
    from diffii_datasets._deprecated import DiffIIDeprecationWarning

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIFFII_DATASETS_CACHE", str(shared_cache))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    namespace = {"__name__": "__docs__"}
    for block in parse_blocks(page):
        if not runs(block):
            continue
        where = f"{page_id(page)}:{block.line}"
        if block.lang in SHELL:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], capture_output=True, text=True,
                                  timeout=PAGE_TIMEOUT_S)
            assert done.returncode == 0, f"{where}: the block exited {done.returncode}\n{block.code}\n{done.stderr}"
            continue
        # Padded so that a traceback's line numbers are the page's.
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        with warnings.catch_warnings():
            warnings.simplefilter("error", DiffIIDeprecationWarning)
            try:
                exec(code, namespace)
                failure = ""
            except Exception:
                failure = traceback.format_exc()
        if failure:
            pytest.fail(f"{where}: the block failed\n{block.code}\n\n{failure}", pytrace=False)
