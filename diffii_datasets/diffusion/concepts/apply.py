"""Applying a concept set to a pipeline all-or-nothing, and removing it so the pipeline is exactly as before.

Everything is checked before anything is loaded; what applying changes is
captured first (:class:`_AppliedState`) and kept in a weak registry of the
pipelines a set was applied to, so :func:`remove_concepts` (or a failed
:func:`apply_concepts`) can undo it bit for bit.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from diffii_datasets.diffusion.concepts.lora import check_lora_fits_unet

if TYPE_CHECKING:
    from diffii_datasets.diffusion.concepts.concept_set import ConceptSet

__all__ = ["apply_concepts", "check_pipeline", "check_tokens_free", "preserved_rng", "remove_concepts"]

_MISSING = object()


def apply_concepts(concepts: ConceptSet, pipe: Any) -> None:
    """:meth:`ConceptSet.apply`: check everything, then diffusers' loaders; on any error, nothing is left."""
    check_pipeline(pipe, "pipe", loaders=True)
    adapter = _adapter_name(concepts)
    applied = _APPLIED.setdefault(pipe, {})
    if adapter in applied or adapter in (getattr(pipe.unet, "peft_config", None) or {}):
        raise ValueError(f"this concept set ({adapter}) is already applied to the pipeline")
    width = pipe.text_encoder.get_input_embeddings().weight.shape[-1]
    if width != concepts.embedding_dim:
        raise ValueError(f"concept embeddings are {concepts.embedding_dim} wide but the pipeline's text encoder "
                         f"expects {width}: these concepts were learned for another base model")
    check_tokens_free(pipe.tokenizer, concepts.tokens)
    check_lora_fits_unet(concepts.lora_state_dict, pipe.unet)

    state = _AppliedState.capture(pipe, concepts.tokens)
    try:
        embeddings = [{concepts.class_tokens(i): vectors} for i, vectors in enumerate(concepts.embeddings)]
        with preserved_rng(pipe.text_encoder.device):  # transformers' resize draws from the global RNG
            _make_room(pipe, len(concepts.tokens))
            pipe.load_textual_inversion(embeddings)
        # Into the UNet alone: the pipeline's loader would also look for text-encoder keys, and log that there are
        # none. peft initialises the LoRA layers (from the global RNG) before the weights overwrite them.
        if concepts.lora_state_dict:  # none for tokens learned alone (lora_rank=0)
            with preserved_rng(pipe.unet.device):
                pipe.unet.load_lora_adapter(_diffusers_lora(concepts), prefix="unet", adapter_name=adapter,
                                            _pipeline=pipe)
    except BaseException:
        state.restore_lora(pipe, adapter)
        state.restore_tokens(pipe)
        raise
    applied[adapter] = state


def remove_concepts(concepts: ConceptSet, pipe: Any) -> None:
    """:meth:`ConceptSet.remove`: the tokenizer, embedding matrix and UNet are as they were before applying."""
    adapter = _adapter_name(concepts)
    state = _APPLIED.get(pipe, {}).get(adapter)
    if state is None:
        raise ValueError(f"this concept set ({adapter}) is not applied to the pipeline")
    state.check_restorable(pipe)
    state.restore_lora(pipe, adapter)
    state.restore_tokens(pipe)
    del _APPLIED[pipe][adapter]


def check_pipeline(pipe: Any, name: str, *, loaders: bool) -> None:
    """A Stable Diffusion pipeline with what learning needs, or (``loaders``) what applying needs."""
    needed = ["tokenizer", "text_encoder", "unet"] + ([] if loaders else ["vae", "scheduler"])
    missing = [attr for attr in needed if getattr(pipe, attr, None) is None]
    if missing:
        raise TypeError(f"{name} must be a Stable Diffusion pipeline with {', '.join(needed)}; missing {missing}")
    if loaders and not (all(hasattr(pipe, m) for m in ("load_textual_inversion", "unload_textual_inversion"))
                        and hasattr(pipe.unet, "load_lora_adapter")):
        raise TypeError(f"{name} ({type(pipe).__name__}) lacks diffusers' textual-inversion and LoRA loaders")


def check_tokens_free(tokenizer: Any, tokens: list[str]) -> None:
    """None of ``tokens`` may be in the tokenizer already: a second copy would shadow or collide with it."""
    vocab = tokenizer.get_vocab()
    taken = [token for token in tokens if token in vocab]
    if taken:
        raise ValueError(f"tokens {taken[:6]}{'...' if len(taken) > 6 else ''} already exist in the tokenizer "
                         "(concepts already applied?); remove them first")


