"""Summarising captions through an OpenAI-compatible chat-completions endpoint, with the standard library only."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

from diffii_datasets import _checks
from diffii_datasets.diffusion.suffixes.parsing import summarisation_prompt
from diffii_datasets.diffusion.suffixes.summariser import LanguageModelSummariser

__all__ = ["API_BASE_ENV", "API_KEY_ENV", "OpenAICompatibleSummariser"]

logger = logging.getLogger(__name__)

# Environment variables of the OpenAI-compatible endpoint, first match wins. There is no default endpoint.
API_BASE_ENV = ("DIFFII_SUFFIX_API_BASE", "OPENAI_BASE_URL")
API_KEY_ENV = ("DIFFII_SUFFIX_API_KEY", "OPENAI_API_KEY")


def _first_env(names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


class OpenAICompatibleSummariser(LanguageModelSummariser):
    """A chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama ...) named by the environment.

    The base URL comes from ``DIFFII_SUFFIX_API_BASE`` (else ``OPENAI_BASE_URL``),
    e.g. ``https://api.openai.com/v1``; the key from ``DIFFII_SUFFIX_API_KEY``
    (else ``OPENAI_API_KEY``), optional for local servers. Neither is ever
    logged, stored in a cache or shown in an error. Standard library only.
    """

    def __init__(self, model: str, *, timeout: float = 120.0, max_captions: int = 200) -> None:
        super().__init__(max_captions)
        self.model = _checks.check_str(model, "model", expected="the endpoint's model name, e.g. 'gpt-4o-mini'").strip()
        self.timeout = _checks.check_number(timeout, "timeout", above=0)

    def spec(self) -> str:
        return f"openai:{self.model}"

    def _answer(self, captions: list[str], metaclass: str, max_suffixes: int) -> str:
        base = _first_env(API_BASE_ENV)
        if base is None:
            raise ValueError(f"the 'openai:{self.model}' summariser needs an endpoint: set {API_BASE_ENV[0]} "
                             f"(or {API_BASE_ENV[1]}) to its base URL, e.g. https://api.openai.com/v1, and "
                             f"{API_KEY_ENV[0]} (or {API_KEY_ENV[1]}) to its key; there is no default endpoint")
        key = _first_env(API_KEY_ENV)
        logger.info("summarising %d distinct captions with model %r at the endpoint in $%s",
                    len(captions), self.model, base[0])
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": summarisation_prompt(captions, metaclass, max_suffixes)}],
            "temperature": 0,
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key[1]}"
        request = urllib.request.Request(base[1].rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (user's endpoint)
                payload = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")[:500]
            raise RuntimeError(f"the endpoint in ${base[0]} answered HTTP {error.code} for model {self.model!r}: "
                               f"{detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RuntimeError(f"could not reach the endpoint in ${base[0]}: {reason}") from None
        try:
            return json.loads(payload)["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise RuntimeError(f"the endpoint in ${base[0]} gave no chat completion; it answered: "
                               f"{payload[:500]}") from None
