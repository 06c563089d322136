"""``DiffIIConfig``: every knob of the method, each declared once in the layer that uses it.

A ``DiffIIConfig`` is composed of the diffusion layer's :class:`GenerationConfig`
(``config.generation``) and :class:`ConceptConfig` (``config.concepts``) plus the
knobs of a whole run (model, suffixes, image format, seed). Users write the knobs
flat, generation knobs by their own name and concept knobs with a ``concept_``
prefix; the flat names, their defaults, checks and help texts come from the
declarations (:func:`diffii_datasets._knobs.knob`), and so do the command line's
flags and the Hub builder's keywords::

    DiffIIConfig(split_ratio=0.1)                        # the paper's 10-shot setting
    DiffIIConfig(concept_train_steps=500, seed=3)
    config.split_ratio, config.concepts.train_steps      # flat or through the parts

Pure Python: importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint
from diffii_datasets._knobs import Knob, choice, knob, knobs_of, seed
from diffii_datasets.diffusion.concepts.config import ConceptConfig
from diffii_datasets.diffusion.config import GenerationConfig

__all__ = ["CONCEPT_PREFIX", "DEFAULT_MODEL", "IMAGE_FORMATS", "DiffIIConfig"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
IMAGE_FORMATS = ("png", "jpeg")
"""How synthetic images are stored (real images are always kept as lossless PNG)."""
CONCEPT_PREFIX = "concept_"
"""Flat names of :class:`ConceptConfig` knobs: ``concept_<field>``."""
LEGACY_NAMES = {
    "tokens_per_class": "concept_tokens_per_class",
    "lora_rank": "concept_lora_rank",
    "gradient_checkpointing": "concept_gradient_checkpointing",
}
"""Knobs of diffii-datasets 0.1 JSON configs that have another name now; :meth:`DiffIIConfig.from_dict` reads both."""


def _model(value: Any, name: str) -> str:
    return _checks.check_str(value, name, expected="a Hub id or a local diffusers directory")


def _suffixes(value: Any, name: str) -> str | tuple[str, ...]:
    """A suffix-provider spec; a list is stored as a tuple so that the config stays hashable."""
    from diffii_datasets.diffusion.suffixes import suffix_provider

    if isinstance(value, list):
        value = tuple(value)
    try:
        suffix_provider(value)
    except (TypeError, ValueError, FileNotFoundError) as error:
        raise type(error)(f"{name}: {error}") from None
    return value


@dataclass(frozen=True, init=False, repr=False)
class DiffIIConfig:
    """All Diff-II settings; defaults follow the paper (5-shot) and the released concept recipe.

    Construct it from flat knobs (``DiffIIConfig(split_ratio=0.1)``, see :meth:`knobs`),
    from its parts (``DiffIIConfig(generation=GenerationConfig(...))``) or both, the
    flat knobs winning. A wrong value raises ``TypeError``/``ValueError`` naming the
    knob that was passed.
    """

    model: str = knob(DEFAULT_MODEL, "Stable Diffusion model: a Hub id or a local diffusers directory", _model)
    suffixes: str | tuple[str, ...] = knob(
        "builtin", "suffix provider: builtin, builtin:<family>, file:<path>, captioned[:options] or a list of "
                   "phrases", _suffixes, parse=str)
    image_format: str = knob("png", "how synthetic images are stored: png or jpeg", choice(IMAGE_FORMATS),
                             choices=IMAGE_FORMATS)
    seed: int = knob(0, "seed of concept learning, generation and (unless --subset-seed) the training subset", seed)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    concepts: ConceptConfig = dataclasses.field(default_factory=ConceptConfig)

    def __init__(self, *, generation: GenerationConfig | None = None, concepts: ConceptConfig | None = None,
                 **knobs: Any) -> None:
        if generation is not None and not isinstance(generation, GenerationConfig):
            _checks.fail(TypeError, "generation", "a GenerationConfig", generation)
        if concepts is not None and not isinstance(concepts, ConceptConfig):
            _checks.fail(TypeError, "concepts", "a ConceptConfig", concepts)
        table = _knob_table()
        unknown = [name for name in knobs if name not in table]
        if unknown:
            raise TypeError(f"DiffIIConfig got unknown knob(s) {unknown}{_suggestion(unknown[0])}; "
                            f"the knobs are: {', '.join(table)}")
        parts: dict[str, dict[str, Any]] = {"": {}, "generation": {}, "concepts": {}}
        for name, value in knobs.items():
            item = table[name]
            parts[_PART[item.owner]][item.field] = item.check(value, name)
        object.__setattr__(self, "generation", dataclasses.replace(generation or GenerationConfig(),
                                                                   **parts["generation"]))
        object.__setattr__(self, "concepts", dataclasses.replace(concepts or ConceptConfig(), **parts["concepts"]))
        for item in knobs_of(DiffIIConfig):
            object.__setattr__(self, item.field, parts[""].get(item.field, item.check(item.default, item.name)))

    def __getattr__(self, name: str) -> Any:
        """Flat read access to the parts' knobs: ``config.split_ratio``, ``config.concept_train_steps``."""
        item = _knob_table().get(name) if not name.startswith("_") else None
        if item is None or item.owner is DiffIIConfig:
            raise AttributeError(f"'DiffIIConfig' object has no attribute {name!r}")
        return getattr(getattr(self, _PART[item.owner]), item.field)

    @staticmethod
    def knobs() -> list[Knob]:
        """Every knob by its flat name: default, check and help text (the CLI and the Hub builder use these)."""
        return list(_knob_table().values())

    def replace(self, **knobs: Any) -> DiffIIConfig:
        """A copy with the given flat knobs changed."""
        own = {item.name: getattr(self, item.name) for item in knobs_of(DiffIIConfig)}
        return DiffIIConfig(generation=self.generation, concepts=self.concepts, **{**own, **knobs})

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form: ``{knob: value}`` for every knob (tuples as lists)."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in _knob_table().values()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffIIConfig:
        """Inverse of :meth:`to_dict`; also reads diffii-datasets 0.1 configs (see :data:`LEGACY_NAMES`)."""
        if not isinstance(data, dict):
            _checks.fail(TypeError, "data", "a dict of DiffIIConfig knobs", data)
        data = dict(data)
        for old, new in LEGACY_NAMES.items():
            if old in data and new not in data:
                logger.info("config knob %r is called %r since diffii-datasets 0.2", old, new)
                data[new] = data.pop(old)
        unknown = sorted(set(data) - set(_knob_table()))
        if unknown:
            raise ValueError(f"unknown DiffIIConfig fields: {unknown}{_suggestion(unknown[0])}; "
                             f"valid fields: {sorted(_knob_table())}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DiffIIConfig:
        return cls.from_dict(json.loads(text))

    def hash(self) -> str:
        """A stable digest of every knob (the same across processes and machines)."""
        return fingerprint(self.to_dict())

    def differences(self, other: DiffIIConfig) -> dict[str, tuple[Any, Any]]:
        """``{knob: (self's value, other's value)}`` for every knob that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {key: (mine[key], theirs[key]) for key in mine if mine[key] != theirs[key]}

    def __repr__(self) -> str:
        """The knobs that differ from the defaults, as the call that makes this config."""
        changed = self.differences(DiffIIConfig())
        return "DiffIIConfig(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in changed) + ")"


_PART = {DiffIIConfig: "", GenerationConfig: "generation", ConceptConfig: "concepts"}


@functools.cache
def _knob_table() -> dict[str, Knob]:
    """Flat name to knob, in the order the command line lists them."""
    own = knobs_of(DiffIIConfig)
    ordered = own[:1] + knobs_of(GenerationConfig) + knobs_of(ConceptConfig, CONCEPT_PREFIX) + own[1:]
    return {item.name: item for item in ordered}


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(LEGACY_NAMES.get(name, name), list(_knob_table()), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


DiffIIConfig.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    + [inspect.Parameter(part, inspect.Parameter.KEYWORD_ONLY, default=None) for part in ("generation", "concepts")]
    + [inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=item.default)
       for item in _knob_table().values()])