@contextmanager
def preserved_rng(device: torch.device | str) -> Iterator[None]:
    """Run a block without disturbing the caller's global torch RNG (CPU and, if used, the CUDA device)."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _make_room(pipe: Any, count: int) -> None:
    """Grow the token embeddings by ``count`` rows without transformers' mean resizing.

    ``load_textual_inversion`` then resizes to this same size, which does nothing, and
    writes every new row: mean resizing would only cost a covariance of the whole
    matrix (and a notice on every run) for rows that are overwritten.
    """
    resize = pipe.text_encoder.resize_token_embeddings
    if "mean_resizing" in inspect.signature(resize).parameters:  # older transformers neither have it nor warn
        resize(len(pipe.tokenizer) + count, mean_resizing=False)


def _adapter_name(concepts: ConceptSet) -> str:
    return f"diffii_concepts_{concepts.identity()}"


def _diffusers_lora(concepts: ConceptSet) -> dict[str, torch.Tensor]:
    """The LoRA exactly as :meth:`ConceptSet.save` writes it (diffusers layout, ``unet.`` prefix)."""
    from diffusers.utils import convert_state_dict_to_diffusers

    converted = convert_state_dict_to_diffusers(dict(concepts.lora_state_dict))
    return {f"unet.{key}": value for key, value in converted.items()}


@dataclass
class _AppliedState:
    """What applying changes, captured beforehand so removing (or a failed apply) can undo it."""

    tokens: list[str]
    tokenizer_len: int
    embedding: nn.Module
    weight_data: torch.Tensor
    num_embeddings: int
    config_vocab_size: int
    model_vocab_size: Any
    adapters_before: list[str]
    active_before: list[str]
    peft_loaded_flag: Any
    requires_grad: list[tuple[nn.Parameter, bool]]  # peft's injection freezes the whole UNet

    @classmethod
    def capture(cls, pipe: Any, tokens: list[str]) -> _AppliedState:
        text_encoder, unet = pipe.text_encoder, pipe.unet
        embedding = text_encoder.get_input_embeddings()
        adapters = list(getattr(unet, "peft_config", None) or {})
        return cls(
            tokens=list(tokens),
            tokenizer_len=len(pipe.tokenizer),
            embedding=embedding,
            weight_data=embedding.weight.data,  # resizing swaps .data; keeping the old tensor restores it bit for bit
            num_embeddings=embedding.num_embeddings,
            config_vocab_size=text_encoder.config.vocab_size,
            model_vocab_size=text_encoder.__dict__.get("vocab_size", _MISSING),
            adapters_before=adapters,
            active_before=list(unet.active_adapters()) if adapters else [],
            peft_loaded_flag=getattr(unet, "_hf_peft_config_loaded", _MISSING),
            requires_grad=[(p, p.requires_grad) for p in unet.parameters()],
        )

    def check_restorable(self, pipe: Any) -> None:
        vocab = pipe.tokenizer.get_vocab()
        ours = [vocab.get(token) for token in self.tokens]
        expected = list(range(self.tokenizer_len, self.tokenizer_len + len(self.tokens)))
        if ours != expected or len(pipe.tokenizer) != self.tokenizer_len + len(self.tokens):
            raise ValueError("the pipeline's tokenizer changed after this concept set was applied "
                             "(other tokens added or removed); remove those first, in reverse order")
        if pipe.text_encoder.get_input_embeddings() is not self.embedding:
            raise ValueError("the pipeline's text-encoder embedding was replaced after this concept set was applied")

    def restore_lora(self, pipe: Any, adapter: str) -> None:
        unet = pipe.unet
        if not self.adapters_before:
            if getattr(unet, "peft_config", None) or any(hasattr(m, "base_layer") for m in unet.modules()):
                unet.unload_lora()  # removes every LoRA wrapper: the original modules are back
            if self.peft_loaded_flag is not _MISSING:
                unet._hf_peft_config_loaded = self.peft_loaded_flag
        elif adapter in (getattr(unet, "peft_config", None) or {}):
            unet.delete_adapters(adapter)
            if self.active_before:
                unet.set_adapter(self.active_before)
        for param, flag in self.requires_grad:
            param.requires_grad_(flag)

    def restore_tokens(self, pipe: Any) -> None:
        tokenizer, text_encoder = pipe.tokenizer, pipe.text_encoder
        vocab = tokenizer.get_vocab()
        added = [token for token in self.tokens if token in vocab]
        if added:
            with preserved_rng(text_encoder.device):  # unload builds a fresh nn.Embedding (random init)
                pipe.unload_textual_inversion(added, tokenizer=tokenizer, text_encoder=text_encoder)
        text_encoder.set_input_embeddings(self.embedding)
        self.embedding.weight.data = self.weight_data
        self.embedding.num_embeddings = self.num_embeddings
        text_encoder.config.vocab_size = self.config_vocab_size
        if self.model_vocab_size is _MISSING:
            text_encoder.__dict__.pop("vocab_size", None)
        else:
            text_encoder.vocab_size = self.model_vocab_size


# Pipelines a concept set was applied to, and what to restore; weak so a dropped pipeline is forgotten.
_APPLIED: weakref.WeakKeyDictionary[Any, dict[str, _AppliedState]] = weakref.WeakKeyDictionary()
