"""Tiny metric networks with random weights, built offline, for the quality measures' tests and the demo.

Like :func:`~diffii_datasets.testing.tiny_pipeline`, these are the real classes
(``transformers.CLIPModel`` and ``CLIPProcessor``, ``lpips.LPIPS``) at a tiny size
or with a random backbone, so every code path runs without a download; the
numbers they give mean nothing about image quality.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["TINY_CLIP_SIZE", "tiny_clip", "tiny_lpips", "tiny_metric_models"]

TINY_CLIP_SIZE = 32
"""The image side the tiny CLIP's processor resizes and crops to."""


def tiny_clip(seed: int = 0) -> tuple[Any, Any]:
    """``(CLIPModel, CLIPProcessor)``: a two-layer CLIP with random weights and the tiny CLIP tokenizer.

    Images are resized and centre-cropped to :data:`TINY_CLIP_SIZE` pixels (8-pixel
    patches); embeddings have 16 dimensions. The same ``seed`` gives the same
    weights; the global RNG is left untouched.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from diffii_datasets.testing import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer()
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 77,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={**tower, "image_size": TINY_CLIP_SIZE, "patch_size": 8},
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    images = CLIPImageProcessor(size={"shortest_edge": TINY_CLIP_SIZE},
                                crop_size={"height": TINY_CLIP_SIZE, "width": TINY_CLIP_SIZE})
    return model, CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def tiny_lpips(seed: int = 0) -> Any:
    """``lpips.LPIPS`` (AlexNet) with its shipped calibrated linear layers and a randomly initialised backbone."""
    import lpips

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision deprecates lpips' `pretrained=` argument
        torch.manual_seed(seed)
        return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()


def tiny_metric_models(seed: int = 0, device: Any = None) -> Any:
    """:class:`~diffii_datasets.quality.QualityModels` of :func:`tiny_clip` and :func:`tiny_lpips`, marked random."""
    from diffii_datasets._pretrained import default_device
    from diffii_datasets.quality.models import QualityModels

    device = default_device(device)
    clip, processor = tiny_clip(seed)
    return QualityModels(
        clip=clip.to(device),
        clip_processor=processor,
        lpips=tiny_lpips(seed).to(device),
        device=device,
        names={"clip": "tiny random-weight CLIP (diffii_datasets.testing.metrics)",
               "lpips": "lpips v0.1 alex, random-weight backbone"},
        random_weights=True,
    )
