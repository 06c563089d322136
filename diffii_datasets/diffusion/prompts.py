"""Prompt assembly: the only place that joins concept tokens, metaclass and suffix.

The learning prompt and the plain generation prompt are ``"a photo of a <tokens>
<metaclass>"``; the suffixed prompt appends one context phrase. Suffixes are kept
normalised (no "a photo of a <metaclass>" prefix, no leading/trailing space, no
final period), and this module adds exactly one space and one final period.
"""

from __future__ import annotations

import re

__all__ = ["build_prompt", "normalize_suffix"]

_PREFIX = re.compile(r"^\s*(?:an?\s+)?(?:photo|picture|image)\s+of\s+(?:an?\s+|the\s+)?", re.IGNORECASE)


def normalize_suffix(suffix: str, metaclass: str | None = None) -> str:
    """Strip quotes, whitespace, a final period and an optional ``a photo of a <metaclass>`` prefix.

    >>> normalize_suffix(' "A photo of a bird perched on a branch." ', "bird")
    'perched on a branch'
    """
    if not isinstance(suffix, str):
        raise TypeError(f"suffix must be a str, got {type(suffix).__name__}")
    text = re.sub(r"\s+", " ", suffix).strip().strip("\"'“”‘’`").strip()
    match = _PREFIX.match(text)
    if match and metaclass:
        rest = text[match.end():]
        if rest.lower().startswith(metaclass.lower()):
            text = rest[len(metaclass):]
    return text.strip().rstrip(".").strip()


def build_prompt(tokens: str, metaclass: str, suffix: str | None = None) -> str:
    """``"a photo of a <tokens> <metaclass>"``, plus ``" <suffix>."`` when a suffix is given."""
    parts = ["a photo of a", tokens.strip(), metaclass.strip()]
    prompt = " ".join(part for part in parts if part)
    if suffix is None:
        return prompt
    suffix = normalize_suffix(suffix, metaclass)
    if not suffix:
        raise ValueError("suffix must contain text besides the 'a photo of a <metaclass>' prefix")
    return f"{prompt} {suffix}."
