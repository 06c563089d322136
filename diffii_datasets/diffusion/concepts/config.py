"""``ConceptConfig``: the concept-learning knobs, declared once; the defaults are the published recipe.

The published recipe is what made the concepts Diff-II released: Diff-Mix's
``train_lora.py`` run by ``scripts/finetune.sh`` (few-shot) and
``scripts/finetune_imb.sh`` (long tail). Each way an earlier diffii-datasets
differed from it stays available as a named knob value (:data:`RECIPE_0_2`,
:data:`RECIPE_0_1`), and DA-Fusion's textual inversion is :data:`RECIPE_DA_FUSION`.

Pure Python (no torch), so ``DiffIIConfig`` and the command line read the
declarations without loading the diffusion libraries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._knobs import (
    choice,
    image_side,
    knob,
    non_negative_int,
    number,
    optional,
    positive_int,
    seed,
    validate,
)

__all__ = [
    "CROP_MODES",
    "IMAGE_ORDERS",
    "LORA_TARGET_MODULES",
    "PROMPT_SETS",
    "PUBLISHED_INIT_TOKEN",
    "PUBLISHED_INIT_TOKEN_ID",
    "RECIPE_0_1",
    "RECIPE_0_2",
    "RECIPE_DA_FUSION",
    "TOKEN_INITS",
    "TRAJECTORY_FREE_KNOBS",
    "VAE_POSTERIORS",
    "ConceptConfig",
    "concept_recipe",
    "init_word",
    "recipe_differences",
]

LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
"""UNet attention projections that get LoRA (self- and cross-attention), as in the released concepts."""

CROP_MODES = ("random", "center", "squash", "squash_bicubic")
"""How a training image becomes a square input: see ``ConceptConfig.crop``."""

VAE_POSTERIORS = ("sample", "mean")
"""What a training image's latent is: see ``ConceptConfig.vae_posterior``."""

IMAGE_ORDERS = ("epochs", "replacement")
"""How the uniform (not class-balanced) draw picks images: see ``ConceptConfig.image_order``."""

PROMPT_SETS = ("published", "imagenet_templates_small")
"""The prompts a class's tokens are learned in: see ``ConceptConfig.prompts``."""

TOKEN_INITS = ("published", "class_name", "word:<word>")
"""Where the placeholder vectors start: see ``ConceptConfig.token_init``."""

PUBLISHED_INIT_TOKEN = "ktn"
"""The CLIP token every placeholder starts from in the published recipe (``INITIALIZER_TOKEN``)."""
PUBLISHED_INIT_TOKEN_ID = 42170
"""Its id in SD-1.5's CLIP tokenizer, which is how the published code names it."""

RECIPE_0_2 = {
    "seed": 0,
    "image_order": "replacement",
    "max_crop_positions": None,
    "max_aspect_ratio": None,
}
"""The recipe knobs of diffii-datasets 0.2, which differed from the published recipe:
``ConceptConfig(**RECIPE_0_2)`` learns as 0.2 did (the same weights, bit for bit)."""

RECIPE_0_1 = {
    **RECIPE_0_2,
    "resolution": None,
    "crop": "squash",
    "vae_posterior": "mean",
    "lora_grad_clip_norm": 0.0,
    "balance_classes": False,
    "token_init": "class_name",
}
"""The recipe knobs of diffii-datasets 0.1 (0.2's, plus its own differences):
``ConceptConfig(**RECIPE_0_1)`` learns as 0.1 did (the same weights, bit for bit)."""

