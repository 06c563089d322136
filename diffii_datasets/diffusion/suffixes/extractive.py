"""Summarising captions without a language model: the context phrases that recur in the captions themselves."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from diffii_datasets import _checks
from diffii_datasets.diffusion.suffixes.builtin_lists import BUILTIN_LISTS, list_for_metaclass
from diffii_datasets.diffusion.suffixes.provider import SuffixParseError
from diffii_datasets.diffusion.suffixes.summariser import Summariser

__all__ = ["ExtractiveSummariser"]

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
        self.min_count = _checks.check_int(min_count, "min_count", minimum=1)

    def spec(self) -> str:
        return "extractive"

    def phrase(self, caption: str, metaclass: str) -> list[str]:
        """The context words of one caption (empty when it has none)."""
        text = re.sub(r"[^a-z0-9' ]+", " ", caption.lower())
        text = _LEAD_JUNK.sub("", re.sub(r"\s+", " ", text).strip())
        tokens = _collapse_repeats(text.split())
        names = {metaclass.lower(), *BUILTIN_LISTS.get(list_for_metaclass(metaclass), ())}
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
