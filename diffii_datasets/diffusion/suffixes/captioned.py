"""The captioned provider: caption the training images, summarise the captions, cache both as JSON."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._io import FileFormatError, fingerprint, read_json, write_json
from diffii_datasets.diffusion.suffixes.captioning import DEFAULT_CAPTIONER, Captioner
from diffii_datasets.diffusion.suffixes.lists import MAX_BUILTIN_SUFFIXES, BuiltinSuffixes, normalise_list
from diffii_datasets.diffusion.suffixes.provider import SuffixParseError, SuffixProvider
from diffii_datasets.diffusion.suffixes.summariser import Summariser
from diffii_datasets.diffusion.suffixes.summariser_spec import summariser_from_spec
from diffii_datasets.hashing import images_fingerprint

__all__ = ["CAPTIONED_OPTIONS", "CaptionedSuffixes"]

logger = logging.getLogger(__name__)

CAPTIONED_OPTIONS = ("captioner", "summariser", "max_suffixes", "fallback_to_builtin")
"""The keyword arguments of :class:`CaptionedSuffixes` a ``captioned:`` spec may set."""

# Bump when the summarisation prompt or the parser changes, so cached suffixes are recomputed.
_SUMMARY_VERSION = 1


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
        self.max_suffixes = _checks.check_int(max_suffixes, "max_suffixes", minimum=1)
        self.fallback_to_builtin = _checks.check_bool(fallback_to_builtin, "fallback_to_builtin")
        if isinstance(captioner, str):
            captioner = Captioner(captioner, device=device)
        elif not isinstance(captioner, Captioner):
            _checks.fail(TypeError, "captioner", "a model id, a directory or a Captioner", captioner)
        self.captioner = captioner
        self.summariser = summariser_from_spec(summariser, device=device)

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
        cached = _read_cache(path)
        if cached is not None and len(cached.get("captions", ())) == len(images):
            logger.info("using %d cached captions from %s", len(images), path)
            return list(cached["captions"])
        captions = self.captioner.caption(images)
        _write_cache(path, {**identity, "captions": captions})
        return captions

    def suffixes(self, images: Sequence[Any], metaclass: str,
                 cache_dir: str | os.PathLike | None = None) -> list[str]:
        _checks.check_str(metaclass, "metaclass")
        _check_images(images)
        captions_identity = self._captions_identity(images_fingerprint(images))
        identity = {"captions": fingerprint(captions_identity), "summariser": self.summariser.spec(),
                    "metaclass": metaclass, "max_suffixes": self.max_suffixes, "version": _SUMMARY_VERSION}
        path = Path(cache_dir) / f"suffixes-{fingerprint(identity)}.json" if cache_dir is not None else None
        cached = _read_cache(path)
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
        suffixes = normalise_list(suffixes, metaclass, f"summariser {self.summariser.spec()!r}")
        logger.info("suffixes for %r: %s", metaclass, suffixes)
        _write_cache(path, {**identity, "suffixes": suffixes, "raw_answer": raw})
        return suffixes


def _read_cache(path: Path | None) -> dict[str, Any] | None:
    """A cache file's object; None when there is no cache, no file, or a file that cannot be read (a warning)."""
    if path is None:
        return None
    try:
        return read_json(path, missing_ok=True)
    except (FileFormatError, OSError) as error:
        logger.warning("ignoring unreadable cache file %s (%s); recomputing", path, getattr(error, "problem", error))
        return None


def _write_cache(path: Path | None, value: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, value)


def _check_images(images: Sequence[Any]) -> None:
    if not isinstance(images, Sequence) and not hasattr(images, "__getitem__"):
        _checks.fail(TypeError, "images", "a sequence of images", images)
    if len(images) == 0:
        _checks.fail(ValueError, "images", "a sequence of at least one training image to caption", images)
