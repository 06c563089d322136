"""Summarising captions with a local instruction-tuned language model through transformers."""

from __future__ import annotations

import logging
import os
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._pretrained import default_device, from_pretrained, local_or_hub
from diffii_datasets.diffusion.suffixes.parsing import summarisation_prompt
from diffii_datasets.diffusion.suffixes.summariser import LanguageModelSummariser

__all__ = ["DEFAULT_SUMMARISER", "LocalLLMSummariser"]

logger = logging.getLogger(__name__)

# Apache-2.0, ungated, native in transformers (no remote code), small enough for one consumer GPU or a CPU.
DEFAULT_SUMMARISER = "Qwen/Qwen2.5-1.5B-Instruct"


class LocalLLMSummariser(LanguageModelSummariser):
    """A local instruction-tuned causal LM (hub id or directory) through transformers, greedy decoding.

    Uses the tokenizer's chat template when it has one. The captions shown are the
    most frequent ``max_captions`` distinct ones, fewer if the prompt would not
    fit the model's context. The model is freed after the call.
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_SUMMARISER, *, device: Any = None,
                 max_new_tokens: int = 256, max_captions: int = 200) -> None:
        super().__init__(max_captions)
        self.model = local_or_hub(model)
        self.device = device
        self.max_new_tokens = _checks.check_int(max_new_tokens, "max_new_tokens", minimum=1)

    def spec(self) -> str:
        return f"llm:{self.model}"

    def _encode(self, tokenizer: Any, prompt: str) -> Any:
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}]
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        return tokenizer(prompt, return_tensors="pt")

    def _answer(self, captions: list[str], metaclass: str, max_suffixes: int) -> str:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = default_device(self.device)
        logger.info("summarising %d distinct captions with %s on %s", len(captions), self.model, device)
        tokenizer = from_pretrained(AutoTokenizer, self.model, "summariser", trust_remote_code=False)
        model = from_pretrained(AutoModelForCausalLM, self.model, "summariser", trust_remote_code=False)
        dtype = torch.float32
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = model.to(device=device, dtype=dtype).eval()
        context = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        try:
            inputs = self._encode(tokenizer, summarisation_prompt(captions, metaclass, max_suffixes))
            while inputs["input_ids"].shape[1] + self.max_new_tokens > context and len(captions) > 1:
                captions = captions[: len(captions) // 2]
                inputs = self._encode(tokenizer, summarisation_prompt(captions, metaclass, max_suffixes))
                logger.info("prompt too long for %s's context of %d tokens; keeping %d captions",
                            self.model, context, len(captions))
            inputs = {k: v.to(device) for k, v in inputs.items()}
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            with torch.inference_mode():
                output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                        pad_token_id=pad)
            return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        finally:
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
