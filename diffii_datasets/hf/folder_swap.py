"""Replacing a whole folder so a killed writer leaves the old one or the new one, never a part of one.

The new folder is written beside the old as ``.<name>.export-<pid>`` (starting from
:func:`staging_copy`, the old folder's files hard-linked) and swapped in by
:func:`swap_in`: one ``renameat2`` exchange on Linux, two renames elsewhere (the old
folder set aside as ``.<name>.old-<pid>`` in between). :func:`sweep_leftovers` removes
what killed writers left, and puts back an old folder a swap set aside. Used by
:func:`~diffii_datasets.hf.hub.export_to_folder`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import shutil
from pathlib import Path

from diffii_datasets._io import fsync_dir, process_gone, temp_owner

__all__ = ["staging_copy", "swap_in", "sweep_leftovers"]

logger = logging.getLogger(__name__)


def _staging_name(folder: Path, kind: str) -> Path:
    return folder.with_name(f".{folder.name}.{kind}-{os.getpid()}")


def sweep_leftovers(folder: Path) -> None:
    """Remove what killed writers of ``folder`` left beside it (only those whose process is gone).

    An old folder set aside by a swap that did not finish (``.<name>.old-<pid>``, on a system
    without an atomic exchange) is put back when ``folder`` is missing.
    """
    if not folder.parent.is_dir():
        return
    for path in folder.parent.glob(f".{glob.escape(folder.name)}.*-*"):
        kind = path.name[len(folder.name) + 2:].rsplit("-", 1)[0]
        owner = temp_owner(path.name)
        if kind not in ("export", "old") or owner is None or not process_gone(owner):
            continue
        if kind == "old" and not folder.exists():
            os.rename(path, folder)
            logger.warning("put back %s, set aside by an export that was killed while swapping it", folder)
        else:
            shutil.rmtree(path, ignore_errors=True)


def staging_copy(folder: Path, leave_out: Path) -> Path:
    """A new folder beside ``folder`` holding its files (hard links where possible) except ``folder / leave_out``."""
    staging = _staging_name(folder, "export")
    if staging.exists():  # this process's own, from an export that could not clean up
        shutil.rmtree(staging)
    if not folder.exists():
        staging.mkdir(parents=True)
        return staging
    if not folder.is_dir():
        raise NotADirectoryError(f"folder {str(folder)!r} is a file, not an export folder: pass a folder")
    replaced = folder / leave_out

    def ignore(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if Path(directory) / name == replaced]

    shutil.copytree(folder, staging, symlinks=True, ignore=ignore, copy_function=_link_or_copy)
    return staging


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (the export never writes into an existing file, so the old folder stays as it was), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def swap_in(staging: Path, folder: Path) -> None:
    """``staging`` becomes ``folder``; the old ``folder`` (if any) is removed."""
    fsync_dir(staging)
    if not folder.exists():
        os.rename(staging, folder)
    elif _exchange(staging, folder):
        shutil.rmtree(staging)  # the old folder now
    else:
        old = _staging_name(folder, "old")
        os.rename(folder, old)
        os.rename(staging, folder)
        shutil.rmtree(old)
    fsync_dir(folder.parent)


_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd = -100
    if renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL (filesystem without it), EOPNOTSUPP
        return False
    raise OSError(errno, os.strerror(errno), str(second))
