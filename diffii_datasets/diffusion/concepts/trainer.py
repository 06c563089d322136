"""One concept-learning run's optimisation: placeholder rows plus a LoRA (or none), AdamW, clipping, one RNG stream.

:func:`~diffii_datasets.diffusion.concepts.training.learn_concepts` builds a
:class:`Trainer` on a borrowed pipeline and calls :meth:`Trainer.step`; what each
step sees (images, crops, flips, latents) comes from
:class:`~diffii_datasets.diffusion.concepts.inputs.TrainingInputs`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffii_datasets.diffusion.concepts.apply import preserved_rng
from diffii_datasets.diffusion.concepts.checkpoint import Checkpoint
from diffii_datasets.diffusion.concepts.config import (
    PUBLISHED_INIT_TOKEN,
    PUBLISHED_INIT_TOKEN_ID,
    ConceptConfig,
    init_word,
)
from diffii_datasets.diffusion.concepts.inputs import Draw, TrainingInputs
from diffii_datasets.diffusion.concepts.templates import training_prompts
from diffii_datasets.distributed import World

__all__ = ["NEUTRAL_INIT_WORD", "Trainer", "initial_token_ids"]

NEUTRAL_INIT_WORD = "the"
"""``token_init="class_name"``: the initialiser of a class whose name has no word the tokenizer knows as one token."""

TRAIN_ADAPTER = "diffii_concepts_training"


def initial_token_ids(tokenizer: Any, names: Sequence[str], count: int, token_init: str) -> list[list[int]]:
    """Per class, the token ids whose embeddings its ``count`` placeholder vectors start from.

    ``"published"``: the CLIP token ``ktn`` for every vector of every class (id 42170
    in SD-1.5's tokenizer); a tokenizer without it is an error naming it.
    ``"class_name"``: the class name's last words that the tokenizer knows as one
    token, else :data:`NEUTRAL_INIT_WORD`. ``"word:<word>"``: that word for every
    vector of every class (DA-Fusion: ``the``); it must be one token of the tokenizer.
    """
    if token_init == "published":
        token_id = tokenizer.get_vocab().get(PUBLISHED_INIT_TOKEN)
        if token_id is None:
            raise ValueError(f"config.token_init='published' starts every placeholder from the CLIP token "
                             f"{PUBLISHED_INIT_TOKEN!r} (id {PUBLISHED_INIT_TOKEN_ID} in SD-1.5's tokenizer), which "
                             "this pipeline's tokenizer does not have; use token_init='class_name'")
        return [[token_id] * count for _ in names]
    word = init_word(token_init)
    if word is not None:
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(f"config.token_init={token_init!r}: the tokenizer splits {word!r} into {len(ids)} "
                             "tokens; the initialiser must be a single token")
        return [ids * count for _ in names]
    return [_class_name_ids(tokenizer, name, count) for name in names]


def _class_name_ids(tokenizer: Any, class_name: str, count: int) -> list[int]:
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


class PlaceholderEmbedding(nn.Module):
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


class Trainer:
    """Placeholder rows (+ a LoRA unless ``lora_rank=0``) on a borrowed pipeline, trained with AdamW from one CPU
    generator."""

    def __init__(self, pipe: Any, text_encoder: nn.Module, unet: nn.Module, names: list[str], metaclass: str,
                 token_lists: list[list[str]], init_ids: list[list[int]], config: ConceptConfig, seed: int,
                 inputs: TrainingInputs, world: World) -> None:
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        self.pipe, self.text_encoder, self.unet, self.config = pipe, text_encoder, unet, config
        self.inputs = inputs
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
        init = base.weight.detach()[torch.tensor([i for row in init_ids for i in row], device=base.weight.device)]
        self.embedding = PlaceholderEmbedding(base, first_id, init.float().clone())
        text_encoder.set_input_embeddings(self.embedding)
        # [classes, prompts per class, length]: one prompt per class, or DA-Fusion's templates (drawn per row)
        prompts = [training_prompts(" ".join(tokens), metaclass, config.prompts) for tokens in token_lists]
        self.prompt_ids = torch.stack([
            tokenizer(class_prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                      return_tensors="pt").input_ids for class_prompts in prompts])
        start = 0
        for c, tokens in enumerate(token_lists):
            own = set(ids[start:start + len(tokens)])
            start += len(tokens)
            for p, row in enumerate(self.prompt_ids[c]):
                if not own <= set(row.tolist()):
                    raise ValueError(f"the prompt of class {names[c]!r} is longer than the tokenizer's "
                                     f"{tokenizer.model_max_length} tokens: {prompts[c][p]!r}")
        self.prompt_ids = self.prompt_ids.to(self.device)

        # LoRA through peft; its initial weights come from the seed and leave the global RNG alone.
        self.lora: dict[str, nn.Parameter] = {}
        if config.lora_rank:
            with preserved_rng(self.device):
                torch.manual_seed(seed)
                unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_rank,
                                            init_lora_weights="gaussian",
                                            target_modules=list(config.lora_target_modules)), TRAIN_ADAPTER)
            self.lora = {name.replace(f".{TRAIN_ADAPTER}.", "."): param
                         for name, param in sorted(unet.named_parameters()) if param.requires_grad}
        for param in self.lora.values():
            param.data = param.data.float()  # trainable weights in fp32 even in an fp16 pipeline
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        self.params = [self.embedding.placeholders, *self.lora.values()]
        groups = [{"params": [self.embedding.placeholders], "name": "tokens"}]
        if self.lora:
            groups.append({"params": list(self.lora.values()), "name": "lora"})
        self.optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(seed)

        self.amp_dtype = None
        if config.mixed_precision and self.device.type == "cuda":
            if unet.dtype in (torch.float16, torch.bfloat16):
                self.amp_dtype = unet.dtype  # a half-precision pipeline: compute in its own dtype
            else:
                self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def step(self) -> float:
        config, gen, batch = self.config, self.generator, self.config.batch_size
        # The whole batch is drawn on every rank (same stream), so data-parallel runs draw what one process would.
        draw = self.inputs.draw(batch, gen)
        timesteps = torch.randint(0, self.num_timesteps, (batch,), generator=gen)
        noise = torch.randn((batch, *self.inputs.latent_shape), generator=gen)
        eps = self.inputs.posterior_noise(batch, gen)
        prompts = self.prompt_ids.shape[1]
        prompt = (torch.randint(prompts, (batch,), generator=gen) if prompts > 1
                  else torch.zeros(batch, dtype=torch.long))
        if self.world.size > 1:
            rows = torch.arange(batch).tensor_split(self.world.size)[self.world.rank]  # this rank's contiguous share
            draw, timesteps, noise, prompt = draw.rows(rows), timesteps[rows], noise[rows], prompt[rows]
            eps = eps[rows] if eps is not None else None
        rows_here = len(draw.index)
        loss = (self._loss(draw, timesteps, noise, eps, prompt) if rows_here
                else torch.zeros((), device=self.device))
        if self.world.size > 1:
            loss = loss * (rows_here / batch)  # the ranks' shares sum to the batch mean
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        if scaled.requires_grad:  # a rank without rows has nothing to differentiate
            scaled.backward()
        if self.world.size > 1:
            loss = self._sum_over_ranks(loss)
        if config.lora_grad_clip_norm > 0 and self.lora:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(list(self.lora.values()), config.lora_grad_clip_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def _loss(self, draw: Draw, timesteps: torch.Tensor, noise: torch.Tensor, eps: torch.Tensor | None,
              prompt: torch.Tensor) -> torch.Tensor:
        """Noise-prediction MSE of the drawn rows at ``timesteps``."""
        latents = self.inputs.latents(draw, eps)
        latents, noise, timesteps = latents.to(self.device), noise.to(self.device), timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        target = noise if self.noise_scheduler.config.prediction_type == "epsilon" else \
            self.noise_scheduler.get_velocity(latents, noise, timesteps)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            labels = self.inputs.labels[draw.index]
            hidden = self.text_encoder(self.prompt_ids[labels.to(self.device), prompt.to(self.device)])[0]
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
        tensors.update(self.inputs.order_state())
        return tensors

    def scaler_state(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state(self, checkpoint: Checkpoint) -> None:
        tensors = checkpoint.tensors
        expected = {"placeholders", "rng", *(f"lora.{key}" for key in self.lora), *self.inputs.order_state()}
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
        self.inputs.load_order_state(tensors)
        if self.scaler is not None and checkpoint.scaler is not None:
            self.scaler.load_state_dict(checkpoint.scaler)
