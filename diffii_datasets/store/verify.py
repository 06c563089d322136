"""Whether a committed class is whole: its files against their record, its images as their format writes them.

:meth:`SyntheticStore.verify <diffii_datasets.store.store.SyntheticStore.verify>` and the
whole-store check (:func:`~diffii_datasets.store.upkeep.store_problems`) read classes
through :func:`class_problems`; reading one image checks it with :func:`image_problem`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from diffii_datasets._io import sha256_bytes
from diffii_datasets.store.checks import StoreDamageError, StoreProblem
from diffii_datasets.store.layout import CLASS_RECORD, CLASSES_DIR, class_dir_name

if TYPE_CHECKING:
    from diffii_datasets.store.store import SyntheticStore

__all__ = ["IMAGE_ENDS", "PIL_FORMATS", "class_problems", "image_problem"]

PIL_FORMATS = {".png": ("PNG",), ".jpg": ("JPEG",)}  # an image file's ending: the only format it is decoded as
IMAGE_ENDS = {".png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"), ".jpg": (b"\xff\xd8\xff", b"\xff\xd9")}
"""How a whole PNG (signature, IEND chunk) and a whole JPEG (SOI, EOI marker) start and end, as PIL writes them."""


def image_problem(data: bytes, ending: str, decode: bool) -> str | None:
    """Why the bytes of an image file (``.png``, ``.jpg``) would not read as an image, ``None`` when they would.

    Without ``decode`` only what is cheap to see next to a checksum: a file of another kind,
    cut short, or whose header PIL cannot parse; with it, the pixels are decoded too.
    """
    start, end = IMAGE_ENDS[ending]
    if not data.startswith(start):
        return f"it is not a {PIL_FORMATS[ending][0]} file" if data else "it is empty"
    if not data.endswith(end):
        return "it is cut short (its last bytes are not the format's end)"
    try:
        with Image.open(io.BytesIO(data), formats=PIL_FORMATS[ending]) as image:
            if decode:
                image.load()
    except (OSError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        return str(error) or type(error).__name__
    return None


def class_problems(store: SyntheticStore, class_index: int, *, checksums: bool, decode: bool) -> list[StoreProblem]:
    """What is wrong with committed class ``class_index`` of ``store``; see :meth:`SyntheticStore.verify`."""
    try:
        record = store.class_record(class_index)
    except StoreDamageError as error:
        return [error.store_problem]
    problems = []
    for relative, expected in record["files"].items():
        reason = _file_reason(store, class_index, relative, expected, checksums, decode)
        if reason is not None:
            problems.append(StoreProblem(class_index, relative, reason))
    if checksums and not problems:
        try:
            store.records(class_index)
        except StoreDamageError as error:
            problems.append(error.store_problem)
    listed = set(record["files"]) | {CLASS_RECORD}
    directory = store.class_dir(class_index)
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative not in listed and not (path.is_dir() and relative in ("images", "real")):
            problems.append(StoreProblem(class_index, relative, "a stray file (class.json does not list it)"))
    return problems


def _file_reason(store: SyntheticStore, class_index: int, relative: str, expected: str, checksums: bool,
                 decode: bool) -> str | None:
    """What is wrong with a file of a committed class (``None``: nothing)."""
    path = store.class_dir(class_index) / relative
    if not path.is_file():
        return "missing"
    image = path.suffix in PIL_FORMATS
    if not (checksums or (decode and image)):
        return None
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    if checksums and sha256_bytes(data) != expected:
        return "checksum mismatch"
    if not image:
        return None
    problem = image_problem(data, path.suffix, decode=False)
    if problem is not None:  # prepare() sees this too, and generates the class again
        return f"not a readable image ({problem})"
    problem = image_problem(data, path.suffix, decode=True) if decode else None
    if problem is not None:  # only a decode sees it: the file is whole and matches its checksums
        return (f"not a readable image ({problem}), though whole and matching its checksums; delete "
                f"{CLASSES_DIR}/{class_dir_name(class_index)} and prepare() generates the class again")
    return None
