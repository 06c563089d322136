"""Suffix providers for two-stage denoising: built-in lists, user lists, captioned.

Diff-II's first denoising stage uses ``"a photo of a <tokens> <metaclass> <suffix>."``
where the suffix is a context phrase ("standing on a tree branch") summarised from
captions of the training images (paper section 3.3). A provider returns such
phrases *normalised*: no ``"a photo of a <metaclass>"`` prefix, no surrounding
space, no final period; :func:`~diffii_datasets.diffusion.prompts.build_prompt`
adds the one space and the one period.

Three providers, selected with :func:`suffix_provider`:

* ``"builtin"`` / ``"builtin:<family>"``: the lists shipped in
  ``diffii_datasets/data/suffixes`` (bird, aircraft, car, animal, flower and a
  generic list for any other metaclass).
* a list of strings or ``"file:<path>"``: the user's own phrases.
* ``"captioned"`` / ``"captioned:<options>"``: caption every training image
  (BLIP by default), then summarise the captions into at most N phrases with a
  local instruction-tuned language model, an OpenAI-compatible endpoint or the
  LLM-free :class:`ExtractiveSummariser`. Captions and suffixes are cached as
  JSON under ``cache_dir``, keyed by the images' fingerprint and the model ids.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tqdm.auto import tqdm

from diffii_datasets.diffusion.prompts import normalize_suffix
from diffii_datasets.hashing import fingerprint, images_fingerprint
from diffii_datasets.images import to_pil_rgb

__all__ = [
    "API_BASE_ENV",
    "API_KEY_ENV",
    "BUILTIN_FAMILIES",
    "DEFAULT_CAPTIONER",
    "DEFAULT_SUMMARISER",
    "GENERIC_FAMILY",
    "BuiltinSuffixes",
    "CaptionedSuffixes",
    "Captioner",
    "ExtractiveSummariser",
    "LocalLLMSummariser",
    "OpenAICompatibleSummariser",
    "SuffixParseError",
    "SuffixProvider",
    "Summariser",
    "UserSuffixes",
    "builtin_suffixes",
    "check_prompt_length",
    "family_for_metaclass",
    "parse_suffixes",
    "read_suffix_file",
    "suffix_provider",
    "summariser_from_spec",
    "summarisation_prompt",
]

logger = logging.getLogger(__name__)

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-large"
# Apache-2.0, ungated, native in transformers (no remote code), small enough for one consumer GPU or a CPU.
DEFAULT_SUMMARISER = "Qwen/Qwen2.5-1.5B-Instruct"
# Environment variables of the OpenAI-compatible endpoint, first match wins. There is no default endpoint.
API_BASE_ENV = ("DIFFII_SUFFIX_API_BASE", "OPENAI_BASE_URL")
API_KEY_ENV = ("DIFFII_SUFFIX_API_KEY", "OPENAI_API_KEY")

MAX_BUILTIN_SUFFIXES = 10
GENERIC_FAMILY = "generic"
# Family -> words a metaclass may use for it (matched word by word, plural "s" allowed).
BUILTIN_FAMILIES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "bird": ("bird",),
    "aircraft": ("aircraft", "airplane", "aeroplane", "plane", "airliner", "jet"),
    "car": ("car", "automobile", "vehicle"),
    "animal": ("animal", "pet", "dog", "cat", "puppy", "kitten"),
    "flower": ("flower", "plant", "blossom"),
})

# Bump when the summarisation prompt or the parser changes, so cached suffixes are recomputed.
_SUMMARY_VERSION = 1


# --------------------------------------------------------------------------- interface

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


# --------------------------------------------------------------------------- lists

def family_for_metaclass(metaclass: str) -> str:
    """The built-in family whose aliases a word of ``metaclass`` matches, else :data:`GENERIC_FAMILY`."""
    words = re.findall(r"[a-z]+", metaclass.lower())
    for word in words:
        for family, aliases in BUILTIN_FAMILIES.items():
            if word in aliases or (word.endswith("s") and word[:-1] in aliases):
                return family
    return GENERIC_FAMILY


def _resolve_family(name: str) -> str:
    key = name.strip().lower()
    if key == GENERIC_FAMILY or key in BUILTIN_FAMILIES:
        return key
    for family, aliases in BUILTIN_FAMILIES.items():
        if key in aliases:
            return family
    known = ", ".join(sorted([*BUILTIN_FAMILIES, GENERIC_FAMILY]))
    raise ValueError(f"unknown built-in suffix family {name!r}; expected one of {known} "
                     f"or an alias ({', '.join(a for aliases in BUILTIN_FAMILIES.values() for a in aliases)})")


def _parse_suffix_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_suffix_file(path: str | os.PathLike) -> list[str]:
    """Suffixes in a UTF-8 text file, one per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"suffix file {str(path)!r} does not exist (expected a text file, one suffix per line)")
    entries = _parse_suffix_lines(path.read_text(encoding="utf-8"))
    if not entries:
        raise ValueError(f"suffix file {str(path)!r} holds no suffix (only blank lines or # comments)")
    return entries


