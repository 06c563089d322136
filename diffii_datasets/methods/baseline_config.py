"""The knobs of the paper's diffusion baselines, declared once and shared: each baseline's config reuses them.

:class:`BaselineConfig` holds what every baseline turns (model, expansion rate, prompt
template, sampler and steps, guidance, size, batch, image format, seed);
:class:`EditConfig` adds the image-to-image knobs (translation strengths, how source
images are chosen); :class:`ConceptEditConfig` adds learned concepts (its ``concepts``
part, flat knobs ``concept_*``). A baseline's own config is a subclass that sets its
``method`` and its published values in :attr:`~MethodConfig.DEFAULTS`. The knob names
are Diff-II's where the meaning is the same (``expansion_rate``, ``denoising_steps``,
``guidance_scale``, ``resolution``, ``batch_size``, ``autocast_dtype``), so a comparison
turns the same flags. Pure Python: importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from diffii_datasets import _checks
from diffii_datasets._knobs import choice, image_side, knob, number, optional, positive_int, seed
from diffii_datasets.config import CONCEPT_PREFIX, DEFAULT_MODEL, IMAGE_FORMATS
from diffii_datasets.diffusion.concepts.config import ConceptConfig
from diffii_datasets.diffusion.config import AUTOCAST_DTYPES
from diffii_datasets.diffusion.schedulers import SAMPLERS
from diffii_datasets.methods.config import MethodConfig, Part
from diffii_datasets.methods.prompt_templates import CONCEPT_FIELDS, PLAIN_FIELDS, prompt_knob

__all__ = ["SOURCE_CHOICES", "BaselineConfig", "ConceptEditConfig", "EditConfig", "sampler_unet_calls"]

SOURCE_CHOICES = ("each", "random")
"""Which real image a synthetic image edits: ``each`` real image of the class in turn (DA-Fusion's
``generate_augmentations``), or one drawn uniformly for every image (Diff-Mix's ``sample_mp.py``)."""


def sampler_unet_calls(sampler: str, steps: int, strength: float = 1.0) -> int:
    """UNet calls (per latent, guidance aside) of a run of ``sampler`` over the last ``int(steps * strength)``
    of its ``steps`` (diffusers' rule): PNDM, with SD's ``skip_prk_steps``, makes one call more than its steps."""
    run = min(int(steps * strength), steps)
    return run + (1 if sampler == "pndm" and run else 0)


def _model(value: Any, name: str) -> str:
    return _checks.check_str(value, name, expected="a Hub id or a local diffusers directory")


def _strengths(value: Any, name: str) -> tuple[float, ...]:
    """One strength in [0, 1], or several distinct ones (a list; a lone number is a list of one)."""
    expected = "a strength in [0, 1] or a non-empty list of distinct ones"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        _checks.fail(TypeError, name, expected, value)
    if not value:
        _checks.fail(ValueError, name, expected, value)
    strengths = tuple(_checks.check_number(item, f"{name}[{i}]", minimum=0, maximum=1) for i, item in enumerate(value))
    if len(set(strengths)) != len(strengths):
        _checks.fail(ValueError, name, expected, value)
    return strengths


def _comma_floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True, init=False, repr=False)
class BaselineConfig(MethodConfig):
    """Knobs every diffusion baseline has; a baseline's config subclasses it (or :class:`EditConfig`)."""

    model: str = knob(DEFAULT_MODEL, "Stable Diffusion model: a Hub id or a local diffusers directory", _model)
    expansion_rate: float = knob(5.0, "synthetic images per real image (class i gets int(rate * n_i); the paper: 5 "
                                      "for every method)", number(above=0))
    prompt: str = prompt_knob("a photo of a {name}", PLAIN_FIELDS)
    sampler: str = knob("dpm-solver++", "sampler: dpm-solver++ (Diff-Mix's), pndm (SD-1.x's own: DA-Fusion's) or "
                                        "ddim", choice(SAMPLERS), choices=SAMPLERS)
    denoising_steps: int = knob(25, "steps of the sampler's full schedule (an edit of strength s runs its last "
                                    "int(steps * s))", positive_int)
    guidance_scale: float = knob(7.5, "classifier-free guidance against the empty prompt (1 or less: none)",
                                 number(minimum=0))
    resolution: int | None = knob(None, "side of the square the images are made at (default: the pipeline's own, "
                                        "512 for SD-1.5, as the authors); each is resized back to its real image's "
                                        "size", optional(image_side), parse=int)
    batch_size: int = knob(8, "images per UNet batch (1: bit for bit the authors' per-image calls; larger batches "
                              "agree up to float rounding)", positive_int)
    autocast_dtype: str | None = knob(None, "bfloat16 or float16: run the UNet and VAE under autocast (a speed knob "
                                            "for float32 pipelines; off by default)",
                                      choice(AUTOCAST_DTYPES, optional=True), parse=str, choices=AUTOCAST_DTYPES)
    image_format: str = knob("png", "how synthetic images are stored: png or jpeg", choice(IMAGE_FORMATS),
                             choices=IMAGE_FORMATS)
    seed: int = knob(0, "seed of the per-class draws (source images, strengths, target classes, each image's noise)",
                     seed)

    def unet_calls(self, strength: float = 1.0) -> int:
        """UNet calls of one image at ``strength`` (1: the whole schedule), guidance included."""
        calls = sampler_unet_calls(self.sampler, self.denoising_steps, strength)
        return calls * (2 if self.guidance_scale > 1 else 1)


@dataclass(frozen=True, init=False, repr=False)
class EditConfig(BaselineConfig):
    """Knobs of the image-to-image baselines: every synthetic image is a real image, noised and denoised."""

    strengths: tuple[float, ...] = knob((0.5,), "translation strength, the fraction of the sampler's schedule run "
                                                "from the noised real image: one value, or several (comma-separated) "
                                                "of which each image draws one uniformly", _strengths,
                                        parse=_comma_floats)
    sources: str = knob("random", "which real image each synthetic image edits: each (every real image of the class "
                                  "in turn, expansion_rate times: DA-Fusion) or random (one drawn uniformly for every "
                                  "image: Diff-Mix)", choice(SOURCE_CHOICES), choices=SOURCE_CHOICES)

    def mean_unet_calls(self) -> int:
        """UNet calls of one image, averaged over the strengths it may draw (for the plan)."""
        return round(sum(self.unet_calls(strength) for strength in self.strengths) / len(self.strengths))


@dataclass(frozen=True, init=False, repr=False)
class ConceptEditConfig(EditConfig):
    """:class:`EditConfig` with learned class concepts (``concept_*`` knobs) and their token in the prompt."""

    PARTS: ClassVar[tuple[Part, ...]] = (Part("concepts", ConceptConfig, CONCEPT_PREFIX),)

    prompt: str = prompt_knob("a photo of a {concept} {metaclass}", CONCEPT_FIELDS)
    concepts: ConceptConfig = dataclasses.field(default_factory=ConceptConfig)
