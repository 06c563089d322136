"""Reading the released text files: the image lists and the suffix lists, as Diff-II's scripts read them.

- image lists (``train.txt``, ``test.txt``, ``test_imb.txt``): one ``<path> <label>`` per line
  (``train_classifier.py`` lines 36-40: ``line.strip().split()``), the path ending in
  ``<category>/<file>``; the category is ``path.split('/')[-2]`` (line 92), the authors' class name.
  The integer label is not used here: classes are matched by name (:mod:`.names`).
- suffix lists: one suffix a line, used as ``' ' + line`` without its newline
  (``interpolation_le.py`` lines 176-180: ``' ' + each[:-1]``, which would also cut the last
  character of a last line without newline; here only the newline goes).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from diffii_datasets._io import FileFormatError

__all__ = ["ListedImage", "read_image_list", "read_suffix_lines"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListedImage:
    """One line of a released image list."""

    path: str  # as listed, e.g. datasets/cub/5shot/train/Vesper_Sparrow/Vesper_Sparrow_0001_1.jpg
    category: str  # the authors' class name: the path's folder
    file: str  # the path's file name
    line: int


def read_image_list(path: Path) -> list[ListedImage]:
    """The images a released list names; ``FileFormatError`` naming the file and line for a malformed line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise FileFormatError(path, f"is not UTF-8 text ({error})") from None
    images = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not re.fullmatch(r"-?\d+", fields[1]):
            raise FileFormatError(path, f"line {number}: expected '<path> <integer label>', got {line!r}")
        parts = fields[0].replace("\\", "/").split("/")
        if len(parts) < 2 or not parts[-1] or not parts[-2]:
            raise FileFormatError(path, f"line {number}: the path must end in <category>/<file>, got {fields[0]!r}")
        images.append(ListedImage(fields[0], parts[-2], parts[-1], number))
    if not images:
        raise FileFormatError(path, "lists no image")
    return images


def read_suffix_lines(path: Path, metaclass: str) -> list[str]:
    """The released suffixes, each line without its newline; blank lines skipped (see the module docstring).

    They become :class:`~diffii_datasets.diffusion.suffixes.UserSuffixes`, normalised like every
    suffix: the prompt gets exactly one space before and one period after the phrase. A line
    that starts with ``a photo of a <metaclass>`` loses that repetition here but not in the
    authors' prompts; such lines are counted in a warning.
    """
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as error:
        raise FileFormatError(path, f"is not UTF-8 text ({error})") from None
    if not lines:
        raise FileFormatError(path, "holds no suffix")
    prefixed = [line for line in lines if re.match(r"\s*[\"'“‘]?an?\s+(photo|picture|image)\s+of\b", line, re.I)]
    if prefixed:
        logger.warning("%s: %d of %d suffixes start with 'a photo of a %s', which the prompts here do not repeat "
                       "(the authors' prompts do): e.g. %r", path, len(prefixed), len(lines), metaclass, prefixed[0])
    return lines
