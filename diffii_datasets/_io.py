"""Files: the one atomic writer, the one JSON reader, and content digests.

Every file the package writes goes through :func:`atomic_write` (a temp file in
the same folder, fsynced, renamed over the target, the folder fsynced), so a
reader sees the old file or the whole new one, never a part. Temp files are
named ``.<name>.tmp-<pid>``, so a later run can tell whose they are
(:func:`temp_owner`) and sweep those whose process is gone. Files are created with
the process's umask, like any other file the user makes (:func:`file_mode`).

Every JSON file the package reads goes through :func:`read_json`, whose errors
(:class:`FileFormatError`) name the file and what is wrong with it. Pure Python:
importing this module loads no third-party library.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "FileFormatError",
    "atomic_write",
    "file_mode",
    "fingerprint",
    "fsync_dir",
    "process_gone",
    "json_bytes",
    "read_json",
    "sha256_bytes",
    "sha256_file",
    "temp_name",
    "temp_owner",
    "write_json",
]


class FileFormatError(ValueError):
    """A file that exists but does not hold what it should; ``path`` is the file, the message says why."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def temp_name(path: Path) -> Path:
    """Where :func:`atomic_write` stages ``path``: ``.<name>.tmp-<pid>`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def temp_owner(name: str) -> int | None:
    """The process id a temporary name ends with (``...tmp-<pid>``, ``...-<pid>``), ``None`` when it has none."""
    found = _OWNER.search(name)
    return int(found.group(1)) if found else None


_OWNER = re.compile(r"-(\d+)\Z")


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this machine (another user's process counts as running)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def file_mode() -> int:
    """The mode :func:`open` gives a new file: ``0o666`` less the process's umask.

    For files a library writes with a mode of its own (safetensors writes 0600), so every
    file of a shared cache can be read by whoever may read the rest.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)  # no /proc (not Linux): read it by setting it, then put it back
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    temp = temp_name(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new file in folder ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_bytes(value: Any) -> bytes:
    """The canonical form of a JSON file of this package: sorted keys, two-space indent, UTF-8, final newline."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike, value: Any) -> None:
    """:func:`atomic_write` of :func:`json_bytes`."""
    atomic_write(path, json_bytes(value))


def read_json(path: str | os.PathLike, *, expect: type | tuple[type, ...] | None = dict,
              missing_ok: bool = False, canonical: bool = False) -> Any:
    """The JSON value in ``path``; ``None`` for a missing file when ``missing_ok``.

    Raises :class:`FileFormatError` naming the file when it cannot be read, is not
    UTF-8 JSON, or its top-level value is not of type ``expect`` (a JSON ``null`` is
    refused unless ``expect`` is ``None``), and ``FileNotFoundError`` (naming it) when
    it is missing and not ``missing_ok``. With ``canonical``, the bytes must also be
    exactly :func:`json_bytes` of the value, as this package writes its own files: an
    edit or a flipped byte that still parses is refused too.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FileFormatError(path, "is a directory, expected a JSON file") from None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FileFormatError(path, f"is not valid JSON ({error})") from None
    if canonical and _canonical(value) != data:
        raise FileFormatError(path, "is not in the form diffii-datasets writes (edited or damaged)")
    if expect is not None and not isinstance(value, expect):
        names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
        kinds = {"dict": "a JSON object", "list": "a JSON array"}
        raise FileFormatError(path, f"must hold {kinds.get(names, names)}, found {type(value).__name__}")
    return value


def _canonical(value: Any) -> bytes | None:
    try:
        return json_bytes(value)
    except ValueError:  # NaN or Infinity: never written by this package
        return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in blocks (files may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(value: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable value (keys sorted, so dict order does not matter).

    Used for store directories, caches and concept identities, so two runs that see
    the same content agree on a key, whatever the process or machine.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_reject)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _reject(value: Any) -> Any:
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}: {value!r}")
