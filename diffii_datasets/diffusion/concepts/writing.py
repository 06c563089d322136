"""Writing concept files: an ``OSError`` (a full disk, above all) names the file and the space it needed.

Pure Python.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ConceptWriteError", "format_bytes", "writing"]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class ConceptWriteError(OSError):
    """Writing a concept file failed: ``path`` is the file, ``needed_bytes`` what the whole write needed.

    An ``OSError`` with the original ``errno`` (``ENOSPC`` for a full disk), so callers
    that catch ``OSError`` still do; its message says which file, how much space, and
    where to free it. Callers that know more (the store the file belongs to) add it.
    """

    def __init__(self, error: OSError, path: str | os.PathLike, needed_bytes: int) -> None:
        self.path = Path(path)
        self.needed_bytes = needed_bytes
        reason = error.strerror or str(error)
        if error.errno in _NO_SPACE:
            message = (f"{reason} while writing {self.path}: this write needs about {format_bytes(needed_bytes)}; "
                       f"free at least that much on the file system holding {self.path.parent}")
        else:
            message = f"could not write {self.path} ({format_bytes(needed_bytes)}): {reason}"
        super().__init__(error.errno, message, str(self.path))
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextmanager
def writing(path: str | os.PathLike, needed_bytes: int) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a :class:`ConceptWriteError` naming ``path``."""
    try:
        yield
    except ConceptWriteError:
        raise
    except OSError as error:
        raise ConceptWriteError(error, path, needed_bytes) from error


def format_bytes(count: int) -> str:
    """``"12.3 MiB"``: a byte count as people read it."""
    power = 0
    while power < len(_UNITS) - 1 and count >= 1024 ** (power + 1):
        power += 1
    return f"{count:,} B" if power == 0 else f"{count / 1024 ** power:,.1f} {_UNITS[power]}"


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
