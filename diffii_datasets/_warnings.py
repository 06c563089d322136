"""Warnings that point at the user's line, however deep in this package they are raised.

A warning about what a call will do (its resolution, its run time) belongs to the line
that made the call: the user's ``prepare()``, constructor or ``ds[0]``, not to a line of
this package. :func:`warn_at_caller` finds that line by walking out of the package.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_at_caller"]

_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside this package."""
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 is the frame that called this function
    while frame is not None and _inside_package(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _inside_package(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_PACKAGE_DIR)
