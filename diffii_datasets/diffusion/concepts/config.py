"""``ConceptConfig``: the concept-learning knobs, declared once; the defaults are the published recipe.

The published recipe is what made the concepts Diff-II released: Diff-Mix's
``train_lora.py`` run by ``scripts/finetune.sh`` (few-shot) and
``scripts/finetune_imb.sh`` (long tail). Each way diffii-datasets 0.1 differed from
it stays available as a named knob value (:data:`RECIPE_0_1`).

Pure Python (no torch), so ``DiffIIConfig`` and the command line read the
declarations without loading the diffusion libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._knobs import choice, image_side, knob, number, optional, positive_int, validate

__all__ = [
    "CROP_MODES",
    "LORA_TARGET_MODULES",
    "PUBLISHED_INIT_TOKEN",
    "PUBLISHED_INIT_TOKEN_ID",
    "RECIPE_0_1",
    "TOKEN_INITS",
    "TRAJECTORY_FREE_KNOBS",
    "VAE_POSTERIORS",
    "ConceptConfig",
    "concept_recipe",
    "recipe_differences",
]

LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
"""UNet attention projections that get LoRA (self- and cross-attention), as in the released concepts."""

CROP_MODES = ("random", "center", "squash")
"""How a training image becomes a square input: see ``ConceptConfig.crop``."""

VAE_POSTERIORS = ("sample", "mean")
"""What a training image's latent is: see ``ConceptConfig.vae_posterior``."""

TOKEN_INITS = ("published", "class_name")
"""Where the placeholder vectors start: see ``ConceptConfig.token_init``."""

PUBLISHED_INIT_TOKEN = "ktn"
"""The CLIP token every placeholder starts from in the published recipe (``INITIALIZER_TOKEN``)."""
PUBLISHED_INIT_TOKEN_ID = 42170
"""Its id in SD-1.5's CLIP tokenizer, which is how the published code names it."""

RECIPE_0_1 = {
    "resolution": None,
    "crop": "squash",
    "vae_posterior": "mean",
    "lora_grad_clip_norm": 0.0,
    "balance_classes": False,
    "token_init": "class_name",
}
"""The recipe knobs of diffii-datasets 0.1, which differed from the published recipe:
``ConceptConfig(**RECIPE_0_1)`` learns as 0.1 did (the same weights, bit for bit)."""

TRAJECTORY_FREE_KNOBS = ("train_steps", "checkpoint_steps", "gradient_checkpointing")
"""Knobs that do not change a learning run's trajectory: a checkpoint resumes under other values of them."""


def _module_names(value: Any, name: str) -> tuple[str, ...]:
    return _checks.check_str_sequence(value, name, expected="a non-empty list of module names")


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class ConceptConfig:
    """Concept-learning knobs; the defaults are the published recipe.

    The released concepts were trained for 35,000 steps at batch 2 per GPU on 4 GPUs
    (so an effective batch of 8), fp16, AdamW with lr 5e-5 for both the LoRA and the
    embeddings, weight decay 1e-2, a constant schedule, at 224 px with a fresh random
    crop, flip and VAE posterior sample every step, the LoRA's gradient clipped at
    norm 1.0, every placeholder starting from the CLIP token ``ktn`` (id 42170), and
    class-balanced draws in the long-tail runs (``balance_classes``, which the
    long-tail settings switch on).
    """

    train_steps: int = knob(35000, "concept-learning optimizer steps", positive_int)
    batch_size: int = knob(8, "concept-learning batch (the global batch, shared by the ranks)", positive_int)
    tokens_per_class: int = knob(1, "placeholder token vectors per class", positive_int)
    lora_rank: int = knob(10, "rank of the shared UNet LoRA", positive_int)
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
                               "centre crop) or squash (the whole image resized to a square: 0.1)",
                     choice(CROP_MODES), choices=CROP_MODES)
    random_flip: bool = knob(True, "mirror each drawn image with probability 1/2 (published)", _checks.check_bool)
    vae_posterior: str = knob("sample", "an image's latent: sample (a fresh sample of the VAE posterior every "
                                        "step: published) or mean (the posterior mean: 0.1)",
                              choice(VAE_POSTERIORS), choices=VAE_POSTERIORS)
    lora_grad_clip_norm: float = knob(1.0, "clip the LoRA's gradient to this norm before each step (published: "
                                           "1.0; the token vectors are not clipped); 0: no clipping (0.1)",
                                      number(minimum=0))
    balance_classes: bool = knob(False, "draw training images class-balanced (weight 1/n_c, with replacement) "
                                        "instead of uniformly, as the published long-tail runs; the long-tail "
                                        "settings switch it on", _checks.check_bool)
    token_init: str = knob("published", "where placeholder vectors start: published (the CLIP token 'ktn', id "
                                        "42170, for every class) or class_name (a word of the class name: 0.1)",
                           choice(TOKEN_INITS), choices=TOKEN_INITS)
    lora_target_modules: tuple[str, ...] = knob(LORA_TARGET_MODULES, "UNet modules that get LoRA (comma-separated "
                                                "on the command line)", _module_names, parse=_comma_list)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of the fields."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["lora_target_modules"] = list(self.lora_target_modules)
        return data


def concept_recipe(config: ConceptConfig, seed: int) -> dict[str, Any]:
    """How a concept set was learned, as concept files and checkpoints record it: every knob and the seed."""
    return {"config": config.to_dict(), "seed": seed}


def recipe_differences(old: Any, new: dict[str, Any]) -> list[str]:
    """``"knob: old -> new"`` for each knob (and the seed) in which recipe ``new`` differs from ``old``.

    A knob ``old`` does not record (it was written before the knob existed) shows as
    ``(unrecorded)``; an ``old`` that records no recipe at all gives ``["(no recipe recorded)"]``.
    """
    if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
        return ["(no recipe recorded)"]
    missing = object()
    lines = []
    for key, value in new["config"].items():
        before = old["config"].get(key, missing)
        if before != value:
            lines.append(f"{key}: {'(unrecorded)' if before is missing else repr(before)} -> {value!r}")
    if old.get("seed") != new.get("seed"):
        lines.append(f"seed: {old.get('seed')!r} -> {new.get('seed')!r}")
    return lines
