"""Captioning images with an image-to-text model through transformers."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._pretrained import default_device, from_pretrained, local_or_hub

__all__ = ["DEFAULT_CAPTIONER", "Captioner"]

logger = logging.getLogger(__name__)

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-large"


class Captioner:
    """An image-captioning model (hub id or directory) through transformers' ``AutoModelForImageTextToText``.

    Greedy decoding, unconditional (no text prompt), batched, shown with tqdm;
    the model is freed after the call.
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_CAPTIONER, *, device: Any = None, batch_size: int = 16,
                 max_new_tokens: int = 40) -> None:
        self.batch_size = _checks.check_int(batch_size, "batch_size", minimum=1)
        self.max_new_tokens = _checks.check_int(max_new_tokens, "max_new_tokens", minimum=1)
        self.model = local_or_hub(model)
        self.device = device

    def caption(self, images: Sequence[Any]) -> list[str]:
        """One caption per image, in order."""
        import torch
        from tqdm.auto import tqdm
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from diffii_datasets.images import to_pil_rgb

        device = default_device(self.device)
        logger.info("captioning %d images with %s on %s", len(images), self.model, device)
        processor = from_pretrained(AutoProcessor, self.model, "captioner", trust_remote_code=False)
        model = from_pretrained(AutoModelForImageTextToText, self.model, "captioner", trust_remote_code=False)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        model = model.to(device=device, dtype=dtype).eval()
        captions: list[str] = []
        try:
            for start in tqdm(range(0, len(images), self.batch_size), desc="captioning", unit="batch"):
                batch = [to_pil_rgb(images[i], name=f"images[{i}]")
                         for i in range(start, min(start + self.batch_size, len(images)))]
                inputs = processor(images=batch, return_tensors="pt").to(device)
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                with torch.inference_mode():
                    output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
                captions += [c.strip() for c in processor.batch_decode(output, skip_special_tokens=True)]
        finally:
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        return captions
