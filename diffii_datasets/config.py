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
    DiffIIConfig.preset("tiny")                          # the offline tiny model, sized for a CPU minute

Pure Python: importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from diffii_datasets import _checks
from diffii_datasets._knobs import choice, knob, seed
from diffii_datasets.diffusion.concepts.config import ConceptConfig
from diffii_datasets.diffusion.config import GenerationConfig
from diffii_datasets.methods.config import PRESETS, TINY_MODEL, MethodConfig, Part

__all__ = ["CONCEPT_PREFIX", "DEFAULT_MODEL", "IMAGE_FORMATS", "PRESETS", "TINY_MODEL", "DiffIIConfig"]

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
class DiffIIConfig(MethodConfig):
    """All Diff-II settings; defaults follow the paper (5-shot) and the released concept recipe.

    Construct it from flat knobs (``DiffIIConfig(split_ratio=0.1)``, see :meth:`knobs`),
    from its parts (``DiffIIConfig(generation=GenerationConfig(...))``) or both, the
    flat knobs winning. A wrong value raises ``TypeError``/``ValueError`` naming the
    knob that was passed.
    """

    method: ClassVar[str] = "diff-ii"
    PARTS: ClassVar[tuple[Part, ...]] = (Part("generation", GenerationConfig), Part("concepts", ConceptConfig,
                                                                                    CONCEPT_PREFIX))
    LEGACY_NAMES: ClassVar[dict[str, str]] = LEGACY_NAMES

    model: str = knob(DEFAULT_MODEL, "Stable Diffusion model: a Hub id or a local diffusers directory", _model)
    suffixes: str | tuple[str, ...] = knob(
        "builtin", "suffix provider: builtin, builtin:<list>, file:<path>, captioned[:options] or a list of "
                   "phrases", _suffixes, parse=str)
    image_format: str = knob("png", "how synthetic images are stored: png or jpeg", choice(IMAGE_FORMATS),
                             choices=IMAGE_FORMATS)
    seed: int = knob(0, "seed of generation and (unless --subset-seed) the training subset", seed)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    concepts: ConceptConfig = dataclasses.field(default_factory=ConceptConfig)

    @classmethod
    def from_0_2_dict(cls, data: dict[str, Any]) -> DiffIIConfig:
        """The config of a diffii-datasets 0.2 store header: knobs added since take the values 0.2 used."""
        if not isinstance(data, dict):
            _checks.fail(TypeError, "config", "a dict of DiffIIConfig knobs", data)
        then = {name: value(data) if callable(value) else value for name, value in KNOBS_SINCE_0_2.items()}
        return cls.from_dict({**then, **data})


KNOBS_SINCE_0_2: dict[str, Any] = {
    "concept_seed": lambda config: config.get("seed", 0),
    "concept_image_order": "replacement",
    "concept_max_crop_positions": None,
    "concept_max_aspect_ratio": None,
}
"""Knobs added after diffii-datasets 0.2 and the value 0.2 behaved as (a function of its config when it depends on
it): what a 0.2 store header is read with."""

DiffIIConfig.declare_signature()
