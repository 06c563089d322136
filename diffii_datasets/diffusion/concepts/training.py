"""Learning a concept set (paper Sec. 3.1): per-class placeholder tokens plus one LoRA shared by all classes.

:func:`learn_concepts` trains them on a pipeline with noise-prediction MSE on
``"a photo of a <tokens> <metaclass>"`` (the released Diff-Mix/Diff-II recipe),
resumably and optionally data-parallel over the ranks of a
:class:`~diffii_datasets.distributed.World`, and leaves the pipeline as it was.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint
from diffii_datasets.diffusion.concepts.apply import check_pipeline, check_tokens_free, preserved_rng
from diffii_datasets.diffusion.concepts.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from diffii_datasets.diffusion.concepts.concept_set import (
    ConceptSet,
    check_class_names,
    check_metaclass,
    class_token_list,
)
from diffii_datasets.diffusion.concepts.config import ConceptConfig
from diffii_datasets.diffusion.concepts.lora import check_lora_targets
from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.distributed import World
from diffii_datasets.hashing import image_digest, tensor_digest
from diffii_datasets.images import to_pil_rgb, to_rgb_tensor

__all__ = ["NEUTRAL_INIT_WORD", "learn_concepts"]

logger = logging.getLogger(__name__)

NEUTRAL_INIT_WORD = "the"
"""Initialiser for classes whose name contains no word the tokenizer knows as a single token."""

_TRAIN_ADAPTER = "diffii_concepts_training"
_MISSING = object()


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
    world: World | None = None,
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

    ``world`` (``None``, or a one-process :class:`~diffii_datasets.distributed.World`:
    this process alone) with several ranks trains data-parallel over the initialised
    ``torch.distributed`` process group (``torchrun``, see
    :func:`~diffii_datasets.distributed.distributed_world`); every rank must call this
    with the same arguments. All ranks draw the same global batch of
    ``config.batch_size`` from the shared seed, each computes the loss of its
    contiguous share of it, and the gradients of the trainable weights are summed
    across ranks before every optimizer step. Every rank ends with the same weights,
    equal to a single-process run's up to floating-point summation order. Only rank 0
    shows progress and writes checkpoints; ``work_dir`` must be one directory that
    every rank sees.
    """
    if not isinstance(config, ConceptConfig):
        _checks.fail(TypeError, "config", "a ConceptConfig", config)
    seed = _checks.check_seed(seed)
    check_pipeline(pipe, "pipe", loaders=False)
    world = _check_world(world)
    names = check_class_names(class_names)
    check_metaclass(metaclass)
    images = _check_images(images_by_class, names)
    n_vectors = config.tokens_per_class
    token_lists = [class_token_list(i, n_vectors) for i in range(len(names))]
    check_tokens_free(pipe.tokenizer, [t for tokens in token_lists for t in tokens])
    if getattr(pipe.unet, "peft_config", None):
        raise ValueError(f"pipe.unet already has LoRA adapters {list(pipe.unet.peft_config)}; "
                         "remove them (ConceptSet.remove / pipe.unload_lora_weights) before learning concepts")
    check_lora_targets(pipe.unet, config.lora_target_modules)
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
    checkpoint = read_checkpoint(Path(work_dir), run_id) if work_dir is not None else None
    if world.size > 1:
        # Every rank read the checkpoint before any rank trains (and so writes a newer one).
        _check_same_start(world, checkpoint.step if checkpoint is not None else 0, work_dir)
    if checkpoint is not None and checkpoint.step > config.train_steps:
        raise ValueError(f"the checkpoint in {work_dir} is at step {checkpoint.step}, past "
                         f"config.train_steps={config.train_steps}; use a fresh work_dir")
    if checkpoint is not None and checkpoint.step == config.train_steps:
        logger.info("concept learning already finished in %s; returning the final checkpoint", work_dir)
        return _concept_set_from_tensors(checkpoint.tensors, names, metaclass, n_vectors)

    progress = progress and world.is_main
    with _borrowed_pipeline(pipe) as (text_encoder, unet):
        trainer = _Trainer(pipe, text_encoder, unet, names, metaclass, token_lists, config, seed, resolution, world)
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
            if (work_dir is not None and world.is_main
                    and (step % config.checkpoint_steps == 0 or step == config.train_steps)):
                write_checkpoint(Path(work_dir), run_id, step, trainer.state_tensors(), trainer.scaler_state())
            if callback is not None:
                callback(step, loss)
        world.barrier()  # rank 0's last checkpoint is written before any rank returns
        return _concept_set_from_tensors(trainer.state_tensors(), names, metaclass, n_vectors)