RECIPE_DA_FUSION = {
    "train_steps": 1000,
    "batch_size": 4,
    "tokens_per_class": 1,
    "lora_rank": 0,
    "learning_rate": 2e-3,
    "weight_decay": 1e-2,
    "gradient_checkpointing": True,
    "resolution": 512,
    "crop": "squash_bicubic",
    "random_flip": True,
    "vae_posterior": "sample",
    "lora_grad_clip_norm": 0.0,
    "balance_classes": False,
    "token_init": "word:the",
    "prompts": "imagenet_templates_small",
    "separate_classes": True,
    "image_order": "epochs",
}
"""DA-Fusion's textual inversion (``fine_tune.py`` as ``scripts/fine_tuning/fine_tune_*.sh`` run it), as
``ConceptConfig(**RECIPE_DA_FUSION)``: one token per class learned in a run of its own (1,000 steps at
batch 4 from that class's images), no LoRA, starting from the word "the", 512 px with the whole image
resized to a square (PIL bicubic) and flipped with probability 1/2, a fresh VAE posterior sample, AdamW
(weight decay 1e-2) at 5e-4 scaled by ``--scale_lr`` to 5e-4 x batch 4 = 2e-3, a constant schedule, one
of the 27 ``imagenet_templates_small`` prompts per image ("a photo of a <token>", no metaclass).

Not reproduced: DA-Fusion seeds each run with the trial's seed (0-7), which also picks the few-shot
subset (set ``seed``); it shuffles 100 copies of each image (``--repeats 100``) where ``image_order="epochs"``
shuffles the images once per epoch (every image is seen equally often either way, but DA-Fusion's batches
may hold one image several times when a class has more images than the batch); it runs the UNet in fp16
weights where mixed precision here autocasts (bf16 where the GPU supports it); its base model is SD v1-4
(a model choice, not a concept knob); the placeholder is named ``<class_name>``, here ``<class_i>``.
"""

TRAJECTORY_FREE_KNOBS = ("train_steps", "checkpoint_steps", "gradient_checkpointing", "max_aspect_ratio")
"""Knobs that do not change a learning run's trajectory: a checkpoint resumes under other values of them."""


def _module_names(value: Any, name: str) -> tuple[str, ...]:
    return _checks.check_str_sequence(value, name, expected="a non-empty list of module names")


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


_WORD = re.compile(r"word:(\S+)")


def _token_init(value: Any, name: str) -> str:
    expected = "'published', 'class_name' or 'word:<word>' (one word without spaces)"
    if not isinstance(value, str):
        _checks.fail(TypeError, name, expected, value)
    if value not in TOKEN_INITS[:2] and not _WORD.fullmatch(value):
        _checks.fail(ValueError, name, expected, value)
    return value


def init_word(token_init: str) -> str | None:
    """The word of ``token_init="word:<word>"``; ``None`` for the other values."""
    found = _WORD.fullmatch(token_init)
    return found.group(1) if found else None


def _crop_positions(value: Any, name: str) -> int:
    return _checks.check_int(value, name, minimum=2)


