"""From free text to normalised suffixes: one phrase, a language model's answer, and the prompt that asks for them."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from diffii_datasets.diffusion.prompts import normalize_suffix
from diffii_datasets.diffusion.suffixes.builtin_lists import BUILTIN_LISTS, list_for_metaclass
from diffii_datasets.diffusion.suffixes.provider import SuffixParseError

__all__ = ["clean_suffix", "parse_suffixes", "summarisation_prompt"]

logger = logging.getLogger(__name__)

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,2}[.):\]]|\(?[a-jA-J][.)]|#\d+[.:)]?|suffix\s*\d*\s*:)\s*")
_JUNK_START = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here|note|notes|these|this is|i|i'm|i've|i'll|hope|let me|the following|"
    r"summary|in summary|to summarize|to summarise|as requested|output|answer|captions?)\b", re.IGNORECASE)
_PREFIX_ONLY = re.compile(r"^\s*(?:an?\s+)?(?:photo|picture|image)\s+of\b", re.IGNORECASE)


def clean_suffix(text: str, metaclass: str) -> str:
    """Normalise one phrase for ``metaclass``.

    Besides what :func:`normalize_suffix` strips, this removes a prefix naming an
    alias of the metaclass's built-in list or carrying up to three adjectives ("a photo
    of a small bird, perched ..."), markdown emphasis and dangling punctuation.
    """
    text = normalize_suffix(text.strip().strip("*_"))
    names = {metaclass.strip().lower(), *BUILTIN_LISTS.get(list_for_metaclass(metaclass), ())}
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True) if n)
    pattern = rf"{_PREFIX_ONLY.pattern}\s+(?:an?\s+|the\s+)?(?:[\w'-]+\s+){{0,3}}?(?:{alternatives})(?:e?s)?\b"
    prefix = re.match(pattern, text, re.IGNORECASE)
    if prefix:
        text = text[prefix.end():]
    return normalize_suffix(text.lstrip(" ,;:-–—").rstrip(" ,;:!").strip("*_"))


def parse_suffixes(answer: str, metaclass: str, max_suffixes: int | None = None, *,
                   max_words: int = 20, max_chars: int = 150) -> list[str]:
    """Usable suffixes in a language model's answer, in order, at most ``max_suffixes``.

    Accepts one suffix per line with or without bullets, numbering, quotes,
    markdown emphasis and the ``"a photo of a <metaclass>"`` prefix. When some
    lines carry the prefix (the form asked for), lines without it are taken as
    chatter and ignored. Rejects empty lines, preambles ("Here are ...:"), lines
    over ``max_words`` words or ``max_chars`` characters and duplicates. Raises
    :class:`SuffixParseError`, with the raw answer, when nothing is usable.
    """
    answer = answer or ""
    text = _THINK.sub("", answer)
    candidates: list[tuple[bool, str, str]] = []  # (had prefix, line, suffix)
    for raw_line in text.splitlines():
        line = _BULLET.sub("", raw_line.strip()).strip().strip("*_").strip()
        if not line or line.endswith(":") or line.startswith("```") or _JUNK_START.match(line.strip("\"'“”‘’`")):
            continue
        suffix = clean_suffix(line, metaclass)
        has_prefix = _PREFIX_ONLY.match(line.strip("\"'“”‘’`")) is not None
        if has_prefix and _PREFIX_ONLY.match(suffix):
            logger.debug("rejecting %r: its prefix names no %r", raw_line, metaclass)
            continue
        candidates.append((has_prefix, raw_line, suffix))
    if any(has_prefix for has_prefix, _, _ in candidates):
        candidates = [c for c in candidates if c[0]]
    result: list[str] = []
    seen: set[str] = set()
    for _, raw_line, suffix in candidates:
        key = re.sub(r"[^a-z0-9]+", " ", suffix.lower()).strip()
        if not key:
            reason = "empty"
        elif len(suffix.split()) > max_words or len(suffix) > max_chars:
            reason = f"longer than {max_words} words or {max_chars} characters"
        elif key in seen:
            reason = "duplicate"
        else:
            seen.add(key)
            result.append(suffix)
            continue
        logger.debug("rejecting summariser line %r: %s", raw_line, reason)
    if max_suffixes is not None:
        result = result[:max_suffixes]
    if not result:
        shown = answer if len(answer) <= 2000 else answer[:2000] + " [...]"
        raise SuffixParseError(
            f"the summariser's answer holds no usable suffix for metaclass {metaclass!r} (expected lines like "
            f"'a photo of a {metaclass} <context>.'). Raw answer:\n{shown}\n"
            "Use another summariser, or fall back to the built-in list with fallback_to_builtin=True.",
            answer,
        )
    return result


def summarisation_prompt(captions: Sequence[str], metaclass: str, max_suffixes: int) -> str:
    """The instruction sent to a language model: captions in, paper-style ``a photo of a ...`` lines out."""
    lines = "\n".join(f"- {c}" for c in captions)
    return (
        f"Below are captions of photos that each show a {metaclass}, one per line, the most frequent first.\n\n"
        f"{lines}\n\n"
        f"Summarise the recurring context of these photos (the scene, background, pose or action) into at most "
        f"{max_suffixes} distinct short descriptions, each of the form \"a photo of a {metaclass} <context>.\"\n"
        f"Describe only the context, never the {metaclass}'s species, breed, model, colour or appearance.\n"
        f"Answer with the descriptions only, one per line, with no numbering and no other text."
    )
