"""Category concepts (paper Sec. 3.1): per-class placeholder tokens plus one LoRA shared by all classes.

:func:`learn_concepts` trains them on a pipeline (noise-prediction MSE on
``"a photo of a <tokens> <metaclass>"``, the released Diff-Mix/Diff-II recipe),
resumably, and returns a :class:`ConceptSet`. A concept set saves as files that
plain diffusers loads (``pipe.load_textual_inversion`` / ``pipe.load_lora_weights``),
applies itself to a pipeline all-or-nothing and removes itself again.

Token naming follows the released concepts and diffusers' multi-vector textual
inversion: class ``i`` owns ``<class_i>`` and, with several vectors per class,
``<class_i>_1``, ``<class_i>_2``, ...
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.hashing import fingerprint, image_digest
from diffii_datasets.images import to_pil_rgb, to_rgb_tensor

__all__ = [
    "LORA_TARGET_MODULES",
    "ConceptConfig",
    "ConceptSet",
    "class_token",
    "learn_concepts",
]

logger = logging.getLogger(__name__)

LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
"""UNet attention projections that get LoRA (self- and cross-attention), as in the released concepts."""

NEUTRAL_INIT_WORD = "the"
"""Initialiser for classes whose name contains no word the tokenizer knows as a single token."""

CONCEPTS_FILE = "concepts.json"
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
EMBEDS_DIR = "learned_embeds"
CHECKPOINT_FILE = "concepts-checkpoint.json"
_FORMAT = "diffii-concepts"
_CHECKPOINT_FORMAT = "diffii-concepts-checkpoint"
_VERSION = 1
_TRAIN_ADAPTER = "diffii_concepts_training"
_LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


def class_token(class_index: int) -> str:
    """The placeholder token of class ``class_index``: ``<class_{i}>``, as in the released concepts."""
    return f"<class_{class_index}>"


def _class_token_list(class_index: int, tokens_per_class: int) -> list[str]:
    """All tokens of one class, named the way diffusers expands a multi-vector embedding."""
    token = class_token(class_index)
    return [token] + [f"{token}_{j}" for j in range(1, tokens_per_class)]


# ----------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ConceptConfig:
    """Concept-learning knobs; the defaults are the released recipe.

    The released concepts were trained for 35,000 steps at batch 2 per GPU on 4 GPUs
    (so an effective batch of 8), fp16, AdamW with lr 5e-5 for both the LoRA and the
    embeddings, weight decay 1e-2, a constant schedule and random horizontal flips.
    ``mixed_precision`` only takes effect on CUDA (bf16 where supported, else fp16 with
    loss scaling); ``gradient_checkpointing`` trades UNet compute for memory.
    ``resolution=None`` uses the pipeline's own (``unet.config.sample_size * vae_scale_factor``).
    """

    train_steps: int = 35000
    batch_size: int = 8
    tokens_per_class: int = 1
    lora_rank: int = 10
    learning_rate: float = 5e-5
    weight_decay: float = 1e-2
    checkpoint_steps: int = 5000
    gradient_checkpointing: bool = False
    mixed_precision: bool = True
    resolution: int | None = None
    lora_target_modules: tuple[str, ...] = LORA_TARGET_MODULES

    def __post_init__(self) -> None:
        for name in ("train_steps", "batch_size", "tokens_per_class", "lora_rank", "checkpoint_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ConceptConfig.{name} must be a positive int, got {value!r}")
        for name, low in (("learning_rate", "positive"), ("weight_decay", "non-negative")):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (low == "positive" and value == 0):
                raise ValueError(f"ConceptConfig.{name} must be a {low} finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("gradient_checkpointing", "mixed_precision"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ConceptConfig.{name} must be a bool, got {getattr(self, name)!r}")
        res = self.resolution
        if res is not None and (isinstance(res, bool) or not isinstance(res, int) or res < 8 or res % 8):
            raise ValueError(f"ConceptConfig.resolution must be None or a positive multiple of 8, got {res!r}")
        targets = self.lora_target_modules
        if (isinstance(targets, str) or not isinstance(targets, Sequence) or not targets
                or not all(isinstance(t, str) and t.strip() for t in targets)):
            raise ValueError(f"ConceptConfig.lora_target_modules must be a non-empty sequence of module names, "
                             f"got {targets!r}")
        object.__setattr__(self, "lora_target_modules", tuple(targets))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of the fields."""
        data = dataclasses.asdict(self)
        data["lora_target_modules"] = list(self.lora_target_modules)
        return data


# ----------------------------------------------------------------------------------------------------------------------
# The concept set


