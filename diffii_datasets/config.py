"""``DiffIIConfig``: every knob of the method in one dataclass, with the paper's defaults."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from diffii_datasets.diffusion.concepts import ConceptConfig
from diffii_datasets.diffusion.generator import GenerationConfig
from diffii_datasets.diffusion.suffixes import suffix_provider
from diffii_datasets.hashing import fingerprint

__all__ = ["DiffIIConfig"]

IMAGE_FORMATS = ("png", "jpeg")


@dataclass(frozen=True)
class DiffIIConfig:
    """All Diff-II settings. Defaults follow the paper (5-shot) and the released concept recipe.

    Generation: ``expansion_rate`` synthetic images per real image, ``split_ratio`` of
    the denoising steps (the noisy end) conditioned on a context suffix, DDIM inversion
    with ``inversion_steps`` at ``inversion_guidance_scale`` and two-stage denoising with
    ``denoising_steps`` at ``guidance_scale``. Use ``split_ratio=0.1`` for 10-shot and
    ``1.0`` for long-tail settings, as in the paper.

    Concepts (ignored when ready-made concepts are passed to the wrapper):
    ``concept_train_steps`` AdamW steps of ``concept_batch_size`` images learning
    ``tokens_per_class`` tokens per class and a shared LoRA of ``lora_rank``.

    ``suffixes`` is a suffix-provider spec (``"builtin"``, ``"builtin:bird"``,
    ``"file:/path.txt"``, ``"captioned"`` or a list of phrases). ``batch_size`` is the
    number of latents per UNet batch; ``image_format`` how images are stored.
    ``autocast_dtype`` (``"bfloat16"`` or ``"float16"``, default ``None``) runs the UNet
    and VAE of generation under autocast: an opt-in speed knob for float32 pipelines on
    CPUs with native bfloat16 (AVX512-BF16, AMX); the images differ slightly.
    """

    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    resolution: int = 512
    expansion_rate: float = 5.0
    split_ratio: float = 0.3
    inversion_steps: int = 200
    inversion_guidance_scale: float = 1.0
    denoising_steps: int = 25
    guidance_scale: float = 7.5
    interpolation: str = "circle"
    batch_size: int = 8
    autocast_dtype: str | None = None
    concept_train_steps: int = 35000
    concept_batch_size: int = 8
    tokens_per_class: int = 1
    lora_rank: int = 10
    concept_learning_rate: float = 5e-5
    concept_weight_decay: float = 1e-2
    concept_checkpoint_steps: int = 5000
    gradient_checkpointing: bool = False
    suffixes: str | tuple[str, ...] = "builtin"
    image_format: str = "png"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.suffixes, list):
            object.__setattr__(self, "suffixes", tuple(self.suffixes))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(field.type)
            if expected is not None and (not isinstance(value, expected) or
                                         (field.type != "bool" and isinstance(value, bool))):
                raise TypeError(f"DiffIIConfig.{field.name} must be {field.type}, got {value!r}")
        if not self.model:
            raise ValueError("DiffIIConfig.model must name a model id or a local directory")
        if self.resolution < 8 or self.resolution % 8:
            raise ValueError(f"DiffIIConfig.resolution must be a positive multiple of 8, got {self.resolution}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"DiffIIConfig.image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if self.seed < 0:
            raise ValueError(f"DiffIIConfig.seed must be non-negative, got {self.seed}")
        # The diffusion layer owns the validation of its own knobs.
        self.generation_config()
        self.concept_config()
        suffix_provider(list(self.suffixes) if isinstance(self.suffixes, tuple) else self.suffixes)

    def generation_config(self) -> GenerationConfig:
        return GenerationConfig(
            expansion_rate=float(self.expansion_rate),
            split_ratio=float(self.split_ratio),
            inversion_steps=self.inversion_steps,
            inversion_guidance_scale=float(self.inversion_guidance_scale),
            denoising_steps=self.denoising_steps,
            guidance_scale=float(self.guidance_scale),
            interpolation=self.interpolation,
            batch_size=self.batch_size,
            resolution=self.resolution,
            autocast_dtype=self.autocast_dtype,
        )

    def concept_config(self) -> ConceptConfig:
        return ConceptConfig(
            train_steps=self.concept_train_steps,
            batch_size=self.concept_batch_size,
            tokens_per_class=self.tokens_per_class,
            lora_rank=self.lora_rank,
            learning_rate=float(self.concept_learning_rate),
            weight_decay=float(self.concept_weight_decay),
            checkpoint_steps=self.concept_checkpoint_steps,
            gradient_checkpointing=self.gradient_checkpointing,
            resolution=self.resolution,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if isinstance(self.suffixes, tuple):
            data["suffixes"] = list(self.suffixes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffIIConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DiffIIConfig fields: {unknown}; valid fields: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DiffIIConfig:
        return cls.from_dict(json.loads(text))

    def hash(self) -> str:
        """A stable digest of every field (the same across processes and machines)."""
        return fingerprint(self.to_dict())

    def differences(self, other: DiffIIConfig) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {key: (mine[key], theirs[key]) for key in mine if mine[key] != theirs[key]}
