"""Faithfulness with CLIP: the CLIP score against the class prompt, and similarity to the nearest real image.

The CLIP score is torchmetrics' ``CLIPScore``: ``max(100 * mean cos(E_I, E_C), 0)``
over a set's images ``I`` and their caption ``C``, with the same model
(``openai/clip-vit-large-patch14`` by default) and the same processor calls. It is
computed here from embeddings made once per image, because the same image
embeddings also serve the nearest-real similarities and KID's features
(torchmetrics' class would embed every image again, and its feature call expects
transformers 4's return type).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from diffii_datasets import _checks

__all__ = ["clip_image_embeddings", "clip_score", "clip_text_embeddings", "nearest_real_similarity"]


def _projected(output: Any) -> torch.Tensor:
    """The projected embeddings of ``get_image_features`` / ``get_text_features``.

    transformers 4 returns the tensor, transformers 5 an output whose ``pooler_output`` holds it.
    """
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _unit(features: torch.Tensor) -> torch.Tensor:
    features = features.float().cpu()
    return features / features.norm(p=2, dim=-1, keepdim=True)


@torch.no_grad()
def clip_image_embeddings(models: Any, images: Sequence[Image.Image], *, batch_size: int = 32) -> torch.Tensor:
    """Unit-norm CLIP image embeddings ``[N, d]`` (float32, CPU) of ``images``, ``batch_size`` at a time."""
    _checks.check_int(batch_size, "batch_size", minimum=1)
    width = models.clip.config.projection_dim
    parts = [torch.zeros(0, width)]
    for start in range(0, len(images), batch_size):
        batch = [image.convert("RGB") for image in images[start:start + batch_size]]
        pixels = models.clip_processor(images=batch, return_tensors="pt")["pixel_values"]
        parts.append(_unit(_projected(models.clip.get_image_features(pixel_values=pixels.to(models.device)))))
    return torch.cat(parts)


@torch.no_grad()
def clip_text_embeddings(models: Any, texts: Sequence[str]) -> torch.Tensor:
    """Unit-norm CLIP text embeddings ``[N, d]`` (float32, CPU); texts longer than the context are truncated."""
    tokens = models.clip_processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
    output = models.clip.get_text_features(input_ids=tokens["input_ids"].to(models.device),
                                           attention_mask=tokens["attention_mask"].to(models.device))
    return _unit(_projected(output))


def clip_score(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> float | None:
    """torchmetrics' CLIP score of unit-norm image embeddings ``[N, d]`` against their captions' embeddings.

    ``max(100 * mean_i cos(image_i, text_i), 0)``, with one caption ``[d]`` for
    every image or one per image ``[N, d]``; None when there is no image.
    """
    if image_embeddings.shape[0] == 0:
        return None
    cosine = (image_embeddings.double() * text_embeddings.double()).sum(dim=-1)
    return max(float(100 * cosine.mean()), 0.0)


def nearest_real_similarity(synthetic: torch.Tensor, real_by_class: Sequence[torch.Tensor], class_index: int
                            ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """For each synthetic image of ``class_index``, its CLIP cosine to the nearest real image of its class
    (``own``) and to the nearest real image of any other class (``other``): two ``[N]`` tensors.

    Either is None when there is no real image to compare with (no other class, or an empty class).
    """
    own_real = real_by_class[class_index]
    others = [e for c, e in enumerate(real_by_class) if c != class_index and e.shape[0]]
    if synthetic.shape[0] == 0:
        return None, None
    own = (synthetic.double() @ own_real.double().T).max(dim=1).values if own_real.shape[0] else None
    other = (synthetic.double() @ torch.cat(others).double().T).max(dim=1).values if others else None
    return own, other