@dataclass(frozen=True)
class ConceptConfig:
    """Concept-learning knobs; the defaults are the published recipe.

    The released concepts were trained for 35,000 steps at batch 2 per GPU on 4 GPUs
    (so an effective batch of 8), fp16, AdamW with lr 5e-5 for both the LoRA and the
    embeddings, weight decay 1e-2, a constant schedule, at 224 px with a fresh random
    crop, flip and VAE posterior sample every step, the LoRA's gradient clipped at
    norm 1.0, every placeholder starting from the CLIP token ``ktn`` (id 42170),
    seed 42, images in epochs (a shuffled ``DataLoader``: each image once per epoch),
    and class-balanced draws in the long-tail runs (``balance_classes``, which the
    long-tail settings switch on).

    Where this differs from the published code, measured:

    - Crop offsets (``crop="random"``) lie on a grid of the VAE's factor ``f`` (8 px
      for SD-1.5) instead of every pixel: each published offset is within ``f / 2`` =
      4 px of a grid offset, the mean offset is the same, and the Kolmogorov-Smirnov
      distance between the two offset distributions is 0.02-0.11 for CUB-like sizes at
      224 px (500 x 281: 0.023, 500 x 333: 0.058, 500 x 375: 0.073, 500 x 400: 0.11;
      0.21 for a nearly square 500 x 450, whose 25 published offsets become 4) and
      0.01-0.05 at 512 px (``benchmarks/measure_concept_crops.py``).
    - An image with more than ``max_crop_positions`` grid offsets gets that many,
      evenly spaced over the whole published range, so a panorama costs a bounded
      number of VAE encodings (64 by default: at 224 px, images wider than about
      3.3:1; at 512 px, about 2:1). Their KS distance to the published offsets is then
      0.014-0.016 (about ``1 / max_crop_positions``) where the grid's would be
      0.002-0.014 (3.5:1 to 20:1 at 224 px), and the largest gap grows from 4 px to
      about ``range / 126`` (12 px at 8:1, 34 px at 20:1).
    - Data-parallel runs average every trainable weight's gradient (tokens and LoRA)
      over the ranks before each step, so they learn what one process would. The
      published 4-GPU run averages only the tokens': ``train_lora.py`` prepares the LoRA
      layers with ``accelerate`` but runs the forward pass through the unwrapped UNet,
      so the LoRA's gradients are never averaged (replayed on two processes, the ranks'
      LoRA gradients differ by over 100%); each GPU's LoRA steps on its own 2 images,
      and the LoRA saved is the main process's.
    """

    train_steps: int = knob(35000, "concept-learning optimizer steps (per class with separate_classes)",
                            positive_int)
    batch_size: int = knob(8, "concept-learning batch (the global batch, shared by the ranks)", positive_int)
    tokens_per_class: int = knob(1, "placeholder token vectors per class", positive_int)
    lora_rank: int = knob(10, "rank of the shared UNet LoRA; 0: no LoRA, tokens only (textual inversion, as "
                              "DA-Fusion)", non_negative_int)
    learning_rate: float = knob(5e-5, "AdamW learning rate of the tokens and the LoRA", number(above=0))
    weight_decay: float = knob(1e-2, "AdamW weight decay", number(minimum=0))
    checkpoint_steps: int = knob(5000, "steps between concept-learning checkpoints", positive_int)
    gradient_checkpointing: bool = knob(False, "trade UNet compute for memory while learning", _checks.check_bool)
    mixed_precision: bool = knob(True, "on CUDA, compute in bf16 where supported, else fp16 with loss scaling",
                                 _checks.check_bool)
    resolution: int | None = knob(224, "image side in pixels while learning concepts, whatever the generation "
                                       "resolution (published: 224; None, from Python only: the pipeline's own)",
                                  optional(image_side), parse=int)
    crop: str = knob("random", "how an image becomes a square input: random (resize the short side to the "
                               "resolution, a fresh random crop every step: published), center (the same with the "
                               "centre crop), squash (the whole image resized to a square: 0.1) or squash_bicubic "
                               "(the same with PIL bicubic: DA-Fusion)",
                     choice(CROP_MODES), choices=CROP_MODES)
    random_flip: bool = knob(True, "mirror each drawn image with probability 1/2 (published)", _checks.check_bool)
    vae_posterior: str = knob("sample", "an image's latent: sample (a fresh sample of the VAE posterior every "
                                        "step: published) or mean (the posterior mean: 0.1)",
                              choice(VAE_POSTERIORS), choices=VAE_POSTERIORS)
    lora_grad_clip_norm: float = knob(1.0, "clip the LoRA's gradient to this norm before each step (published: "
                                           "1.0; the token vectors are not clipped); 0: no clipping (0.1)",
                                      number(minimum=0))
    balance_classes: bool = knob(False, "draw training images class-balanced (weight 1/n_c, with replacement, "
                                        "whatever image_order says) instead of uniformly, as the published "
                                        "long-tail runs; the long-tail settings switch it on", _checks.check_bool)
    image_order: str = knob("epochs", "the uniform draw: epochs (a fresh shuffle of the images each epoch, every "
                                      "image once per epoch, the epoch's last batch completed from its start: "
                                      "published) or replacement (independent uniform draws: 0.2)",
                            choice(IMAGE_ORDERS), choices=IMAGE_ORDERS)
    seed: int = knob(42, "seed of concept learning: LoRA initialisation, draws and noise (published: 42)", seed)
    token_init: str = knob("published", "where placeholder vectors start: published (the CLIP token 'ktn', id "
                                        "42170, for every class), class_name (a word of the class name: 0.1) or "
                                        "word:<word> (that word for every class; DA-Fusion: word:the)",
                           _token_init)
    prompts: str = knob("published", "the prompts tokens are learned in: published ('a photo of a <tokens> "
                                     "<metaclass>') or imagenet_templates_small (one of DA-Fusion's 27 templates "
                                     "per image, 'a photo of a <tokens>', no metaclass)",
                        choice(PROMPT_SETS), choices=PROMPT_SETS)
    separate_classes: bool = knob(False, "learn each class's tokens in a run of its own from its images alone "
                                         "(train_steps each, as DA-Fusion); needs lora_rank=0", _checks.check_bool)
    max_crop_positions: int | None = knob(64, "crop offsets encoded per image at most (crop=random); an image with "
                                              "more gets this many, evenly spaced (None, from Python only: all, "
                                              "as 0.2)", optional(_crop_positions), parse=int)
    max_aspect_ratio: float | None = knob(20.0, "refuse training images whose long side is more than this many "
                                                "times their short side (None, from Python only: accept any, as 0.2)",
                                          optional(number(minimum=1)), parse=float)
    lora_target_modules: tuple[str, ...] = knob(LORA_TARGET_MODULES, "UNet modules that get LoRA (comma-separated "
                                                "on the command line)", _module_names, parse=_comma_list)

    def __post_init__(self) -> None:
        validate(self)
        if self.separate_classes and self.lora_rank:
            raise ValueError(f"ConceptConfig.separate_classes=True (concept_separate_classes) needs lora_rank=0 "
                             f"(concept_lora_rank), got lora_rank={self.lora_rank}: a LoRA shared by all classes "
                             "cannot be learned one class at a time")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of the fields."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["lora_target_modules"] = list(self.lora_target_modules)
        return data

    def total_steps(self, num_classes: int) -> int:
        """Optimizer steps of learning ``num_classes`` classes: ``train_steps``, times the classes when separate."""
        return self.train_steps * (num_classes if self.separate_classes else 1)