def builtin_suffixes(family: str) -> list[str]:
    """The shipped list of a family (a name of :data:`BUILTIN_FAMILIES`, one of its aliases, or ``"generic"``)."""
    family = _resolve_family(family)
    text = resources.files("diffii_datasets").joinpath("data", "suffixes", f"{family}.txt").read_text("utf-8")
    return _parse_suffix_lines(text)


def _normalise_list(entries: Iterable[str], metaclass: str, source: str) -> list[str]:
    """Normalise each entry for ``metaclass``; empty entries are an error, duplicates are dropped with a warning."""
    result: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        suffix = _clean_suffix(entry, metaclass)
        if not suffix:
            raise ValueError(f"{source}: suffix {entry!r} is empty once the 'a photo of a {metaclass}' prefix, "
                             f"quotes and the final period are removed")
        if suffix.lower() in seen:
            logger.warning("%s: dropping duplicate suffix %r", source, entry)
            continue
        seen.add(suffix.lower())
        result.append(suffix)
    return result


class BuiltinSuffixes(SuffixProvider):
    """A list shipped with the package; ``family=None`` picks it from the metaclass (generic if none matches)."""

    def __init__(self, family: str | None = None) -> None:
        self.family = None if family is None else _resolve_family(family)

    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        family = self.family
        if family is None:
            family = family_for_metaclass(metaclass)
            if family == GENERIC_FAMILY:
                logger.info("metaclass %r matches no built-in suffix family (%s); using the generic list",
                            metaclass, ", ".join(BUILTIN_FAMILIES))
            else:
                logger.info("metaclass %r: using the built-in %r suffix list", metaclass, family)
        return _normalise_list(builtin_suffixes(family), metaclass, f"built-in list {family!r}")

    def spec(self) -> str:
        return "builtin" if self.family is None else f"builtin:{self.family}"


class UserSuffixes(SuffixProvider):
    """The user's own phrases: a list of strings, or the lines of a text file (see :func:`read_suffix_file`).

    A file is read once, here; :meth:`spec` is its content, so a cache keyed on the
    spec notices when the file is edited. ``path`` keeps where it came from.
    """

    def __init__(self, suffixes: Sequence[str]) -> None:
        if isinstance(suffixes, str) or not isinstance(suffixes, Sequence):
            raise TypeError(f"suffixes must be a list of strings, got {type(suffixes).__name__}")
        bad = [s for s in suffixes if not isinstance(s, str)]
        if bad:
            raise TypeError(f"suffixes must be a list of strings, got an item of type {type(bad[0]).__name__}")
        entries = [s.strip() for s in suffixes]
        if not entries:
            raise ValueError("suffixes must be a non-empty list of strings, got an empty list")
        empty = [s for s in suffixes if not s.strip()]
        if empty:
            raise ValueError(f"suffixes must not contain empty strings, got {empty[0]!r}")
        self.entries = entries
        self.path: Path | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> UserSuffixes:
        provider = cls(read_suffix_file(path))
        provider.path = Path(path).expanduser()
        return provider

    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        source = f"suffix file {str(self.path)!r}" if self.path is not None else "user suffix list"
        return _normalise_list(self.entries, metaclass, source)

    def spec(self) -> list[str]:
        return list(self.entries)