def _check_world(world: World | None) -> World:
    if world is None:
        return World()
    if not isinstance(world, World):
        _checks.fail(TypeError, "world", "a diffii_datasets.distributed.World or None", world)
    if world.size > 1:
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(f"world has {world.size} ranks, which needs an initialised torch.distributed process "
                             "group (launch with torchrun and use diffii_datasets.distributed.distributed_world)")
        if (dist.get_rank(), dist.get_world_size()) != (world.rank, world.size):
            raise ValueError(f"world is rank {world.rank} of {world.size}, but the process group is rank "
                             f"{dist.get_rank()} of {dist.get_world_size()}")
    return world


def _check_same_start(world: World, step: int, work_dir: Any) -> None:
    steps = world.all_gather(step)
    if min(steps) != max(steps):
        raise RuntimeError(f"the ranks found different concept-learning checkpoints (steps {min(steps)} to "
                           f"{max(steps)}) in work_dir={work_dir}: it must be one directory all ranks see")


def _batch_rows(world: World, batch_size: int) -> torch.Tensor:
    """The batch rows this rank computes: a contiguous share, empty when ranks outnumber rows."""
    return torch.arange(batch_size).tensor_split(world.size)[world.rank]


def _check_images(images_by_class: Any, names: list[str]) -> list[list[Any]]:
    if isinstance(images_by_class, (str, bytes)) or not isinstance(images_by_class, Sequence):
        _checks.fail(TypeError, "images_by_class", "a sequence (one sequence of images per class)", images_by_class)
    if len(images_by_class) != len(names):
        raise ValueError(f"images_by_class has {len(images_by_class)} classes but class_names has {len(names)}")
    images = [list(class_images) for class_images in images_by_class]
    empty = [names[i] for i, class_images in enumerate(images) if not class_images]
    if empty:
        raise ValueError(f"these classes have no images to learn from: {empty}")
    return images


def _pipeline_probe(pipe: Any) -> dict[str, Any]:
    """A cheap signature of the base weights, so a checkpoint of another base model is not resumed."""
    probe = {"unet": tensor_digest(pipe.unet.conv_in.weight), "unet_out": tensor_digest(pipe.unet.conv_out.weight)}
    probe["text"] = tensor_digest(pipe.text_encoder.get_input_embeddings().weight[:1024])
    probe["vocab"] = len(pipe.tokenizer)
    return probe


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
                 world: World) -> None:
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        self.pipe, self.text_encoder, self.unet, self.config = pipe, text_encoder, unet, config
        self.resolution = resolution
        self.world = world
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
        with preserved_rng(self.device):
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
        if self.world.size > 1:
            rows = _batch_rows(self.world, config.batch_size)
            index, flip, timesteps, noise = index[rows], flip[rows], timesteps[rows], noise[rows]
        loss = self._loss(index, flip, timesteps, noise) if len(index) else torch.zeros((), device=self.device)
        if self.world.size > 1:
            loss = loss * (len(index) / config.batch_size)  # the ranks' shares sum to the batch mean
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        if scaled.requires_grad:  # a rank without rows has nothing to differentiate
            scaled.backward()
        if self.world.size > 1:
            loss = self._sum_over_ranks(loss)
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

    def _sum_over_ranks(self, loss: torch.Tensor) -> torch.Tensor:
        """Sum every trainable weight's gradient and the loss over the ranks, in one collective.

        A rank without rows (or whose rows left a weight without gradient) contributes
        zeros, and every rank ends with the same gradient on every weight, so all
        optimizers take the same step.
        """
        parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params]
        flat = self.world.all_reduce_sum(torch.cat([*parts, loss.detach().reshape(1).to(parts[0])]))
        sizes = [p.numel() for p in self.params]
        for param, grad in zip(self.params, flat[:-1].split(sizes)):
            param.grad = grad.view_as(param).clone()
        return flat[-1]

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

    def load_state(self, checkpoint: Checkpoint) -> None:
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


def _concept_set_from_tensors(tensors: Mapping[str, torch.Tensor], names: list[str], metaclass: str,
                              n_vectors: int) -> ConceptSet:
    placeholders = tensors["placeholders"].float()
    lora = {key.removeprefix("lora."): value for key, value in tensors.items() if key.startswith("lora.")}
    return ConceptSet(names, metaclass, placeholders.reshape(len(names), n_vectors, -1), lora)
