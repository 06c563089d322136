"""The released archives extracted safely, once, and files located inside them.

Extraction rules (an archive from the network is data, not instructions):

- every member name is checked before anything is written: no absolute path, no drive
  letter, no ``..`` component (``\\`` counts as a separator, as zips made on Windows use it,
  and a name ending in either is a directory), no NUL, no name twice;
- no symbolic link, device or other special member is created (one is an error), and no
  link is followed: files are created with ``O_EXCL | O_NOFOLLOW`` in a fresh directory;
- the sizes the central directory declares must add up to at most ``max_bytes`` and fit on
  the disk, and every member must yield exactly its declared size (and CRC, checked by
  :mod:`zipfile`);
- a damaged or partial archive (no central directory, bad CRC, short data) is an error that
  names it and says how to download it again;
- extraction goes to a temporary directory beside the target, a marker file is written last
  and the directory is renamed into place, under a file lock: an interrupted run leaves no
  half-extracted target, and the next run starts over and completes it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from diffii_datasets._io import FileFormatError, read_json, write_json

__all__ = ["MAX_EXTRACTED_BYTES", "DamagedArchiveError", "UnsafeArchiveError", "archive_digest", "archive_files",
           "extract_archive"]

MAX_EXTRACTED_BYTES = 16 * 2**30
"""The most bytes one extraction may write (16 GiB): far above what the released archives need."""

MARKER = ".diffii-extracted.json"
_FORMAT = 1
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class DamagedArchiveError(ValueError):
    """An archive that is not a complete, readable zip file; the message names it and how to get it again."""


class UnsafeArchiveError(ValueError):
    """An archive with a member that would leave the target directory, a link, or sizes beyond the cap."""


def extract_archive(archive: Path, target: Path, *, select: Callable[[str], bool] | None = None,
                    selection: str = "all", max_bytes: int = MAX_EXTRACTED_BYTES, progress: bool = True) -> Path:
    """Extract ``archive`` (its members that ``select`` keeps) into ``target`` once; ``target``.

    ``selection`` names ``select`` in the marker, so a target extracted with another
    selection is extracted again. See the module docstring for the safety rules.
    """
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    expected = {"format": _FORMAT, "archive": archive.name, "selection": selection}
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if _complete(target, expected):
            return target
        for stale in target.parent.glob(f".{target.name}.partial-*"):  # an interrupted run's work
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        with _open_zip(archive) as zip_file:
            members = _checked_members(zip_file, archive, select or (lambda name: True), max_bytes, target.parent)
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
            try:
                _extract(zip_file, members, archive, work, progress)
                write_json(work / MARKER, {**expected, "files": len(members),
                                           "bytes": sum(info.file_size for info, _ in members)})
                work.rename(target)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
    return target


def _complete(target: Path, expected: dict) -> bool:
    try:
        marker = read_json(target / MARKER, missing_ok=True)
    except FileFormatError:
        return False
    return marker is not None and all(marker.get(key) == value for key, value in expected.items())


def _open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise DamagedArchiveError(f"{archive} is not a readable zip archive ({error}): it is damaged or was only "
                                  f"partly downloaded; {_again(archive)}") from error


def _again(archive: Path) -> str:
    return (f"download it again with force_download=True (--force-download) or delete {archive} and "
            f"its blob in the Hugging Face cache")


def _checked_members(zip_file: zipfile.ZipFile, archive: Path, select: Callable[[str], bool], max_bytes: int,
                     disk: Path) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """The regular files to extract, each with its path parts, after checking every member."""
    members, seen, total = [], set(), 0
    for info in zip_file.infolist():
        name = info.filename
        parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
        where = f"{archive}: member {name!r}"
        if "\x00" in name or name.replace("\\", "/").startswith("/") or _DRIVE.match(name):
            raise UnsafeArchiveError(f"{where} has an absolute path; refused")
        if ".." in parts:
            raise UnsafeArchiveError(f"{where} would leave the target directory ('..'); refused")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{where} is a symbolic link; refused (no link is created or followed)")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no file type recorded, a plain file
            raise UnsafeArchiveError(f"{where} is not a regular file or directory (mode {oct(mode)}); refused")
        key = "/".join(parts)
        if key in seen:
            raise UnsafeArchiveError(f"{where} appears twice; refused")
        seen.add(key)
        if _is_dir(name) or not parts or not select(name):
            continue
        if info.flag_bits & 0x1:
            raise DamagedArchiveError(f"{where} is encrypted; it cannot be extracted")
        total += info.file_size
        if total > max_bytes:
            raise UnsafeArchiveError(f"{archive}: its members would extract to more than max_bytes={max_bytes} bytes "
                                     "(as its central directory declares); refused")
        members.append((info, parts))
    free = shutil.disk_usage(disk).free
    if total > free:
        raise OSError(f"{archive} extracts to {total} bytes but {disk} has {free} bytes free")
    return members


def _extract(zip_file: zipfile.ZipFile, members: list[tuple[zipfile.ZipInfo, list[str]]], archive: Path,
             work: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    base = os.path.realpath(work)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with tqdm(total=sum(info.file_size for info, _ in members), unit="B", unit_scale=True,
              desc=f"extracting {archive.name}", disable=not progress) as bar:
        for info, parts in members:
            destination = work.joinpath(*parts)
            if os.path.commonpath([base, os.path.realpath(destination)]) != base:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} would leave the target directory")
            written = 0
            try:
                _make_dirs(work, parts[:-1])
                with zip_file.open(info) as source, os.fdopen(os.open(destination, flags, 0o644), "wb") as out:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        if written > info.file_size:
                            break
                        out.write(chunk)
                        bar.update(len(chunk))
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise DamagedArchiveError(f"{archive}: member {info.filename!r} cannot be read ({error}): the archive "
                                          f"is damaged or was only partly downloaded; {_again(archive)}") from error
            except FileExistsError as error:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} collides with another member") from error
            if written != info.file_size:
                more_or_fewer = "more" if written > info.file_size else "fewer"
                raise DamagedArchiveError(f"{archive}: member {info.filename!r} holds {more_or_fewer} bytes than its "
                                          f"central directory declares ({info.file_size}); {_again(archive)}")


def _make_dirs(work: Path, parts: list[str]) -> None:
    """Create ``work/parts...`` one level at a time; an existing level must be a real directory, not a link."""
    current = work
    for part in parts:
        current = current / part
        try:
            current.mkdir()
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise FileExistsError(f"{current} exists and is not a directory") from None


def _is_dir(name: str) -> bool:
    return name.endswith(("/", "\\"))


def archive_files(archive: Path) -> list[str]:
    """The files of ``archive`` (its members less directories, ``\\`` read as ``/``), for listings."""
    with _open_zip(archive) as zip_file:
        return [info.filename.replace("\\", "/") for info in zip_file.infolist() if not _is_dir(info.filename)]


def archive_digest(archive: Path) -> str:
    """A digest of ``archive``'s contents read from its central directory (every member's name, size and CRC):
    the same for two copies of one archive, different when a member changes, and cheap for a large zip."""
    digest = hashlib.sha256()
    with _open_zip(archive) as zip_file:
        for info in sorted(zip_file.infolist(), key=lambda info: info.filename):
            digest.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
    return digest.hexdigest()