class ConceptSet:
    """Learned concepts: ``embeddings[i]`` holds class ``i``'s token vectors, ``lora_state_dict`` the shared LoRA.

    ``lora_state_dict`` uses PEFT's key layout without adapter name, as
    ``peft.get_peft_model_state_dict`` returns it, e.g.
    ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight``; the
    LoRA scale is 1 (``lora_alpha == rank``), like the released attention processors.
    Treat both as read-only: :meth:`identity` hashes them.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        metaclass: str,
        embeddings: torch.Tensor,
        lora_state_dict: Mapping[str, torch.Tensor],
    ) -> None:
        self.class_names = _check_class_names(class_names)
        if not isinstance(metaclass, str):
            raise TypeError(f"metaclass must be a str, got {type(metaclass).__name__}")
        self.metaclass = metaclass.strip()
        if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point() or embeddings.ndim != 3:
            raise ValueError("embeddings must be a floating-point tensor [num_classes, tokens_per_class, dim], got "
                             f"{getattr(embeddings, 'shape', type(embeddings).__name__)}")
        if embeddings.shape[0] != len(self.class_names) or 0 in embeddings.shape:
            raise ValueError(f"embeddings must hold {len(self.class_names)} classes with at least one vector each, "
                             f"got shape {tuple(embeddings.shape)}")
        if not torch.isfinite(embeddings).all():
            raise ValueError("embeddings contain NaN or infinite values")
        self.embeddings = embeddings.detach().to("cpu", torch.float32).contiguous().clone()
        self.lora_state_dict = _check_lora_state_dict(lora_state_dict, "lora_state_dict")

    # -- names --------------------------------------------------------------------------------------------------------
    @property
    def tokens_per_class(self) -> int:
        return self.embeddings.shape[1]

    @property
    def embedding_dim(self) -> int:
        return self.embeddings.shape[2]

    @property
    def lora_rank(self) -> int:
        return next(v.shape[0] for k, v in self.lora_state_dict.items() if k.endswith(".lora_A.weight"))

    @property
    def tokens(self) -> list[str]:
        """Every placeholder token, class by class, in the order they are added to a tokenizer."""
        return [t for i in range(len(self.class_names)) for t in _class_token_list(i, self.tokens_per_class)]

    def class_tokens(self, class_index: int) -> str:
        """The token to put in prompts for a pipeline this set is applied to: ``"<class_0>"``.

        This is diffusers' textual-inversion convention: with several vectors per class
        the pipeline's ``encode_prompt`` (``maybe_convert_prompt``) expands ``<class_0>``
        into ``<class_0> <class_0>_1 ...`` itself, so prompts never carry the expansion.
        """
        if isinstance(class_index, bool) or not isinstance(class_index, int):
            raise TypeError(f"class_index must be an int, got {type(class_index).__name__}")
        if not 0 <= class_index < len(self.class_names):
            raise ValueError(f"class_index must be in [0, {len(self.class_names)}), got {class_index}")
        return class_token(class_index)

    def prompt(self, class_index: int, suffix: str | None = None) -> str:
        """``"a photo of a <tokens> <metaclass>[ <suffix>.]"`` for class ``class_index``."""
        return build_prompt(self.class_tokens(class_index), self.metaclass, suffix)

    def identity(self) -> str:
        """Stable content hash (names, metaclass, every tensor), for store fingerprints."""
        lora = {key: _tensor_digest(value) for key, value in self.lora_state_dict.items()}
        return fingerprint({
            "format": _FORMAT,
            "version": _VERSION,
            "class_names": self.class_names,
            "metaclass": self.metaclass,
            "embeddings": _tensor_digest(self.embeddings),
            "lora": lora,
        })

    def __repr__(self) -> str:
        return (f"ConceptSet(classes={len(self.class_names)}, metaclass={self.metaclass!r}, "
                f"tokens_per_class={self.tokens_per_class}, dim={self.embedding_dim}, lora_rank={self.lora_rank})")

    # -- files --------------------------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> None:
        """Write diffusers-native files, then ``concepts.json`` last (its presence marks a complete save).

        - ``pytorch_lora_weights.safetensors``: written by diffusers' ``save_lora_weights``
          (keys converted with ``convert_state_dict_to_diffusers``), loads with ``pipe.load_lora_weights(directory)``.
        - ``learned_embeds/class_{i}.safetensors``: one textual-inversion file per class,
          ``{"<class_i>": tensor[tokens_per_class, dim]}``, loads with ``pipe.load_textual_inversion``.
        - ``concepts.json``: class names, tokens, metaclass and the files' SHA-256.
        """
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONCEPTS_FILE).unlink(missing_ok=True)  # an interrupted save must not look complete
        (directory / EMBEDS_DIR).mkdir(exist_ok=True)
        for stale in (directory / EMBEDS_DIR).glob("*.safetensors"):  # a glob over the folder must see only this set
            stale.unlink()
        embed_files = []
        for i in range(len(self.class_names)):
            relative = f"{EMBEDS_DIR}/class_{i}.safetensors"
            safetensors.torch.save_file({class_token(i): self.embeddings[i].clone()}, directory / relative)
            embed_files.append(relative)
        StableDiffusionPipeline.save_lora_weights(
            directory, unet_lora_layers=convert_state_dict_to_diffusers(dict(self.lora_state_dict)),
            weight_name=LORA_FILE,
        )
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "class_names": self.class_names,
            "metaclass": self.metaclass,
            "tokens_per_class": self.tokens_per_class,
            "embedding_dim": self.embedding_dim,
            "lora_rank": self.lora_rank,
            "class_tokens": [class_token(i) for i in range(len(self.class_names))],
            "embedding_files": embed_files,
            "lora_file": LORA_FILE,
            "sha256": {name: _file_sha256(directory / name) for name in embed_files + [LORA_FILE]},
            "identity": self.identity(),
        }
        _atomic_write(directory / CONCEPTS_FILE, json.dumps(manifest, indent=2).encode("utf-8"))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ConceptSet:
        """Read a directory written by :meth:`save`; missing, truncated or altered files raise ``ValueError``."""
        from diffusers.utils import convert_unet_state_dict_to_peft

        directory = Path(directory)
        manifest_path = directory / CONCEPTS_FILE
        if not manifest_path.is_file():
            raise ValueError(f"{directory} holds no saved concept set: {CONCEPTS_FILE} is missing "
                             "(the save was interrupted, or this is not a concept directory)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
                raise ValueError(f"format {manifest.get('format')!r} version {manifest.get('version')!r}")
            names, metaclass = manifest["class_names"], manifest["metaclass"]
            embed_files, lora_file, digests = manifest["embedding_files"], manifest["lora_file"], manifest["sha256"]
            if not (isinstance(embed_files, list) and isinstance(lora_file, str) and isinstance(digests, dict)):
                raise ValueError("embedding_files, lora_file or sha256 has the wrong type")
            if len(embed_files) != len(names):
                raise ValueError(f"{len(embed_files)} embedding files for {len(names)} classes")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{manifest_path} is not a valid {_FORMAT} v{_VERSION} manifest: {error}") from error
        for name in embed_files + [lora_file]:
            path = directory / name
            if not path.is_file():
                raise ValueError(f"concept file {path} is missing")
            if _file_sha256(path) != digests.get(name):
                raise ValueError(f"concept file {path} is corrupt or truncated (SHA-256 differs from {CONCEPTS_FILE})")
        vectors = []
        for i, name in enumerate(embed_files):
            tensors = _load_safetensors(directory / name)
            if list(tensors) != [class_token(i)]:
                raise ValueError(f"{directory / name} must hold exactly the key {class_token(i)!r}, "
                                 f"got {list(tensors)}")
            vectors.append(tensors[class_token(i)].reshape(-1, tensors[class_token(i)].shape[-1]))
        if len({tuple(v.shape) for v in vectors}) != 1:
            raise ValueError(f"embedding files in {directory / EMBEDS_DIR} have different shapes")
        lora = _load_safetensors(directory / lora_file)
        if not all(key.startswith("unet.") for key in lora):
            raise ValueError(f"{directory / lora_file} must hold only UNet LoRA keys ('unet.' prefix)")
        lora = convert_unet_state_dict_to_peft({key.removeprefix("unet."): value for key, value in lora.items()})
        return cls(names, metaclass, torch.stack(vectors), lora)

    # -- pipelines ----------------------------------------------------------------------------------------------------
    def apply(self, pipe: Any) -> None:
        """Load the tokens and the LoRA into ``pipe`` with diffusers' own loaders; on any error, nothing is left.

        Checks everything first (embedding width, free token names, every LoRA target
        module present with matching shapes), then calls ``pipe.load_textual_inversion``
        and ``pipe.load_lora_weights`` (adapter named after :meth:`identity`).
        """
        _check_pipeline(pipe, "pipe", loaders=True)
        adapter = self._adapter_name()
        applied = _APPLIED.setdefault(pipe, {})
        if adapter in applied or adapter in (getattr(pipe.unet, "peft_config", None) or {}):
            raise ValueError(f"this concept set ({adapter}) is already applied to the pipeline")
        width = pipe.text_encoder.get_input_embeddings().weight.shape[-1]
        if width != self.embedding_dim:
            raise ValueError(f"concept embeddings are {self.embedding_dim} wide but the pipeline's text encoder "
                             f"expects {width}: these concepts were learned for another base model")
        _check_tokens_free(pipe.tokenizer, self.tokens)
        _check_lora_fits_unet(self.lora_state_dict, pipe.unet)

        state = _AppliedState.capture(pipe, self.tokens)
        try:
            embeddings = [{class_token(i): vectors} for i, vectors in enumerate(self.embeddings)]
            with _preserved_rng(pipe.text_encoder.device):  # transformers' resize draws from the global RNG
                pipe.load_textual_inversion(embeddings)
            pipe.load_lora_weights(self._diffusers_lora(), adapter_name=adapter)
        except BaseException:
            state.restore_lora(pipe, adapter)
            state.restore_tokens(pipe)
            raise
        applied[adapter] = state

    def remove(self, pipe: Any) -> None:
        """Undo :meth:`apply`: the tokenizer, embedding matrix and UNet are as they were before it."""
        adapter = self._adapter_name()
        state = _APPLIED.get(pipe, {}).get(adapter)
        if state is None:
            raise ValueError(f"this concept set ({adapter}) is not applied to the pipeline")
        state.check_restorable(pipe)
        state.restore_lora(pipe, adapter)
        state.restore_tokens(pipe)
        del _APPLIED[pipe][adapter]

    def _adapter_name(self) -> str:
        return f"diffii_concepts_{self.identity()}"

    def _diffusers_lora(self) -> dict[str, torch.Tensor]:
        """The LoRA exactly as :meth:`save` writes it (diffusers layout, ``unet.`` prefix)."""
        from diffusers.utils import convert_state_dict_to_diffusers

        converted = convert_state_dict_to_diffusers(dict(self.lora_state_dict))
        return {f"unet.{key}": value for key, value in converted.items()}


# Pipelines a concept set was applied to, and what to restore; weak so a dropped pipeline is forgotten.
_APPLIED: weakref.WeakKeyDictionary[Any, dict[str, _AppliedState]] = weakref.WeakKeyDictionary()


@dataclass
class _AppliedState:
    """What :meth:`ConceptSet.apply` changes, captured beforehand so :meth:`ConceptSet.remove` can undo it."""

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
            with _preserved_rng(text_encoder.device):  # unload builds a fresh nn.Embedding (random init)
                pipe.unload_textual_inversion(added, tokenizer=tokenizer, text_encoder=text_encoder)
        text_encoder.set_input_embeddings(self.embedding)
        self.embedding.weight.data = self.weight_data
        self.embedding.num_embeddings = self.num_embeddings
        text_encoder.config.vocab_size = self.config_vocab_size
        if self.model_vocab_size is _MISSING:
            text_encoder.__dict__.pop("vocab_size", None)
        else:
            text_encoder.vocab_size = self.model_vocab_size


_MISSING = object()


# ----------------------------------------------------------------------------------------------------------------------
# Learning


def learn_concepts(
    pipe: Any,
    images_by_class: Sequence[Sequence[Any]],
    class_names: Sequence[str],
    metaclass: str,
    config: ConceptConfig = ConceptConfig(),
    *,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    data_parallel: bool = False,
) -> ConceptSet:
    """Learn ``config.tokens_per_class`` tokens per class and a shared UNet LoRA; ``pipe`` is left as it was.

    Images are anything :func:`diffii_datasets.images.to_rgb_tensor` accepts; each one
    and its mirror image are VAE-encoded once (posterior mean) and reused every step.
    Tokens start from a word of the class name the tokenizer knows as one token (the
    last ones when there are several), else from :data:`NEUTRAL_INIT_WORD`. Only the new
    token vectors and the LoRA are trained; no other row of the embedding matrix exists
    in the optimizer. With ``work_dir``, a checkpoint is written every
    ``config.checkpoint_steps`` steps and at the end, and a later call with the same
    inputs resumes from it and reaches bit for bit the weights of an uninterrupted run
    (on CPU). ``callback(step, loss)`` runs after every step (and after that step's checkpoint).

    ``data_parallel=True`` trains with every rank of the initialised ``torch.distributed``
    process group (``torchrun``), each of which must call this with the same arguments:
    all ranks draw the same global batch of ``config.batch_size`` from the shared seed,
    each computes the loss of its contiguous share of it, and the gradients of the
    trainable weights are summed across ranks before every optimizer step. Every rank
    ends with the same weights, equal to a single-process run's up to floating-point
    summation order. Only rank 0 shows progress and writes checkpoints; ``work_dir``
    must be one directory that every rank sees.
    """
    if not isinstance(config, ConceptConfig):
        raise TypeError(f"config must be a ConceptConfig, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    _check_pipeline(pipe, "pipe", loaders=False)
    shard = _data_parallel_shard(data_parallel)
    names = _check_class_names(class_names)
    if not isinstance(metaclass, str):
        raise TypeError(f"metaclass must be a str, got {type(metaclass).__name__}")
    images = _check_images(images_by_class, names)
    n_vectors = config.tokens_per_class
    token_lists = [_class_token_list(i, n_vectors) for i in range(len(names))]
    _check_tokens_free(pipe.tokenizer, [t for tokens in token_lists for t in tokens])
    if getattr(pipe.unet, "peft_config", None):
        raise ValueError(f"pipe.unet already has LoRA adapters {list(pipe.unet.peft_config)}; "
                         "remove them (ConceptSet.remove / pipe.unload_lora_weights) before learning concepts")
    _check_lora_targets(pipe.unet, config.lora_target_modules)
    prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"pipe.scheduler predicts {prediction_type!r}; concept learning supports "
                         "'epsilon' and 'v_prediction'")
    resolution = config.resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor

    run_id = fingerprint({
        # train_steps, checkpoint_steps and gradient_checkpointing do not change the trajectory
        "config": {k: v for k, v in config.to_dict().items()
                   if k not in ("train_steps", "checkpoint_steps", "gradient_checkpointing")},
        "resolution": resolution,
        "class_names": names,
        "metaclass": metaclass,
        "seed": seed,
        "images": [[image_digest(to_pil_rgb(image, name=f"images_by_class[{c}][{j}]"))
                    for j, image in enumerate(class_images)] for c, class_images in enumerate(images)],
        "pipeline": _pipeline_probe(pipe),
    })
    checkpoint = _read_checkpoint(Path(work_dir), run_id) if work_dir is not None else None
    if shard.world_size > 1:
        # Every rank read the checkpoint before any rank trains (and so writes a newer one).
        shard.check_same_start(checkpoint.step if checkpoint is not None else 0, pipe.unet.device, work_dir)
    if checkpoint is not None and checkpoint.step > config.train_steps:
        raise ValueError(f"the checkpoint in {work_dir} is at step {checkpoint.step}, past "
                         f"config.train_steps={config.train_steps}; use a fresh work_dir")
    if checkpoint is not None and checkpoint.step == config.train_steps:
        logger.info("concept learning already finished in %s; returning the final checkpoint", work_dir)
        return _concept_set_from_tensors(checkpoint.tensors, names, metaclass, n_vectors)

    progress = progress and shard.rank == 0
    with _borrowed_pipeline(pipe) as (text_encoder, unet):
        trainer = _Trainer(pipe, text_encoder, unet, names, metaclass, token_lists, config, seed, resolution, shard)
        start = 0
        if checkpoint is not None:
            trainer.load_state(checkpoint)
            start = checkpoint.step
            logger.info("resuming concept learning from step %d (%s)", start, work_dir)
        trainer.encode_images(images, progress)
        bar = tqdm(range(start + 1, config.train_steps + 1), initial=start, total=config.train_steps,
                   desc="Learning concepts", disable=not progress)
        for step in bar:
            loss = trainer.step()
            bar.set_postfix(loss=f"{loss:.4f}")
            if (work_dir is not None and shard.rank == 0
                    and (step % config.checkpoint_steps == 0 or step == config.train_steps)):
                _write_checkpoint(Path(work_dir), run_id, step, trainer.state_tensors(), trainer.scaler_state())
            if callback is not None:
                callback(step, loss)
        if shard.world_size > 1:
            shard.wait_for_all(pipe.unet.device)  # rank 0's last checkpoint is written before any rank returns
        return _concept_set_from_tensors(trainer.state_tensors(), names, metaclass, n_vectors)


@dataclass(frozen=True)
class _Shard:
    """This process's part of every training batch: rank ``rank`` of ``world_size`` (``0`` of ``1`` alone)."""

    rank: int = 0
    world_size: int = 1

    def rows(self, batch_size: int) -> torch.Tensor:
        """The batch rows this rank computes: a contiguous share, empty when ranks outnumber rows."""
        return torch.arange(batch_size).tensor_split(self.world_size)[self.rank]

    def check_same_start(self, step: int, device: torch.device, work_dir: Any) -> None:
        steps = torch.tensor([step, -step], device=device)
        dist.all_reduce(steps, op=dist.ReduceOp.MAX)
        if steps[0].item() != -steps[1].item():
            raise RuntimeError(f"the ranks found different concept-learning checkpoints (steps {-steps[1].item()} to "
                               f"{steps[0].item()}) in work_dir={work_dir}: it must be one directory all ranks see")

    def wait_for_all(self, device: torch.device) -> None:
        """A barrier on the process group's own backend (a one-element all-reduce on ``device``)."""
        dist.all_reduce(torch.zeros(1, device=device))

    def all_reduce(self, params: Sequence[nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """Sum every trainable weight's gradient and the loss over the ranks, in one collective.

        A rank without rows (or whose rows left a weight without gradient) contributes
        zeros, and every rank ends with the same gradient on every weight, so all
        optimizers take the same step.
        """
        parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
        flat = torch.cat([*parts, loss.detach().reshape(1).to(parts[0])])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        sizes = [p.numel() for p in params]
        for param, grad in zip(params, flat[:-1].split(sizes)):
            param.grad = grad.view_as(param).clone()
        return flat[-1]


def _data_parallel_shard(data_parallel: bool) -> _Shard:
    if not isinstance(data_parallel, bool):
        raise TypeError(f"data_parallel must be a bool, got {type(data_parallel).__name__}")
    if not data_parallel:
        return _Shard()
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("data_parallel=True needs an initialised torch.distributed process group "
                         "(launch with torchrun and call torch.distributed.init_process_group first)")
    return _Shard(dist.get_rank(), dist.get_world_size())


class _PlaceholderEmbedding(nn.Module):
    """The text encoder's token embedding plus trainable rows for ids ``>= first_id``.

    The original matrix is only read, so no other row can change, and the optimizer
    (and its weight decay) sees nothing but the placeholder vectors.
    """

    def __init__(self, base: nn.Module, first_id: int, init: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.first_id = first_id
        self.placeholders = nn.Parameter(init)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_new = input_ids >= self.first_id
        base = self.base(input_ids.masked_fill(is_new, 0))
        new = F.embedding((input_ids - self.first_id).clamp(min=0), self.placeholders)
        return torch.where(is_new.unsqueeze(-1), new.to(base.dtype), base)


class _Trainer:
    """One concept-learning run: placeholder rows + LoRA, AdamW, one private RNG stream (CPU generator)."""

    def __init__(self, pipe, text_encoder, unet, names, metaclass, token_lists, config, seed, resolution,
                 shard: _Shard) -> None:
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        self.pipe, self.text_encoder, self.unet, self.config = pipe, text_encoder, unet, config
        self.resolution = resolution
        self.shard = shard
        self.device = unet.device
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.num_timesteps = self.noise_scheduler.config.num_train_timesteps

        # Tokens live in a private copy of the tokenizer: pipe.tokenizer is never touched.
        tokenizer = copy.deepcopy(pipe.tokenizer)
        first_id = len(tokenizer)
        flat_tokens = [t for tokens in token_lists for t in tokens]
        tokenizer.add_tokens(flat_tokens)
        ids = tokenizer.convert_tokens_to_ids(flat_tokens)
        if ids != list(range(first_id, first_id + len(flat_tokens))):
            raise RuntimeError(f"the tokenizer gave the new tokens ids {ids[:4]}..., not consecutive from {first_id}")
        base = text_encoder.get_input_embeddings()
        init_ids = [_init_token_id(pipe.tokenizer, name, len(tokens)) for name, tokens in zip(names, token_lists)]
        init = base.weight.detach()[torch.tensor([i for row in init_ids for i in row], device=base.weight.device)]
        self.embedding = _PlaceholderEmbedding(base, first_id, init.float().clone())
        text_encoder.set_input_embeddings(self.embedding)
        prompts = [build_prompt(" ".join(tokens), metaclass) for tokens in token_lists]
        self.prompt_ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                                    truncation=True, return_tensors="pt").input_ids
        for c, row in enumerate(self.prompt_ids):
            if not set(ids[c * len(token_lists[c]):(c + 1) * len(token_lists[c])]) <= set(row.tolist()):
                raise ValueError(f"the prompt of class {names[c]!r} is longer than the tokenizer's "
                                 f"{tokenizer.model_max_length} tokens: {prompts[c]!r}")
        self.prompt_ids = self.prompt_ids.to(self.device)

        # LoRA through peft; its initial weights come from the seed and leave the global RNG alone.
        with _preserved_rng(self.device):
            torch.manual_seed(seed)
            unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_rank, init_lora_weights="gaussian",
                                        target_modules=list(config.lora_target_modules)), _TRAIN_ADAPTER)
        self.lora = {name.replace(f".{_TRAIN_ADAPTER}.", "."): param
                     for name, param in sorted(unet.named_parameters()) if param.requires_grad}
        for param in self.lora.values():
            param.data = param.data.float()  # trainable weights in fp32 even in an fp16 pipeline
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        self.params = [self.embedding.placeholders, *self.lora.values()]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(seed)

        self.amp_dtype = None
        if config.mixed_precision and self.device.type == "cuda":
            if unet.dtype in (torch.float16, torch.bfloat16):
                self.amp_dtype = unet.dtype  # a half-precision pipeline: compute in its own dtype
            else:
                self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.latents: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    @torch.no_grad()
    def encode_images(self, images: list[list[Any]], progress: bool) -> None:
        """VAE-encode every image and its mirror image once: ``latents[flip, index]``, kept on the CPU."""
        vae = self.pipe.vae
        flat = [(c, j, image) for c, class_images in enumerate(images) for j, image in enumerate(class_images)]
        chunks = []
        batch = self.config.batch_size
        for start in tqdm(range(0, len(flat), batch), desc="Encoding images", disable=not progress):
            pixels = torch.stack([
                _resize(to_rgb_tensor(image, name=f"images_by_class[{c}][{j}]"), self.resolution)
                for c, j, image in flat[start:start + batch]
            ])
            pixels = torch.cat([pixels, pixels.flip(-1)]).to(self.device, vae.dtype) * 2 - 1
            latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
            chunks.append(latents.float().cpu().unflatten(0, (2, -1)))
        self.latents = torch.cat(chunks, dim=1)
        self.labels = torch.tensor([c for c, _, _ in flat])

    def step(self) -> float:
        config, gen = self.config, self.generator
        # The whole batch is drawn on every rank (same stream), so data-parallel runs draw what one process would.
        index = torch.randint(self.latents.shape[1], (config.batch_size,), generator=gen)
        flip = torch.randint(2, (config.batch_size,), generator=gen)
        timesteps = torch.randint(0, self.num_timesteps, (config.batch_size,), generator=gen)
        noise = torch.randn((config.batch_size, *self.latents.shape[2:]), generator=gen)
        if self.shard.world_size > 1:
            rows = self.shard.rows(config.batch_size)
            index, flip, timesteps, noise = index[rows], flip[rows], timesteps[rows], noise[rows]
        loss = self._loss(index, flip, timesteps, noise) if len(index) else torch.zeros((), device=self.device)
        if self.shard.world_size > 1:
            loss = loss * (len(index) / config.batch_size)  # the ranks' shares sum to the batch mean
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        if scaled.requires_grad:  # a rank without rows has nothing to differentiate
            scaled.backward()
        if self.shard.world_size > 1:
            loss = self.shard.all_reduce(self.params, loss)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def _loss(self, index: torch.Tensor, flip: torch.Tensor, timesteps: torch.Tensor,
              noise: torch.Tensor) -> torch.Tensor:
        """Noise-prediction MSE of the given rows (latent ``index``, mirrored or not, at ``timesteps``)."""
        latents = self.latents[flip, index]
        latents, noise, timesteps = latents.to(self.device), noise.to(self.device), timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        target = noise if self.noise_scheduler.config.prediction_type == "epsilon" else \
            self.noise_scheduler.get_velocity(latents, noise, timesteps)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            hidden = self.text_encoder(self.prompt_ids[self.labels[index].to(self.device)])[0]
            prediction = self.unet(noisy.to(self.unet.dtype), timesteps, encoder_hidden_states=hidden).sample
        return F.mse_loss(prediction.float(), target.float())

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a resume needs, as CPU tensors: weights, optimizer moments, RNG state."""
        tensors = {"placeholders": self.embedding.placeholders.detach().cpu().clone()}
        tensors.update({f"lora.{key}": p.detach().float().cpu().clone() for key, p in self.lora.items()})
        for index, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
        tensors["rng"] = self.generator.get_state().clone()
        return tensors

    def scaler_state(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state(self, checkpoint: _Checkpoint) -> None:
        tensors = checkpoint.tensors
        expected = {"placeholders", "rng", *(f"lora.{key}" for key in self.lora)}
        if not expected <= set(tensors) or tensors["placeholders"].shape != self.embedding.placeholders.shape:
            raise ValueError(f"checkpoint {checkpoint.path} does not match this run's tokens or LoRA layout")
        with torch.no_grad():
            self.embedding.placeholders.copy_(tensors["placeholders"])
            for key, param in self.lora.items():
                if tensors[f"lora.{key}"].shape != param.shape:
                    raise ValueError(f"checkpoint {checkpoint.path}: {key} has shape "
                                     f"{tuple(tensors[f'lora.{key}'].shape)}, expected {tuple(param.shape)}")
                param.copy_(tensors[f"lora.{key}"])
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": self.optimizer.state_dict()["param_groups"]})
        self.generator.set_state(tensors["rng"])
        if self.scaler is not None and checkpoint.scaler is not None:
            self.scaler.load_state_dict(checkpoint.scaler)


def _concept_set_from_tensors(tensors: Mapping[str, torch.Tensor], names: list[str], metaclass: str,
                              n_vectors: int) -> ConceptSet:
    placeholders = tensors["placeholders"].float()
    lora = {key.removeprefix("lora."): value for key, value in tensors.items() if key.startswith("lora.")}
    return ConceptSet(names, metaclass, placeholders.reshape(len(names), n_vectors, -1), lora)


@contextmanager
def _borrowed_pipeline(pipe: Any) -> Iterator[tuple[nn.Module, nn.Module]]:
    """Lend the pipeline's modules to training and put everything back afterwards, even on error."""
    text_encoder, unet = pipe.text_encoder, pipe.unet
    modules = [m for m in (text_encoder, unet, pipe.vae) if isinstance(m, nn.Module)]
    requires_grad = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    embedding = text_encoder.get_input_embeddings()
    checkpointing = bool(getattr(unet, "is_gradient_checkpointing", False))
    peft_flag = getattr(unet, "_hf_peft_config_loaded", _MISSING)
    for module in modules:
        module.requires_grad_(False)
    try:
        yield text_encoder, unet
    finally:
        text_encoder.set_input_embeddings(embedding)
        if getattr(unet, "peft_config", None):
            unet.unload_lora()
        if peft_flag is not _MISSING:
            unet._hf_peft_config_loaded = peft_flag
        if bool(getattr(unet, "is_gradient_checkpointing", False)) != checkpointing:
            unet.disable_gradient_checkpointing()
        for param, flag in requires_grad:
            param.requires_grad_(flag)


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints


@dataclass
class _Checkpoint:
    path: Path
    step: int
    tensors: dict[str, torch.Tensor]
    scaler: dict[str, Any] | None


def _write_checkpoint(work_dir: Path, run_id: str, step: int, tensors: dict[str, torch.Tensor],
                      scaler: dict[str, Any] | None) -> None:
    """Tensors first, then the JSON that points at them; each written to a temp file, fsynced and renamed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    name = f"concepts-checkpoint-{step:08d}.safetensors"
    payload = safetensors.torch.save(tensors)
    _atomic_write(work_dir / name, payload)
    state = {
        "format": _CHECKPOINT_FORMAT,
        "version": _VERSION,
        "run": run_id,
        "step": step,
        "tensors": name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "grad_scaler": scaler,
    }
    _atomic_write(work_dir / CHECKPOINT_FILE, json.dumps(state, indent=2).encode("utf-8"))
    for old in work_dir.glob("concepts-checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _read_checkpoint(work_dir: Path, run_id: str) -> _Checkpoint | None:
    path = work_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != _CHECKPOINT_FORMAT or state.get("version") != _VERSION:
            raise ValueError(f"format {state.get('format')!r} version {state.get('version')!r}")
        step, tensor_name, digest = int(state["step"]), str(state["tensors"]), state["sha256"]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a valid concept-learning checkpoint ({error}); delete it to start over") \
            from error
    if state.get("run") != run_id:
        raise ValueError(f"{path} belongs to a different concept-learning run (other images, classes, settings, "
                         "seed or base model); use another work_dir or delete the checkpoint")
    tensor_path = work_dir / tensor_name
    payload = tensor_path.read_bytes() if tensor_path.is_file() else b""
    if hashlib.sha256(payload).hexdigest() != digest:
        raise ValueError(f"checkpoint tensors {tensor_path} are missing or corrupt; delete {path} to start over")
    return _Checkpoint(tensor_path, step, dict(safetensors.torch.load(payload)), state.get("grad_scaler"))


# ----------------------------------------------------------------------------------------------------------------------
# Checks and small helpers


def _check_pipeline(pipe: Any, name: str, *, loaders: bool) -> None:
    needed = ["tokenizer", "text_encoder", "unet"] + ([] if loaders else ["vae", "scheduler"])
    missing = [attr for attr in needed if getattr(pipe, attr, None) is None]
    if missing:
        raise TypeError(f"{name} must be a Stable Diffusion pipeline with {', '.join(needed)}; missing {missing}")
    if loaders and not all(hasattr(pipe, m) for m in ("load_textual_inversion", "unload_textual_inversion",
                                                      "load_lora_weights")):
        raise TypeError(f"{name} ({type(pipe).__name__}) lacks diffusers' textual-inversion and LoRA loaders")


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of str, got {type(class_names).__name__}")
    names = list(class_names)
    if not names:
        raise ValueError("class_names must name at least one class")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"class_names must be non-empty strings, got {bad[:5]!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"class_names must be unique, repeated: {duplicates}")
    return names


def _check_images(images_by_class: Sequence[Sequence[Any]], names: list[str]) -> list[list[Any]]:
    if isinstance(images_by_class, (str, bytes)) or not isinstance(images_by_class, Sequence):
        raise TypeError(f"images_by_class must be a sequence (one sequence of images per class), "
                        f"got {type(images_by_class).__name__}")
    if len(images_by_class) != len(names):
        raise ValueError(f"images_by_class has {len(images_by_class)} classes but class_names has {len(names)}")
    images = [list(class_images) for class_images in images_by_class]
    empty = [names[i] for i, class_images in enumerate(images) if not class_images]
    if empty:
        raise ValueError(f"these classes have no images to learn from: {empty}")
    return images


def _check_tokens_free(tokenizer: Any, tokens: list[str]) -> None:
    vocab = tokenizer.get_vocab()
    taken = [token for token in tokens if token in vocab]
    if taken:
        raise ValueError(f"tokens {taken[:6]}{'...' if len(taken) > 6 else ''} already exist in the tokenizer "
                         "(concepts already applied?); remove them first")


def _linear_modules(unet: nn.Module) -> dict[str, nn.Module]:
    """Named ``nn.Linear`` modules, looking through LoRA wrappers to their base layer."""
    found = {}
    for name, module in unet.named_modules():
        base = module.get_base_layer() if hasattr(module, "get_base_layer") else module
        if isinstance(base, nn.Linear) and ".lora_" not in name and ".base_layer" not in name:
            found[name] = base
    return found


def _check_lora_targets(unet: nn.Module, targets: Sequence[str]) -> None:
    names = list(_linear_modules(unet))
    unmatched = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if unmatched:
        raise ValueError(f"LoRA target modules {unmatched} match no linear layer of the UNet "
                         f"(expected names like {list(LORA_TARGET_MODULES)})")


def _check_lora_state_dict(state_dict: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """PEFT-layout LoRA keys in A/B pairs with one rank; returned as fp32 CPU copies."""
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ValueError(f"{name} must be a non-empty mapping of LoRA tensors")
    bad = [k for k in state_dict if not isinstance(k, str) or not k.endswith(_LORA_SUFFIXES)]
    if bad:
        raise ValueError(f"{name} has keys that are not PEFT LoRA weights ('<module>.lora_A.weight' / "
                         f"'<module>.lora_B.weight'): {bad[:4]}")
    modules = {k.rsplit(".lora_", 1)[0] for k in state_dict}
    unpaired = [m for m in sorted(modules) if any(f"{m}{s}" not in state_dict for s in _LORA_SUFFIXES)]
    if unpaired:
        raise ValueError(f"{name} has LoRA modules without both lora_A and lora_B: {unpaired[:4]}")
    ranks = set()
    for module in modules:
        down, up = state_dict[f"{module}.lora_A.weight"], state_dict[f"{module}.lora_B.weight"]
        if down.ndim != 2 or up.ndim != 2 or down.shape[0] != up.shape[1]:
            raise ValueError(f"{name}: {module} has lora_A {tuple(down.shape)} and lora_B {tuple(up.shape)}, "
                             "expected [rank, in] and [out, rank]")
        ranks.add(down.shape[0])
    if len(ranks) != 1:
        raise ValueError(f"{name} mixes LoRA ranks {sorted(ranks)}")
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in sorted(state_dict.items())}


def _check_lora_fits_unet(state_dict: Mapping[str, torch.Tensor], unet: nn.Module) -> None:
    """Every LoRA module must exist in the UNet with matching shapes: nothing may be dropped silently."""
    linears = _linear_modules(unet)
    missing, mismatched = [], []
    for key in state_dict:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")]
        layer = linears.get(module)
        if layer is None:
            missing.append(module)
            continue
        down, up = state_dict[key], state_dict[f"{module}.lora_B.weight"]
        if down.shape[1] != layer.in_features or up.shape[0] != layer.out_features:
            mismatched.append(f"{module} (LoRA {down.shape[1]}->{up.shape[0]}, layer "
                              f"{layer.in_features}->{layer.out_features})")
    if missing:
        raise ValueError(f"LoRA targets {len(missing)} modules the UNet does not have, e.g. {missing[:3]}: "
                         "these concepts were learned for another UNet")
    if mismatched:
        raise ValueError(f"LoRA shapes do not match the UNet: {mismatched[:3]}")


def _init_token_id(tokenizer: Any, class_name: str, count: int) -> list[int]:
    """Ids to initialise a class's ``count`` vectors: its last single-token words, else the neutral word."""
    words = class_name.replace("/", " ").replace("_", " ").replace("-", " ").lower().split()
    known = []
    for word in words:
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) == 1:
            known.append(ids[0])
    if not known:
        known = tokenizer(NEUTRAL_INIT_WORD, add_special_tokens=False).input_ids[:1]
    chosen = known[-count:]
    return [chosen[j % len(chosen)] for j in range(count)]


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize (no aspect preservation, as the reference code), in [0, 1]."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def _pipeline_probe(pipe: Any) -> dict[str, Any]:
    """A cheap signature of the base weights, so a checkpoint of another base model is not resumed."""
    probe = {"unet": _tensor_digest(pipe.unet.conv_in.weight), "unet_out": _tensor_digest(pipe.unet.conv_out.weight)}
    probe["text"] = _tensor_digest(pipe.text_encoder.get_input_embeddings().weight[:1024])
    probe["vocab"] = len(pipe.tokenizer)
    return probe


def _tensor_digest(tensor: torch.Tensor) -> str:
    tensor = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write to a temp file, fsync it, rename over ``path`` and fsync the directory."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as file:
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _preserved_rng(device: torch.device | str) -> Iterator[None]:
    """Run a block without disturbing the caller's global torch RNG (CPU and, if used, the CUDA device)."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
