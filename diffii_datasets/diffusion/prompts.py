"""Prompt assembly: the only place that joins concept tokens, metaclass and suffix.

The learning prompt and the plain generation prompt are ``"a photo of a <tokens>
<metaclass>"``; the suffixed prompt appends one context phrase. Suffixes are kept
normalised (no "a photo of a <metaclass>" prefix, no leading/trailing space, no
final period), and this module adds exactly one space and one final period.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["build_prompt", "check_prompt_length", "normalize_suffix"]

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


def check_prompt_length(tokenizer: Any, prompts: Iterable[str], max_length: int | None = None) -> list[int]:
    """Token counts of ``prompts``; raises ``ValueError`` when any exceeds the text encoder's context.

    The policy is to *error*, not to truncate: a clipped suffix silently changes
    what the first stage conditions on. Generation calls it once per class on the
    suffixed prompts, concept tokens expanded, before any denoising starts.
    ``max_length`` defaults to ``tokenizer.model_max_length`` (77 for CLIP),
    start and end tokens included.
    """
    if max_length is None:
        max_length = int(tokenizer.model_max_length)
        if max_length > 100_000:
            raise ValueError("tokenizer has no model_max_length; pass max_length (77 for CLIP)")
    counts, too_long = [], []
    for prompt in prompts:
        count = len(tokenizer(prompt, truncation=False)["input_ids"])
        counts.append(count)
        if count > max_length:
            too_long.append(f"{prompt!r} ({count} tokens)")
    if too_long:
        shown = "; ".join(too_long[:5]) + (f"; and {len(too_long) - 5} more" if len(too_long) > 5 else "")
        raise ValueError(f"{len(too_long)} suffixed prompt(s) exceed the text encoder's context of {max_length} "
                         f"tokens: {shown}. Shorten these suffixes (or use fewer concept tokens).")
    return counts
