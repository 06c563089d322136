"""Which summariser a ``summariser`` option names (the factory, as timm's ``create_reader``)."""

from __future__ import annotations

from typing import Any

from diffii_datasets import _checks
from diffii_datasets.diffusion.suffixes.extractive import ExtractiveSummariser
from diffii_datasets.diffusion.suffixes.local_llm import DEFAULT_SUMMARISER, LocalLLMSummariser
from diffii_datasets.diffusion.suffixes.openai_compatible import OpenAICompatibleSummariser
from diffii_datasets.diffusion.suffixes.summariser import Summariser

__all__ = ["summariser_from_spec"]

_EXPECTED = "'llm', 'llm:<model id or dir>', 'openai:<model>' or 'extractive'"


def summariser_from_spec(spec: str | Summariser, *, device: Any = None) -> Summariser:
    """``"llm"`` (:data:`DEFAULT_SUMMARISER`), ``"llm:<hub id or dir>"``, ``"openai:<model>"`` or ``"extractive"``."""
    if isinstance(spec, Summariser):
        return spec
    if not isinstance(spec, str):
        _checks.fail(TypeError, "summariser", f"a Summariser or one of {_EXPECTED}", spec)
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "llm":
        return LocalLLMSummariser(arg.strip() or DEFAULT_SUMMARISER, device=device)
    if kind == "openai" and arg.strip():
        return OpenAICompatibleSummariser(arg)
    if kind == "extractive" and not arg:
        return ExtractiveSummariser()
    _checks.fail(ValueError, "summariser", _EXPECTED, spec)
