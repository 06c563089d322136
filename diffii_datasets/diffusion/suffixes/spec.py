"""From a spec (a string, a list of phrases or a provider) to a :class:`SuffixProvider`.

Building a provider loads no model and imports neither torch nor transformers, so
a config can check its ``suffixes`` knob cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from diffii_datasets import _checks
from diffii_datasets.diffusion.suffixes.captioned import CAPTIONED_OPTIONS, CaptionedSuffixes
from diffii_datasets.diffusion.suffixes.builtin_lists import BUILTIN_LISTS, GENERIC_LIST
from diffii_datasets.diffusion.suffixes.lists import BuiltinSuffixes, UserSuffixes
from diffii_datasets.diffusion.suffixes.provider import SuffixProvider

__all__ = ["suffix_provider"]

_VALID_SPECS = ("'builtin', 'builtin:<list>' (list: " + ", ".join([*BUILTIN_LISTS, GENERIC_LIST])
                + " or an alias), 'file:<path>', a list of strings, 'captioned', "
                  "'captioned:<JSON object>' or 'captioned:key=value,...' (keys: " + ", ".join(CAPTIONED_OPTIONS)
                + "), or a SuffixProvider")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def suffix_provider(spec: str | Sequence[str] | SuffixProvider) -> SuffixProvider:
    """Build a provider from a spec; ``p.spec()`` round-trips.

    * ``"builtin"`` / ``"builtin:<list>"``: a shipped list (:class:`BuiltinSuffixes`);
    * a list or tuple of strings, or ``"file:<path>"``: the user's phrases (:class:`UserSuffixes`);
    * ``"captioned"``, ``"captioned:<JSON object>"`` or ``"captioned:key=value,..."``
      (keys: ``captioner``, ``summariser``, ``max_suffixes``, ``fallback_to_builtin``):
      :class:`CaptionedSuffixes`.
    """
    if isinstance(spec, SuffixProvider):
        return spec
    if isinstance(spec, (list, tuple)):
        return UserSuffixes(spec)
    if not isinstance(spec, str):
        _checks.fail(TypeError, "suffixes",
                     f"a spec string, a list of strings or a SuffixProvider (valid forms: {_VALID_SPECS})", spec)
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "builtin":
        return BuiltinSuffixes(arg if sep and arg.strip() else None)
    if kind == "file" and arg.strip():
        return UserSuffixes.from_file(arg.strip())
    if kind == "captioned":
        return CaptionedSuffixes(**_captioned_options(arg))
    raise ValueError(f"unknown suffix spec {spec!r}; valid forms: {_VALID_SPECS}")


def _captioned_options(text: str) -> dict[str, Any]:
    """The keyword arguments of a ``captioned:`` spec's options (JSON object or ``key=value,...``)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            options = json.loads(text)
        except ValueError as error:
            raise ValueError(f"captioned options {text!r} are not valid JSON: {error}") from None
        if not isinstance(options, dict):
            raise ValueError(f"captioned options must be a JSON object, got {text!r}")
    else:
        options = _key_value_options(text)
    if "summarizer" in options:
        options["summariser"] = options.pop("summarizer")
    unknown = sorted(set(options) - set(CAPTIONED_OPTIONS))
    if unknown:
        raise ValueError(f"unknown captioned option(s) {unknown}; expected some of {list(CAPTIONED_OPTIONS)}")
    return options


def _key_value_options(text: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"captioned options must be key=value pairs separated by commas, got {item!r}")
        options[key.strip()] = value.strip()
    if "max_suffixes" in options:
        if not options["max_suffixes"].isdigit():
            _checks.fail(ValueError, "max_suffixes", "a positive int", options["max_suffixes"])
        options["max_suffixes"] = int(options["max_suffixes"])
    if "fallback_to_builtin" in options:
        value = options["fallback_to_builtin"].lower()
        if value not in _TRUE + _FALSE:
            _checks.fail(ValueError, "fallback_to_builtin", "true or false", options["fallback_to_builtin"])
        options["fallback_to_builtin"] = value in _TRUE
    return options