def check_prompt_length(tokenizer: Any, prompts: Iterable[str], max_length: int | None = None) -> list[int]:
    """Token counts of ``prompts``; raises ``ValueError`` when any exceeds the text encoder's context.

    The policy is to *error*, not to truncate: a clipped suffix silently changes
    what the first stage conditions on. Call it with the assembled suffixed
    prompts (the longest concept tokens included) before any denoising starts.
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


# --------------------------------------------------------------------------- parsing LLM answers

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,2}[.):\]]|\(?[a-jA-J][.)]|#\d+[.:)]?|suffix\s*\d*\s*:)\s*")
_JUNK_START = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here|note|notes|these|this is|i|i'm|i've|i'll|hope|let me|the following|"
    r"summary|in summary|to summarize|to summarise|as requested|output|answer|captions?)\b", re.IGNORECASE)
_PREFIX_ONLY = re.compile(r"^\s*(?:an?\s+)?(?:photo|picture|image)\s+of\b", re.IGNORECASE)


def _clean_suffix(text: str, metaclass: str) -> str:
    """Normalise one phrase for ``metaclass``.

    Besides what :func:`normalize_suffix` strips, this removes a prefix naming an
    alias of the metaclass's family or carrying up to three adjectives ("a photo
    of a small bird, perched ..."), markdown emphasis and dangling punctuation.
    """
    text = normalize_suffix(text.strip().strip("*_"))
    names = {metaclass.strip().lower(), *BUILTIN_FAMILIES.get(family_for_metaclass(metaclass), ())}
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
        suffix = _clean_suffix(line, metaclass)
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


# --------------------------------------------------------------------------- summarisers

def _unique_by_frequency(captions: Sequence[str]) -> list[str]:
    counts = Counter(c.strip().lower() for c in captions if c.strip())
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class Summariser(abc.ABC):
    """Turns captions into at most ``max_suffixes`` normalised suffixes."""

    @abc.abstractmethod
    def summarise(self, captions: Sequence[str], metaclass: str, max_suffixes: int) -> tuple[list[str], str]:
        """``(suffixes, raw answer)``; raises :class:`SuffixParseError` when the answer holds none."""

    @abc.abstractmethod
    def spec(self) -> str:
        """The ``summariser`` option that rebuilds this summariser (see :func:`summariser_from_spec`)."""


class _LanguageModelSummariser(Summariser):
    """Prompt with the most frequent unique captions, parse the answer."""

    def __init__(self, max_captions: int = 200) -> None:
        if max_captions < 1:
            raise ValueError(f"max_captions must be >= 1, got {max_captions}")
        self.max_captions = max_captions

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


def _default_device(device: Any) -> Any:
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _local_or_hub(model: str) -> str:
    """A model id as given, or the absolute path when it names a local directory (so cache keys are stable)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


