"""``ConceptConfig``: the concept-learning knobs, declared once; the defaults are the released recipe.

Pure Python (no torch), so ``DiffIIConfig`` and the command line read the
declarations without loading the diffusion libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._knobs import image_side, knob, number, optional, positive_int, validate

__all__ = ["LORA_TARGET_MODULES", "ConceptConfig"]

LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
"""UNet attention projections that get LoRA (self- and cross-attention), as in the released concepts."""


def _module_names(value: Any, name: str) -> tuple[str, ...]:
    return _checks.check_str_sequence(value, name, expected="a non-empty list of module names")


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class ConceptConfig:
    """Concept-learning knobs; the defaults are the released recipe.

    The released concepts were trained for 35,000 steps at batch 2 per GPU on 4 GPUs
    (so an effective batch of 8), fp16, AdamW with lr 5e-5 for both the LoRA and the
    embeddings, weight decay 1e-2, a constant schedule and random horizontal flips.
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
    resolution: int | None = knob(None, "image side in pixels while learning (default: the pipeline's own)",
                                  optional(image_side), parse=int)
    lora_target_modules: tuple[str, ...] = knob(LORA_TARGET_MODULES, "UNet modules that get LoRA (comma-separated "
                                                "on the command line)", _module_names, parse=_comma_list)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of the fields."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["lora_target_modules"] = list(self.lora_target_modules)
        return data
