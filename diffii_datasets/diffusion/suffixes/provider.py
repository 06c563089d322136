"""The interface every suffix provider implements, and the error of an unusable summary."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["SuffixParseError", "SuffixProvider"]


class SuffixProvider(abc.ABC):
    """Gives the context phrases of the first denoising stage for one dataset."""

    @abc.abstractmethod
    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        """Normalised suffixes (no prefix, no final period) for a dataset of ``metaclass`` images.

        ``images`` are all training images, any class (whatever
        :func:`~diffii_datasets.images.to_pil_rgb` accepts); list providers ignore
        ``images`` and ``cache_dir``.
        """

    @abc.abstractmethod
    def spec(self) -> str | list[str]:
        """A JSON-able description; ``suffix_provider(p.spec())`` behaves like ``p``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"


class SuffixParseError(ValueError):
    """A summariser's answer held no usable suffix; ``raw_answer`` keeps what it said."""

    def __init__(self, message: str, raw_answer: str) -> None:
        super().__init__(message)
        self.raw_answer = raw_answer
