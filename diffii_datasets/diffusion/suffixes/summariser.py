"""What a summariser is (captions in, suffixes out), and the shared part of those that ask a language model."""

from __future__ import annotations

import abc
import logging
from collections import Counter
from collections.abc import Sequence

from diffii_datasets import _checks
from diffii_datasets.diffusion.suffixes.parsing import parse_suffixes
from diffii_datasets.diffusion.suffixes.provider import SuffixParseError

__all__ = ["LanguageModelSummariser", "Summariser"]

logger = logging.getLogger(__name__)


class Summariser(abc.ABC):
    """Turns captions into at most ``max_suffixes`` normalised suffixes."""

    @abc.abstractmethod
    def summarise(self, captions: Sequence[str], metaclass: str, max_suffixes: int) -> tuple[list[str], str]:
        """``(suffixes, raw answer)``; raises :class:`SuffixParseError` when the answer holds none."""

    @abc.abstractmethod
    def spec(self) -> str:
        """The ``summariser`` option that rebuilds this summariser (see :func:`summariser_from_spec`)."""


def _unique_by_frequency(captions: Sequence[str]) -> list[str]:
    counts = Counter(c.strip().lower() for c in captions if c.strip())
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class LanguageModelSummariser(Summariser):
    """Prompt with the most frequent unique captions, parse the answer; subclasses say how the model answers."""

    def __init__(self, max_captions: int = 200) -> None:
        self.max_captions = _checks.check_int(max_captions, "max_captions", minimum=1)

    def summarise(self, captions: Sequence[str], metaclass: str, max_suffixes: int) -> tuple[list[str], str]:
        unique = _unique_by_frequency(captions)
        if not unique:
            raise SuffixParseError("every caption is empty, so there is nothing to summarise. Use another captioner, "
                                   "or fall back to the built-in list with fallback_to_builtin=True.", "")
        if len(unique) > self.max_captions:
            logger.info("summarising the %d most frequent of %d distinct captions", self.max_captions, len(unique))
            unique = unique[: self.max_captions]
        answer = self._answer(unique, metaclass, max_suffixes)
        return parse_suffixes(answer, metaclass, max_suffixes), answer

    @abc.abstractmethod
    def _answer(self, captions: list[str], metaclass: str, max_suffixes: int) -> str:
        """The model's raw text answer."""
