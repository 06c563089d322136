"""Finding a released file by the path Diff-II's scripts read, in whatever folder layout a copy has.

The authors' scripts read ``ft_ti_db/...``, ``suffix/...`` and ``datasets/...`` from the folder
where ``scripts/download.sh`` unzipped the archives. Copies differ: an archive made inside its
top folder (no ``ft_ti_db/``), or with a wrapper folder around it (``Diff-II/ft_ti_db/...``). So a
path is tried as written and without its first folder, under the root and under every folder
up to :data:`SEARCH_DEPTH` levels below it. When nothing matches, the error lists the files
that are there, at every depth, so a renamed or misplaced file shows. Torch-free.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

__all__ = ["SEARCH_DEPTH", "describe_files", "find", "folder_files", "locate"]

SEARCH_DEPTH = 2
"""How many wrapper folders may sit above the scripts' paths."""

_FEW = 5  # a folder with more files than this is listed as one entry (e.g. a class folder of images)
_LISTED = 40
_MAX_WALKED = 200_000


def find(root: Path, candidates: Sequence[str]) -> Path | None:
    """The file ``candidates`` (relative paths, preferred first) name under ``root``, or None.

    The shallowest match wins, then the path as written over the path without its first folder,
    then the earlier candidate. Two different files that tie raise ``ValueError`` naming both:
    picking one would be a guess.
    """
    matches: dict[tuple[int, int, int], set[Path]] = defaultdict(set)
    for depth, base in _bases(root):
        for shortened, index, relative in _variants(candidates):
            path = base / relative
            if path.is_file():
                matches[(depth, shortened, index)].add(path)
    if not matches:
        return None
    best = matches[min(matches)]
    if len({os.path.realpath(path) for path in best}) > 1:
        shown = ", ".join(sorted(str(path) for path in best))
        raise ValueError(f"{root} holds {len(best)} files that could each be {candidates[0]}: {shown}; keep one")
    return min(best)


def locate(root: Path, candidates: Sequence[str], *, purpose: str, where: str,
           listing: Callable[[], list[str]]) -> Path:
    """:func:`find`, or ``FileNotFoundError`` naming what was expected in ``where`` and listing ``listing()``
    (the relative paths of the files ``where`` holds)."""
    path = find(root, candidates)
    if path is None:
        raise FileNotFoundError(f"{where} has no {purpose}: {expected(candidates)}. "
                                f"{describe_files(listing(), candidates)}")
    return path


def expected(candidates: Sequence[str]) -> str:
    """What :func:`find` looks for, in words, for error messages."""
    others = "".join(f" or {path}" for path in candidates[1:])
    return (f"expected {candidates[0]} (the path Diff-II's scripts read){others}, possibly without its first "
            f"folder or inside up to {SEARCH_DEPTH} wrapper folders")


def folder_files(folder: Path) -> list[str]:
    """The relative paths of the files under ``folder`` at every depth (hidden names skipped), for listings."""
    files: list[str] = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        prefix = Path(current).relative_to(folder)
        files += [(prefix / name).as_posix() for name in sorted(names) if not name.startswith(".")]
        if len(files) > _MAX_WALKED:
            break
    return files


def describe_files(names: Iterable[str], wanted: Sequence[str] = (), limit: int = _LISTED) -> str:
    """``"It holds N files: ..."``: every file, a folder of many files as one entry, the entries nearest
    to the ``wanted`` paths first when there are more than ``limit``."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for name in names:
        path = PurePosixPath(name.replace("\\", "/"))
        by_folder[path.parent.as_posix()].append(path.name)
    total = sum(len(files) for files in by_folder.values())
    if not total:
        return "It holds no file."
    entries = []
    for folder, files in by_folder.items():
        prefix = "" if folder == "." else f"{folder}/"
        if len(files) > _FEW:
            entries.append(f"{prefix or './'} ({len(files)} files, e.g. {min(files)})")
        else:
            entries += [prefix + file for file in files]
    parts = {part for path in wanted for part in PurePosixPath(path).parts}
    shown = sorted(entries, key=lambda entry: -len(parts.intersection(PurePosixPath(entry.split(" ")[0]).parts)))
    more = f", and {len(entries) - limit} more entries" if len(entries) > limit else ""
    return f"It holds {total} file{'s' if total != 1 else ''}: {', '.join(sorted(shown[:limit]))}{more}"


def _bases(root: Path) -> list[tuple[int, Path]]:
    """``root`` and its folders down to :data:`SEARCH_DEPTH` levels, with their depth (hidden ones skipped)."""
    bases, level = [(0, root)], [root]
    for depth in range(1, SEARCH_DEPTH + 1):
        level = [Path(entry.path) for folder in level for entry in _subfolders(folder)]
        bases += [(depth, folder) for folder in level]
    return bases


def _subfolders(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted((entry for entry in entries if entry.is_dir() and not entry.name.startswith(".")),
                          key=lambda entry: entry.name)
    except OSError:
        return []


def _variants(candidates: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(shortened, index, path)``: each candidate as written, then without its first folder."""
    variants = [(0, index, path) for index, path in enumerate(candidates)]
    variants += [(1, index, path.split("/", 1)[1]) for index, path in enumerate(candidates) if "/" in path]
    return variants