class LocalLLMSummariser(_LanguageModelSummariser):
    """A local instruction-tuned causal LM (hub id or directory) through transformers, greedy decoding.

    Uses the tokenizer's chat template when it has one. The captions shown are the
    most frequent ``max_captions`` distinct ones, fewer if the prompt would not
    fit the model's context. The model is freed after the call.
    """

    def __init__(self, model: str = DEFAULT_SUMMARISER, *, device: Any = None, max_new_tokens: int = 256,
                 max_captions: int = 200) -> None:
        super().__init__(max_captions)
        self.model = _local_or_hub(model)
        self.device = device
        self.max_new_tokens = max_new_tokens

    def spec(self) -> str:
        return f"llm:{self.model}"

    def _encode(self, tokenizer: Any, prompt: str) -> Any:
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}]
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        return tokenizer(prompt, return_tensors="pt")

    def _answer(self, captions: list[str], metaclass: str, max_suffixes: int) -> str:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = _default_device(self.device)
        logger.info("summarising %d distinct captions with %s on %s", len(captions), self.model, device)
        tokenizer = AutoTokenizer.from_pretrained(self.model, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(self.model, trust_remote_code=False)
        dtype = torch.float32
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = model.to(device=device, dtype=dtype).eval()
        context = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        try:
            inputs = self._encode(tokenizer, summarisation_prompt(captions, metaclass, max_suffixes))
            while inputs["input_ids"].shape[1] + self.max_new_tokens > context and len(captions) > 1:
                captions = captions[: len(captions) // 2]
                inputs = self._encode(tokenizer, summarisation_prompt(captions, metaclass, max_suffixes))
                logger.info("prompt too long for %s's context of %d tokens; keeping %d captions",
                            self.model, context, len(captions))
            inputs = {k: v.to(device) for k, v in inputs.items()}
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            with torch.inference_mode():
                output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                        pad_token_id=pad)
            return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        finally:
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()


def _first_env(names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


class OpenAICompatibleSummariser(_LanguageModelSummariser):
    """A chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama ...) named by the environment.

    The base URL comes from ``DIFFII_SUFFIX_API_BASE`` (else ``OPENAI_BASE_URL``),
    e.g. ``https://api.openai.com/v1``; the key from ``DIFFII_SUFFIX_API_KEY``
    (else ``OPENAI_API_KEY``), optional for local servers. Neither is ever
    logged, stored in a cache or shown in an error. Standard library only.
    """

    def __init__(self, model: str, *, timeout: float = 120.0, max_captions: int = 200) -> None:
        super().__init__(max_captions)
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must name the endpoint's model, e.g. 'openai:gpt-4o-mini'")
        self.model = model.strip()
        self.timeout = timeout

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


# Words that open the context part of a caption, once the subject is stripped.
_PREPOSITIONS = frozenset(
    "on in with near next at under over above by against inside behind beside among through across along "
    "around atop underneath outside between into onto below beneath amid".split())
_PARTICIPLES = frozenset(
    "perched parked covered surrounded placed displayed seated submerged isolated lit shown hanging stopped "
    "taken stuck painted filled".split())
# Words ending in -ing that are not verbs in captions.
_ING_NOUNS = frozenset(
    "ceiling building wing king ring thing something nothing anything everything evening morning clothing spring "
    "string painting wedding bedding railing awning siding lightning during bring ping swing sling".split())
# "-ing" words that are nouns when followed by the given word.
_ING_COMPOUNDS = frozenset({("landing", "gear"), ("parking", "lot"), ("parking", "space"), ("parking", "garage"),
                            ("living", "room"), ("dining", "table"), ("dining", "room"), ("swimming", "pool"),
                            ("racing", "track"), ("walking", "path"), ("running", "track")})
_STOP = frozenset("a an the its his her their this that these those is are was be and or of to it while "
                  "there some".split())
# Words a phrase must not end with ("standing on the grass next to" -> "standing on the grass").
_DANGLING = frozenset("a an the and or of to that while is are its his her their some".split()) | _PREPOSITIONS
_RELATIONAL = frozenset("side front top middle edge bottom back corner end center centre part piece".split())
_LEAD_JUNK = re.compile(
    r"^(?:araf\w*\s+|(?:there|here)\s+(?:is|are)\s+|(?:this|it)\s+is\s+|"
    r"(?:an?\s+|the\s+)?(?:close\s*-?\s*up|closeup|blurry\s+\w+|black\s+and\s+white\s+\w+|(?:high|low)\s+angle\s+"
    r"\w+|photo|photograph|photography|picture|image|view|painting|drawing)\s+(?:view\s+)?of\s+)+")
_MAX_PHRASE_WORDS = 12


def _is_verb(tokens: list[str], i: int) -> bool:
    word = tokens[i]
    if word in _PARTICIPLES:
        return True
    if not word.endswith("ing") or len(word) <= 4 or word in _ING_NOUNS:
        return False
    return i + 1 >= len(tokens) or (word, tokens[i + 1]) not in _ING_COMPOUNDS


def _collapse_repeats(tokens: list[str]) -> list[str]:
    """'on a branch on a branch' -> 'on a branch' (captioners loop)."""
    changed = True
    while changed:
        changed = False
        for n in range(1, 5):
            for i in range(len(tokens) - 2 * n + 1):
                if tokens[i:i + n] == tokens[i + n:i + 2 * n]:
                    tokens = tokens[:i + n] + tokens[i + 2 * n:]
                    changed = True
                    break
            if changed:
                break
    return tokens


def _trim(tokens: list[str]) -> list[str]:
    while tokens and tokens[-1] in _DANGLING:
        tokens = tokens[:-1]
    return tokens


def _core(tokens: list[str]) -> list[str]:
    """The phrase up to its second clause: 'sitting on a branch of a tree' -> 'sitting on a branch'."""
    breaks = _PREPOSITIONS | {"of", "and", "while", "that", "as", "with"}
    for j in range(2, len(tokens)):
        if tokens[j] in breaks or _is_verb(tokens, j):
            between = tokens[1:j]
            if any(t not in _STOP and t not in _PREPOSITIONS and t not in _RELATIONAL for t in between):
                return _trim(tokens[:j])
    return tokens


class ExtractiveSummariser(Summariser):
    """LLM-free: the recurring context phrases of the captions themselves.

    Each caption loses captioner artefacts ("arafed", "there is", "a close up
    of"), then its subject: the phrase starts at the first verb ("sitting",
    "parked") or preposition after the subject ("with" only when no verb
    follows, since "a bird with a red head sitting ..." describes the bird).
    Each caption votes for its phrase and the phrase's first clause ("sitting on
    a branch" of "sitting on a branch of a tree"); phrases are ranked by votes
    (ties: longer, then alphabetical), those seen fewer than ``min_count`` times
    are dropped, and a phrase that repeats or contains a better-ranked one
    (articles ignored) is skipped.
    """

    def __init__(self, min_count: int = 2) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        self.min_count = min_count

    def spec(self) -> str:
        return "extractive"

    def phrase(self, caption: str, metaclass: str) -> list[str]:
        """The context words of one caption (empty when it has none)."""
        text = re.sub(r"[^a-z0-9' ]+", " ", caption.lower())
        text = _LEAD_JUNK.sub("", re.sub(r"\s+", " ", text).strip())
        tokens = _collapse_repeats(text.split())
        names = {metaclass.lower(), *BUILTIN_FAMILIES.get(family_for_metaclass(metaclass), ())}
        names |= {n + "s" for n in names}
        start = next((i + 1 for i, t in enumerate(tokens) if t in names), 0)
        for i in range(start, len(tokens)):
            if _is_verb(tokens, i):
                break
            if tokens[i] in _PREPOSITIONS:
                if tokens[i] == "with":
                    verb = next((j for j in range(i + 1, len(tokens)) if _is_verb(tokens, j)), None)
                    if verb is not None:
                        i = verb
                break
        else:
            return []
        phrase = _trim(tokens[i:])
        if not any(t not in _STOP and t not in _PREPOSITIONS for t in phrase):
            return []
        return phrase

    def summarise(self, captions: Sequence[str], metaclass: str, max_suffixes: int) -> tuple[list[str], str]:
        votes: Counter[str] = Counter()
        for caption in captions:
            phrase = self.phrase(caption, metaclass)
            if not phrase:
                continue
            candidates = {" ".join(_core(phrase))}
            if len(phrase) <= _MAX_PHRASE_WORDS:
                candidates.add(" ".join(phrase))
            votes.update(candidates)
        ranked = sorted(votes.items(), key=lambda kv: (-kv[1], -len(kv[0].split()), kv[0]))
        chosen: list[str] = []
        keys: list[str] = []
        for phrase, count in ranked:
            if count < self.min_count or len(chosen) == max_suffixes:
                break
            key = " " + " ".join(t for t in phrase.split() if t not in ("a", "an", "the")) + " "
            if any(key in k or k in key for k in keys):
                continue
            keys.append(key)
            chosen.append(phrase)
        report = "\n".join(f"{count}\t{phrase}" for phrase, count in ranked)
        if not chosen:
            raise SuffixParseError(
                f"no context phrase recurs at least {self.min_count} times in {len(captions)} captions of "
                f"{metaclass!r} images. Candidate phrases with their counts:\n{report[:2000] or '(none)'}\n"
                "Use a language-model summariser, or fall back to the built-in list with fallback_to_builtin=True.",
                report,
            )
        return chosen, report


def summariser_from_spec(spec: str | Summariser, *, device: Any = None) -> Summariser:
    """``"llm"`` (:data:`DEFAULT_SUMMARISER`), ``"llm:<hub id or dir>"``, ``"openai:<model>"`` or ``"extractive"``."""
    if isinstance(spec, Summariser):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"summariser must be a str or Summariser, got {type(spec).__name__}")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "llm":
        return LocalLLMSummariser(arg.strip() or DEFAULT_SUMMARISER, device=device)
    if kind == "openai" and arg.strip():
        return OpenAICompatibleSummariser(arg)
    if kind == "extractive" and not arg:
        return ExtractiveSummariser()
    raise ValueError(f"summariser must be 'llm', 'llm:<model id or dir>', 'openai:<model>' or 'extractive', "
                     f"got {spec!r}")


# --------------------------------------------------------------------------- captioning

class Captioner:
    """An image-captioning model (hub id or directory) through transformers' ``AutoModelForImageTextToText``.

    Greedy decoding, unconditional (no text prompt), batched, shown with tqdm;
    the model is freed after the call.
    """

    def __init__(self, model: str = DEFAULT_CAPTIONER, *, device: Any = None, batch_size: int = 16,
                 max_new_tokens: int = 40) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = _local_or_hub(model)
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def caption(self, images: Sequence[Any]) -> list[str]:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = _default_device(self.device)
        logger.info("captioning %d images with %s on %s", len(images), self.model, device)
        processor = AutoProcessor.from_pretrained(self.model, trust_remote_code=False)
        model = AutoModelForImageTextToText.from_pretrained(self.model, trust_remote_code=False)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        model = model.to(device=device, dtype=dtype).eval()
        captions: list[str] = []
        try:
            for start in tqdm(range(0, len(images), self.batch_size), desc="captioning", unit="batch"):
                batch = [to_pil_rgb(images[i], name=f"images[{i}]")
                         for i in range(start, min(start + self.batch_size, len(images)))]
                inputs = processor(images=batch, return_tensors="pt").to(device)
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                with torch.inference_mode():
                    output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
                captions += [c.strip() for c in processor.batch_decode(output, skip_special_tokens=True)]
        finally:
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        return captions


# --------------------------------------------------------------------------- captioned provider

def _write_json(path: Path, value: Any) -> None:
    """Write atomically: a reader sees the old file or the whole new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable cache file %s (%s); recomputing", path, error)
        return None


_CAPTIONED_OPTIONS = ("captioner", "summariser", "max_suffixes", "fallback_to_builtin")


class CaptionedSuffixes(SuffixProvider):
    """Caption every training image, summarise the captions into at most ``max_suffixes`` phrases.

    ``summariser`` is a :class:`Summariser` or a spec for :func:`summariser_from_spec`.
    With ``cache_dir``, captions go to ``captions-<key>.json`` (key: images'
    fingerprint, captioner id, decoding settings) and suffixes to
    ``suffixes-<key>.json`` (key: captions key, summariser spec, metaclass,
    ``max_suffixes``), so a second run neither captions nor summarises. When the
    summary holds no usable suffix, :class:`SuffixParseError` shows the raw
    answer; with ``fallback_to_builtin=True`` the built-in list for the
    metaclass is used instead (with a warning, and not cached).
    """

    def __init__(self, captioner: str | Captioner = DEFAULT_CAPTIONER, summariser: str | Summariser = "llm",
                 max_suffixes: int = MAX_BUILTIN_SUFFIXES, fallback_to_builtin: bool = False, *,
                 device: Any = None) -> None:
        if isinstance(max_suffixes, bool) or not isinstance(max_suffixes, int) or max_suffixes < 1:
            raise ValueError(f"max_suffixes must be a positive int, got {max_suffixes!r}")
        if not isinstance(fallback_to_builtin, bool):
            raise TypeError(f"fallback_to_builtin must be a bool, got {type(fallback_to_builtin).__name__}")
        if isinstance(captioner, str):
            captioner = Captioner(captioner, device=device)
        elif not isinstance(captioner, Captioner):
            raise TypeError(f"captioner must be a model id, a directory or a Captioner, got {type(captioner).__name__}")
        self.captioner = captioner
        self.summariser = summariser_from_spec(summariser, device=device)
        self.max_suffixes = max_suffixes
        self.fallback_to_builtin = fallback_to_builtin

    def spec(self) -> str:
        options = {"captioner": self.captioner.model, "summariser": self.summariser.spec(),
                   "max_suffixes": self.max_suffixes, "fallback_to_builtin": self.fallback_to_builtin}
        return "captioned:" + json.dumps(options, sort_keys=True, separators=(",", ":"))

    def captions(self, images: Sequence[Any], cache_dir: str | os.PathLike | None = None) -> list[str]:
        """One caption per image, from the cache when it has them."""
        _check_images(images)
        return self._captions(images, self._captions_identity(images_fingerprint(images)), cache_dir)

    def _captions_identity(self, images_key: str) -> dict[str, Any]:
        return {"images": images_key, "captioner": self.captioner.model,
                "max_new_tokens": self.captioner.max_new_tokens, "decoding": "greedy"}

    def _captions(self, images: Sequence[Any], identity: dict[str, Any],
                  cache_dir: str | os.PathLike | None) -> list[str]:
        path = Path(cache_dir) / f"captions-{fingerprint(identity)}.json" if cache_dir is not None else None
        cached = _read_json(path) if path is not None else None
        if cached is not None and len(cached.get("captions", ())) == len(images):
            logger.info("using %d cached captions from %s", len(images), path)
            return list(cached["captions"])
        captions = self.captioner.caption(images)
        if path is not None:
            _write_json(path, {**identity, "captions": captions})
        return captions

    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        if not isinstance(metaclass, str) or not metaclass.strip():
            raise ValueError(f"metaclass must be a non-empty string, got {metaclass!r}")
        _check_images(images)
        captions_identity = self._captions_identity(images_fingerprint(images))
        identity = {"captions": fingerprint(captions_identity), "summariser": self.summariser.spec(),
                    "metaclass": metaclass, "max_suffixes": self.max_suffixes, "version": _SUMMARY_VERSION}
        path = Path(cache_dir) / f"suffixes-{fingerprint(identity)}.json" if cache_dir is not None else None
        cached = _read_json(path) if path is not None else None
        if cached is not None and cached.get("suffixes"):
            logger.info("using %d cached suffixes from %s", len(cached["suffixes"]), path)
            return list(cached["suffixes"])
        captions = self._captions(images, captions_identity, cache_dir)
        try:
            suffixes, raw = self.summariser.summarise(captions, metaclass, self.max_suffixes)
        except SuffixParseError as error:
            if not self.fallback_to_builtin:
                raise
            logger.warning("%s\nFalling back to the built-in suffix list (fallback_to_builtin=True).", error)
            return BuiltinSuffixes().suffixes(images, metaclass)
        suffixes = _normalise_list(suffixes, metaclass, f"summariser {self.summariser.spec()!r}")
        logger.info("suffixes for %r: %s", metaclass, suffixes)
        if path is not None:
            _write_json(path, {**identity, "suffixes": suffixes, "raw_answer": raw})
        return suffixes


def _check_images(images: Sequence[Any]) -> None:
    if not isinstance(images, Sequence) and not hasattr(images, "__getitem__"):
        raise TypeError(f"images must be a sequence of images, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError("images must hold at least one training image to caption, got none")


# --------------------------------------------------------------------------- specs

_VALID_SPECS = ("'builtin', 'builtin:<family>' (family: " + ", ".join([*BUILTIN_FAMILIES, GENERIC_FAMILY])
                + " or an alias), 'file:<path>', a list of strings, 'captioned', "
                  "'captioned:<JSON object>' or 'captioned:key=value,...' (keys: " + ", ".join(_CAPTIONED_OPTIONS)
                + "), or a SuffixProvider")


def _captioned_options(text: str) -> dict[str, Any]:
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
        options = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"captioned options must be key=value pairs separated by commas, got {item!r}")
            options[key.strip()] = value.strip()
        if "max_suffixes" in options:
            if not options["max_suffixes"].isdigit():
                raise ValueError(f"max_suffixes must be a positive int, got {options['max_suffixes']!r}")
            options["max_suffixes"] = int(options["max_suffixes"])
        if "fallback_to_builtin" in options:
            value = options["fallback_to_builtin"].lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"fallback_to_builtin must be true or false, got {options['fallback_to_builtin']!r}")
            options["fallback_to_builtin"] = value in ("true", "1", "yes")
    if "summarizer" in options:
        options["summariser"] = options.pop("summarizer")
    unknown = sorted(set(options) - set(_CAPTIONED_OPTIONS))
    if unknown:
        raise ValueError(f"unknown captioned option(s) {unknown}; expected some of {list(_CAPTIONED_OPTIONS)}")
    return options


def suffix_provider(spec: str | Sequence[str] | SuffixProvider) -> SuffixProvider:
    """Build a provider from a spec (see the module docstring); ``p.spec()`` round-trips."""
    if isinstance(spec, SuffixProvider):
        return spec
    if isinstance(spec, (list, tuple)):
        return UserSuffixes(spec)
    if not isinstance(spec, str):
        raise TypeError(f"suffixes must be a spec string, a list of strings or a SuffixProvider, "
                        f"got {type(spec).__name__}; valid forms: {_VALID_SPECS}")
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "builtin":
        return BuiltinSuffixes(arg if sep and arg.strip() else None)
    if kind == "file" and arg.strip():
        return UserSuffixes.from_file(arg.strip())
    if kind == "captioned":
        return CaptionedSuffixes(**_captioned_options(arg))
    raise ValueError(f"unknown suffix spec {spec!r}; valid forms: {_VALID_SPECS}")
