"""The paper's image-to-image baselines: Real-Guidance, DA-Fusion, Real-Mix, Diff-Aug and Diff-Mix.

Each is :class:`~diffii_datasets.methods.image_edit.ImageEdit` with its published values
(read from the authors' code; "DAF:" is ``brandontrabucco/da-fusion``, "DM:" is
``Zhicaiwww/Diff-Mix`` at a81337b) as its config's defaults. Which codebase's version
is the default follows which one likely produced Diff-II's numbers (Diff-II's own code
makes none of them): DA-Fusion's for Real-Guidance and DA-Fusion, Diff-Mix's
``scripts/sample_mp.py`` for Real-Mix, Diff-Aug and Diff-Mix; the other codebase's
values are knob values. Every method's expansion rate is 5, as Diff-II's text gives
for all methods (Sec. 4.1), and its model is Diff-II's SD-1.5 (``model`` takes
DA-Fusion's ``CompVis/stable-diffusion-v1-4``). Pure Python: importing this module
loads no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from diffii_datasets.diffusion.concepts.config import RECIPE_DA_FUSION, ConceptConfig
from diffii_datasets.methods.baseline_config import ConceptEditConfig, EditConfig
from diffii_datasets.methods.image_edit import ImageEdit

__all__ = [
    "DAFusion", "DAFusionConfig", "DiffAug", "DiffAugConfig", "DiffMix", "DiffMixConfig", "RealGuidance",
    "RealGuidanceConfig", "RealMix", "RealMixConfig",
]

_DA_FUSION_RUN = {"sources": "each", "sampler": "pndm", "denoising_steps": 50}
"""DA-Fusion's augmenters: every real image edited in turn (DAF:semantic_aug/few_shot_dataset.py:59-80), with
the pipeline's own sampler (PNDM, from SD's scheduler config) and its default 50 steps (the pipeline call passes
neither, DAF:real_guidance.py:90-95, textual_inversion.py:145-150)."""
_DIFF_MIX_RUN = {"sources": "random", "sampler": "dpm-solver++", "denoising_steps": 25, "strengths": (0.7,)}
"""Diff-Mix's ``sample_mp.py``: a source image drawn uniformly from its class per task (DM:scripts/sample_mp.py:
105-109), DPM-Solver++ (DM:augmentation/diff_mix.py:107-109, 120) for 25 steps (L159), strength 0.7: the strength
its README's sampling command is described with and its classification script reads (``..._fixed_0.7``, README
lines 82 and 113, scripts/classification.sh); sample.sh passes 0.8 and ``--aug_strength`` defaults to 0.5
(sample_mp.py:366-368), ``--strength_strategy uniform`` draws from 0.3/0.5/0.7/0.9 (sample_mp.py:202-205): knob
values of ``strengths``."""


# -- Real-Guidance ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False, repr=False)
class RealGuidanceConfig(EditConfig):
    """Real-Guidance's knobs; defaults: DA-Fusion's ``real-guidance`` runs (see :class:`RealGuidance`)."""

    method: ClassVar[str] = "real-guidance"
    DEFAULTS: ClassVar[dict[str, Any]] = {**_DA_FUSION_RUN, "strengths": (0.5,), "prompt": "a photo of a {name}"}


class RealGuidance(ImageEdit):
    """Real-Guidance (He et al., ICLR 2023) as DA-Fusion runs it: each real image edited by plain SD towards
    "a photo of a <class name>".

    DAF:semantic_aug/augmentations/real_guidance.py:18-127 with its launch scripts
    (scripts/real_guidance/*.sh: ``--strength 0.5 --guidance-scale 7.5 --prompt "a photo of a {name}"``): the
    raw class name (L68), strength 0.5, guidance 7.5, PNDM 50 steps, input resized to 512 bilinear and the
    output back to the source's size (L67, L124-125), every real image edited in turn. The launch scripts make
    10 per real image (``--num-synthetic 10``); the paper's rate is 5. Diff-Mix's version of the same baseline
    ("real-aug", DM:scripts/sample_mp.py) is ``sampler="dpm-solver++", denoising_steps=25, strengths=0.7,
    sources="random", prompt="a photo of a {name} {metaclass}"`` (as shipped it crashes before its first image,
    DM:augmentation/diff_mix.py:110-111, 146-147).
    """

    name: ClassVar[str] = "real-guidance"
    title: ClassVar[str] = "Real-Guidance"
    config_class: ClassVar[type[RealGuidanceConfig]] = RealGuidanceConfig


# -- DA-Fusion --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False, repr=False)
class DAFusionConfig(ConceptEditConfig):
    """DA-Fusion's knobs; defaults: its stacking runs, concepts by its textual inversion (see :class:`DAFusion`)."""

    method: ClassVar[str] = "da-fusion"
    DEFAULTS: ClassVar[dict[str, Any]] = {**_DA_FUSION_RUN, "strengths": (1.0, 0.75, 0.5, 0.25),
                                          "prompt": "a photo of a {concept}"}

    concepts: ConceptConfig = field(default_factory=lambda: ConceptConfig(**RECIPE_DA_FUSION))


class DAFusion(ImageEdit):
    """DA-Fusion (Trabucco et al., ICLR 2024): each real image edited by SD with the class's textual-inversion
    token, at a strength drawn from 1.0 / 0.75 / 0.5 / 0.25.

    DAF:semantic_aug/augmentations/textual_inversion.py:63-182 driven by train_classifier.py as its main runs
    launch it (scripts/stacking/*.sh: four augmenters of strengths 1.0, 0.75, 0.5 and 0.25 composed in parallel,
    one drawn with probability 1/4 per image, DAF:semantic_aug/augmentations/compose.py:38-56), "a photo of a
    <token>" with no metaclass (L69, L122-123), guidance 7.5, PNDM 50 steps, 512 px in and the source's size
    out (L121, L179-180). This is also what its paper describes (a randomised insertion strength); its
    single-strength runs (scripts/textual_inversion/*.sh, the README's example) are ``strengths=0.5``. Concepts:
    textual inversion only, one token per class (``RECIPE_DA_FUSION``, DAF:fine_tune.py), learned and cached as
    every method's concepts are. Its launch scripts make 10 images per real image; the paper's rate is 5.
    """

    name: ClassVar[str] = "da-fusion"
    title: ClassVar[str] = "DA-Fusion"
    config_class: ClassVar[type[DAFusionConfig]] = DAFusionConfig
    concepts: ClassVar[bool] = True


# -- Real-Mix ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False, repr=False)
class RealMixConfig(EditConfig):
    """Real-Mix's knobs; defaults: Diff-Mix's ``real-mix`` strategy (see :class:`RealMix`)."""

    method: ClassVar[str] = "real-mix"
    DEFAULTS: ClassVar[dict[str, Any]] = {**_DIFF_MIX_RUN, "prompt": "a photo of a {name} {metaclass}"}


class RealMix(ImageEdit):
    """Real-Mix (Diff-Mix's baseline): a real image edited by plain SD towards a class drawn over all classes,
    labelled with Diff-Mix's soft label.

    DM:scripts/sample_mp.py ``--sample_strategy real-mix`` (L192-198: source and target classes drawn
    independently, so the target is the source's own class with probability 1/C) running
    ``DreamboothLoraMixup`` without fine-tuned weights (L39-41). As shipped its prompt lookup fails
    (``name2placeholder`` is empty, DM:augmentation/diff_mix.py:110-111, 146-147); the prompt here is what the
    code builds once that lookup is skipped: "a photo of a <class name> <super class>" (L148-150).
    """

    name: ClassVar[str] = "real-mix"
    title: ClassVar[str] = "Real-Mix"
    config_class: ClassVar[type[RealMixConfig]] = RealMixConfig
    inter_class: ClassVar[bool] = True
    soft_labels: ClassVar[bool] = True
    record_fields: ClassVar[tuple[str, ...]] = ("source_indices", "strength", "target", "seed")


# -- Diff-Aug and Diff-Mix --------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False, repr=False)
class DiffAugConfig(ConceptEditConfig):
    """Diff-Aug's knobs; defaults: Diff-Mix's ``diff-aug`` strategy with Diff-II's concepts (see :class:`DiffAug`)."""

    method: ClassVar[str] = "diff-aug"
    DEFAULTS: ClassVar[dict[str, Any]] = {**_DIFF_MIX_RUN, "prompt": "a photo of a {concept} {metaclass}"}


class DiffAug(ImageEdit):
    """Diff-Aug (Diff-Mix's intra-class variant): a real image edited towards its own class by SD with the
    fine-tuned class tokens and UNet LoRA.

    DM:scripts/sample_mp.py ``--sample_strategy diff-aug`` (L181-191: target = source class) running
    ``DreamboothLoraMixup`` with the fine-tuned weights (L42-45; DM:augmentation/diff_mix.py:112-120), prompt
    "a photo of a <class_i> <super class>" (L146-150). The concepts are Diff-II's (the same recipe, Diff-Mix's
    train_lora.py, and so the same learned set in the cache: a Diff-II run's concepts are reused).
    """

    name: ClassVar[str] = "diff-aug"
    title: ClassVar[str] = "Diff-Aug"
    config_class: ClassVar[type[DiffAugConfig]] = DiffAugConfig
    concepts: ClassVar[bool] = True


@dataclass(frozen=True, init=False, repr=False)
class DiffMixConfig(ConceptEditConfig):
    """Diff-Mix's knobs; defaults: its ``diff-mix`` strategy with Diff-II's concepts (see :class:`DiffMix`)."""

    method: ClassVar[str] = "diff-mix"
    DEFAULTS: ClassVar[dict[str, Any]] = {**_DIFF_MIX_RUN, "prompt": "a photo of a {concept} {metaclass}"}


class DiffMix(ImageEdit):
    """Diff-Mix (Wang et al., CVPR 2024): a real image edited towards a class drawn over all classes by SD with
    the fine-tuned class tokens and UNet LoRA, labelled ``1 - s**gamma`` source / ``s**gamma`` target.

    DM:scripts/sample_mp.py ``--sample_strategy diff-mix`` (L192-198) running ``DreamboothLoraMixup`` with the
    fine-tuned weights, the soft label of DM:dataset/base.py:224-237 (``gamma``: a training option, default
    the published runs' 0.8, :data:`~diffii_datasets.methods.soft_labels.DEFAULT_GAMMA`). The concepts are
    Diff-II's (the same recipe and learned set as :class:`DiffAug` and Diff-II).
    """

    name: ClassVar[str] = "diff-mix"
    title: ClassVar[str] = "Diff-Mix"
    config_class: ClassVar[type[DiffMixConfig]] = DiffMixConfig
    concepts: ClassVar[bool] = True
    inter_class: ClassVar[bool] = True
    soft_labels: ClassVar[bool] = True
    record_fields: ClassVar[tuple[str, ...]] = ("source_indices", "strength", "target", "seed")


for _config in (RealGuidanceConfig, DAFusionConfig, RealMixConfig, DiffAugConfig, DiffMixConfig):
    _config.declare_signature()