def concept_recipe(config: ConceptConfig, seed: int | None = None) -> dict[str, Any]:
    """How a concept set was learned, as concept files and checkpoints record it: every knob, the seed among them.

    ``seed`` (deprecated, for ``learn_concepts(seed=...)``) records that seed instead of ``config.seed``.
    """
    data = config.to_dict()
    if seed is not None:
        data["seed"] = _checks.check_seed(seed)
    return {"config": data}


def recipe_differences(old: Any, new: dict[str, Any]) -> list[str]:
    """``"knob: old -> new"`` for each knob (the seed among them) in which recipe ``new`` differs from ``old``.

    A knob ``old`` does not record (it was written before the knob existed) shows as
    ``(unrecorded)``; an ``old`` that records no recipe at all gives ``["(no recipe recorded)"]``.
    Recipes of 0.2 and earlier record the seed beside the knobs (``{"config": ..., "seed": ...}``).
    """
    if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
        return ["(no recipe recorded)"]
    missing = object()
    before_knobs, after_knobs = _knobs_with_seed(old), _knobs_with_seed(new)
    lines = []
    for key, value in after_knobs.items():
        before = before_knobs.get(key, missing)
        if before != value:
            lines.append(f"{key}: {'(unrecorded)' if before is missing else repr(before)} -> {value!r}")
    return lines


def _knobs_with_seed(recipe: dict[str, Any]) -> dict[str, Any]:
    knobs = dict(recipe["config"])
    if "seed" not in knobs and "seed" in recipe:
        knobs["seed"] = recipe["seed"]
    return knobs
