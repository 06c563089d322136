"""The authors' released files from a local copy (``released_from``): nothing touches the network.

A copy is a folder where the authors' ``scripts/download.sh`` unzipped ``datasets.zip``,
``ft_ti_db.zip`` and ``suffix.zip`` (it keeps the zips beside what it unzipped), a folder holding
the three zips, or a mix. For each archive a setting needs, its files are looked for in the
folder first (:mod:`~diffii_datasets.released.locating`: wrapper folders allowed); failing that
the zip of that name in the folder is extracted (safely, once, under the package cache, keyed
by a digest of the zip's contents) and the files looked for inside it. A file found nowhere is a
``FileNotFoundError`` listing the files the folder holds at every depth.

Where the files came from is recorded as ``local:<digest of the files used>`` in place of a
repository commit, so two different copies never pass for one. Torch-free.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from diffii_datasets import _checks
from diffii_datasets.released.archives import archive_digest, archive_files, extract_archive
from diffii_datasets.released.layout import ARCHIVES, EXTRACTED
from diffii_datasets.released.locating import describe_files, expected, find, folder_files, locate

__all__ = ["LocalRelease", "local_commit", "released_folder"]

_CHUNK = 1 << 20


def released_folder(released_from: str | os.PathLike) -> Path:
    """The folder ``released_from`` names: itself, or the folder of one of the three zips."""
    if not isinstance(released_from, (str, os.PathLike)) or not os.fspath(released_from):
        _checks.fail(TypeError, "released_from", "a path (str or os.PathLike) to the authors' released files",
                     released_from)
    path = Path(os.fspath(released_from)).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and path.name in ARCHIVES:
        return path.parent
    if path.exists():
        raise ValueError(f"released_from={str(path)!r}: expected a folder holding the authors' unzipped archives or "
                         f"the zips {', '.join(ARCHIVES)}, or one of those zips; got another file")
    raise FileNotFoundError(f"released_from={str(path)!r}: no such folder")


class LocalRelease:
    """A local copy of the released archives; :meth:`files_of` finds one archive's files in it.

    Args:
        released_from: see :func:`released_folder`.
        extract_to: where a zip is extracted (``<cache>/released/local/``).
        progress, max_bytes: :func:`~diffii_datasets.released.archives.extract_archive`'s.
    """

    def __init__(self, released_from: str | os.PathLike, extract_to: Path, *, progress: bool, max_bytes: int
                 ) -> None:
        self.folder = released_folder(released_from)
        self.extract_to = extract_to
        self.progress = progress
        self.max_bytes = max_bytes

    def files_of(self, archive: str, wanted: Mapping[str, tuple[Sequence[str], str]]
                 ) -> tuple[Path, dict[str, Path], dict[str, str]]:
        """``archive``'s files ``wanted`` (``{role: (candidate paths, purpose)}``): the folder or zip they were
        read from, ``{role: path}`` and ``{role: how messages name it}``."""
        found = {role: find(self.folder, candidates) for role, (candidates, _) in wanted.items()}
        if all(path is not None for path in found.values()):
            return self.folder, found, {role: str(path) for role, path in found.items()}
        zipped = self.folder / archive
        if not zipped.is_file():
            role = next(role for role, path in found.items() if path is None)
            candidates, purpose = wanted[role]
            raise FileNotFoundError(f"{self.folder} (released_from) has no {purpose}: {expected(candidates)}; nor "
                                    f"does it hold {archive} to extract it from. "
                                    f"{describe_files(folder_files(self.folder), candidates)}")
        selection, select = EXTRACTED.get(archive, ("all", None))
        extracted = extract_archive(zipped, self.extract_to / archive_digest(zipped)[:16] / Path(archive).stem,
                                    select=select, selection=selection, max_bytes=self.max_bytes,
                                    progress=self.progress)
        files = {role: locate(extracted, candidates, purpose=purpose, where=str(zipped),
                              listing=lambda: archive_files(zipped))
                 for role, (candidates, purpose) in wanted.items()}
        return zipped, files, {role: f"{zipped}:{path.relative_to(extracted).as_posix()}"
                               for role, path in files.items()}


def local_commit(files: Iterable[tuple[str, Path]]) -> str:
    """``local:<digest>`` of the ``(name, file)`` pairs used: their contents, not where they lie."""
    digest = hashlib.sha256()
    for name, path in sorted(files):
        digest.update(f"{name}\0{_sha256(path)}\n".encode())
    return f"local:{digest.hexdigest()[:16]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
