"""Learning a concept set (paper Sec. 3.1): per-class placeholder tokens plus one LoRA shared by all classes.

:func:`learn_concepts` trains them on a pipeline with noise-prediction MSE on
``"a photo of a <tokens> <metaclass>"`` with the published recipe
(:class:`~diffii_datasets.diffusion.concepts.config.ConceptConfig`; its knobs also
run DA-Fusion's textual inversion: tokens alone, one class at a time), resumably and
optionally data-parallel over the ranks of a
:class:`~diffii_datasets.distributed.World`, and leaves the pipeline as it was.
The optimisation is :mod:`~diffii_datasets.diffusion.concepts.trainer`, the
per-step inputs :mod:`~diffii_datasets.diffusion.concepts.inputs`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.diffusion.concepts.apply import check_pipeline, check_tokens_free
from diffii_datasets.diffusion.concepts.checkpoint import (
    CLASS_RUN_DIR,
    Checkpoint,
    read_checkpoint,
    tidy_checkpoints,
    write_checkpoint,
)
from diffii_datasets.diffusion.concepts.concept_set import (
    ConceptSet,
    check_class_names,
    check_metaclass,
    class_token_list,
)
from diffii_datasets.diffusion.concepts.config import TRAJECTORY_FREE_KNOBS, ConceptConfig, concept_recipe
from diffii_datasets.diffusion.concepts.inputs import TrainingInputs, check_image_sizes
from diffii_datasets.diffusion.concepts.lora import check_lora_targets
from diffii_datasets.diffusion.concepts.trainer import Trainer, initial_token_ids
from diffii_datasets.distributed import World
from diffii_datasets.hashing import image_digest, tensor_digest
from diffii_datasets.images import to_pil_rgb

__all__ = ["learn_concepts"]

logger = logging.getLogger(__name__)

_MISSING = object()


def learn_concepts(
    pipe: Any,
    images_by_class: Sequence[Sequence[Any]],
    class_names: Sequence[str],
    metaclass: str,
    config: ConceptConfig = ConceptConfig(),
    *,
    seed: int | None = None,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    world: World | None = None,
) -> ConceptSet:
    """Learn ``config.tokens_per_class`` tokens per class and a shared UNet LoRA; ``pipe`` is left as it was.

    Images are anything :func:`diffii_datasets.images.to_rgb_tensor` accepts, of any
    size up to ``config.max_aspect_ratio`` to one (errors name an image as its class's
    sequence names it in an ``item_names`` list, as the wrapper's classes do with
    ``base_dataset[i]``, else ``images_by_class[c][j]``); ``config`` says how each becomes a
    training input (the published recipe by default: short side resized to 224, a
    fresh random crop, flip and VAE posterior sample every step, the images drawn in
    shuffled epochs, seed 42). Every crop that may be drawn, and its mirror image, is
    VAE-encoded once; a step draws among them and samples the cached posterior (see
    :mod:`~diffii_datasets.diffusion.concepts.inputs`).
    Only the new token vectors and the LoRA are trained; no other row of the
    embedding matrix exists in the optimizer. With ``config.lora_rank=0`` there is no
    LoRA (textual inversion), and with ``config.separate_classes`` each class's tokens
    are learned in a run of their own, one after the other
    (:data:`~diffii_datasets.diffusion.concepts.config.RECIPE_DA_FUSION`). The
    returned set records the recipe (:attr:`ConceptSet.recipe`).

    With ``work_dir``, a checkpoint is written every ``config.checkpoint_steps`` steps
    and at the end, and a later call with the same inputs resumes from it and reaches
    bit for bit the weights of an uninterrupted run (on CPU). A damaged newest
    checkpoint is discarded, with a warning, and learning resumes from the one before
    (or from the start); see :mod:`~diffii_datasets.diffusion.concepts.checkpoint`.
    ``callback(step, loss)`` runs after every step (and after that step's checkpoint);
    with ``separate_classes`` the steps count on over the classes, up to
    ``config.total_steps(len(class_names))``.

    ``seed`` is deprecated (it overrides ``config.seed`` for this call, and says so once
    per process); set ``ConceptConfig.seed`` instead.

    ``world`` (``None``, or a one-process :class:`~diffii_datasets.distributed.World`:
    this process alone) with several ranks trains data-parallel over the initialised
    ``torch.distributed`` process group (``torchrun``, see
    :func:`~diffii_datasets.distributed.distributed_world`); every rank must call this
    with the same arguments. All ranks draw the same global batch of
    ``config.batch_size`` from the shared seed, each computes the loss of its
    contiguous share of it, and the gradients of the trainable weights are summed
    across ranks before every optimizer step. Every rank ends with the same weights,
    equal to a single-process run's up to floating-point summation order (the
    published multi-GPU run differs here: see ``ConceptConfig``). Only rank 0 shows
    progress and writes checkpoints; ``work_dir`` must be one directory that every
    rank sees.
    """
    if not isinstance(config, ConceptConfig):
        _checks.fail(TypeError, "config", "a ConceptConfig", config)
    if seed is not None:
        config = dataclasses.replace(config, seed=_checks.check_seed(seed))
        _warn_seed_keyword(seed)
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
    if config.lora_rank:
        check_lora_targets(pipe.unet, config.lora_target_modules)
    prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"pipe.scheduler predicts {prediction_type!r}; concept learning supports "
                         "'epsilon' and 'v_prediction'")
    init_ids = initial_token_ids(pipe.tokenizer, names, n_vectors, config.token_init)
    factor = int(getattr(pipe, "vae_scale_factor", 2 ** (len(pipe.vae.config.block_out_channels) - 1)))
    resolution = config.resolution or pipe.unet.config.sample_size * factor
    recipe = concept_recipe(config)

    image_names = [_image_names(c, class_images) for c, class_images in enumerate(images)]
    digests, sizes = _read_images(images, image_names)
    check_image_sizes([size for class_sizes in sizes for size in class_sizes],
                      [name for class_names_ in image_names for name in class_names_], config, resolution, factor,
                      pipe.vae.config.latent_channels, pipe.vae.dtype.itemsize)
    run = _Run(pipe, metaclass, config, recipe, resolution, factor, _pipeline_probe(pipe), progress and world.is_main,
               callback, world)
    if not config.separate_classes:
        work = Path(work_dir) if work_dir is not None else None
        tensors = run.learn(list(range(len(names))), names, images, image_names, digests, token_lists, init_ids,
                            work, "Learning concepts", 0)
        return _concept_set_from_tensors(tensors, names, metaclass, n_vectors, recipe)
    placeholders = []
    for c, name in enumerate(names):
        work = Path(work_dir) / CLASS_RUN_DIR.format(c) if work_dir is not None else None
        tensors = run.learn([c], [name], [images[c]], [image_names[c]], [digests[c]], [token_lists[c]], [init_ids[c]],
                            work, f"Learning concepts ({c + 1}/{len(names)})", c * config.train_steps)
        placeholders.append(tensors["placeholders"].float())
    return _concept_set_from_tensors({"placeholders": torch.cat(placeholders)}, names, metaclass, n_vectors, recipe)


class _Run:
    """What every learning run of one :func:`learn_concepts` call shares; :meth:`learn` is one run."""

    def __init__(self, pipe: Any, metaclass: str, config: ConceptConfig, recipe: dict[str, Any], resolution: int,
                 factor: int, probe: dict[str, Any], progress: bool,
                 callback: Callable[[int, float], None] | None, world: World) -> None:
        self.pipe, self.metaclass, self.config, self.recipe = pipe, metaclass, config, recipe
        self.resolution, self.factor, self.probe = resolution, factor, probe
        self.progress, self.callback, self.world = progress, callback, world

    def learn(self, classes: list[int], names: list[str], images: list[Sequence[Any]], image_names: list[list[str]],
              digests: list[list[str]], token_lists: list[list[str]], init_ids: list[list[int]],
              work_dir: Path | None, desc: str, step_offset: int) -> Mapping[str, torch.Tensor]:
        """Train the tokens of ``classes`` (and the LoRA) for ``config.train_steps`` steps; the final tensors."""
        config, world = self.config, self.world
        run_id = fingerprint({
            "config": {k: v for k, v in config.to_dict().items() if k not in TRAJECTORY_FREE_KNOBS},
            "resolution": self.resolution,
            "classes": classes,
            "class_names": names,
            "metaclass": self.metaclass,
            "images": digests,
            "pipeline": self.probe,
        })
        checkpoint = self._resume(work_dir, run_id)
        if checkpoint is not None and checkpoint.step == config.train_steps:
            logger.info("concept learning already finished in %s; returning the final checkpoint", work_dir)
            return checkpoint.tensors

        where = [(c, j) for c, class_images in enumerate(images) for j in range(len(class_images))]
        inputs = TrainingInputs([c for c, _ in where], config, self.resolution)
        with _borrowed_pipeline(self.pipe) as (text_encoder, unet):
            trainer = Trainer(self.pipe, text_encoder, unet, names, self.metaclass, token_lists, init_ids, config,
                              config.seed, inputs, world)
            start, last = 0, None
            if checkpoint is not None:
                trainer.load_state(checkpoint)
                start, last = checkpoint.step, checkpoint.state
                logger.info("resuming concept learning from step %d (%s)", start, work_dir)
            inputs.encode(_ImagesInOrder(images, where), [image_names[c][j] for c, j in where],
                          self.pipe.vae, trainer.device, self.factor, self.progress)
            bar = tqdm(range(start + 1, config.train_steps + 1), initial=start, total=config.train_steps,
                       desc=desc, disable=not self.progress)
            for step in bar:
                loss = trainer.step()
                bar.set_postfix(loss=f"{loss:.4f}")
                if (work_dir is not None and world.is_main
                        and (step % config.checkpoint_steps == 0 or step == config.train_steps)):
                    last = write_checkpoint(work_dir, run_id, self.recipe, step, trainer.state_tensors(),
                                            trainer.scaler_state(), last)
                if self.callback is not None:
                    self.callback(step_offset + step, loss)
            world.barrier()  # rank 0's last checkpoint is written before any rank returns
            return trainer.state_tensors()

    def _resume(self, work_dir: Path | None, run_id: str) -> Checkpoint | None:
        """The checkpoint to resume from (every rank reads it), after rank 0 discarded damaged ones and leftovers."""
        if work_dir is None:
            return None
        checkpoint, passed_over = read_checkpoint(work_dir, run_id, self.recipe)
        if self.world.size > 1:
            # Every rank read the checkpoint before any rank trains (and so writes a newer one) or tidies.
            _check_same_start(self.world, checkpoint.step if checkpoint is not None else 0, work_dir)
        if self.world.is_main:
            resumed = f"step {checkpoint.step}" if checkpoint is not None else "the start"
            for line in passed_over:
                logger.warning("discarding a damaged concept-learning checkpoint, %s; learning resumes from %s",
                               line, resumed)
            for line in tidy_checkpoints(work_dir, checkpoint):
                logger.info("concept-learning checkpoints: %s", line)
        if checkpoint is not None and checkpoint.step > self.config.train_steps:
            raise ValueError(f"the checkpoint in {work_dir} is at step {checkpoint.step}, past "
                             f"config.train_steps={self.config.train_steps}; use a fresh work_dir")
        return checkpoint


def _warn_seed_keyword(seed: int) -> None:
    """``learn_concepts(seed=...)``: say once per process that it is deprecated."""
    global _seed_keyword_warned
    if not _seed_keyword_warned:
        _seed_keyword_warned = True
        warn_at_caller(f"learn_concepts(seed={seed}) is deprecated and goes in the next release: set "
                       "ConceptConfig.seed (the knob concept_seed, published: 42) instead; this call learns with "
                       f"seed {seed}", FutureWarning)


_seed_keyword_warned = False


def _image_names(c: int, class_images: Sequence[Any]) -> list[str]:
    """How errors name class ``c``'s images: as the sequence names its items (``item_names``, the wrapper's
    ``base_dataset[i]``), else ``images_by_class[c][j]``."""
    names = getattr(class_images, "item_names", None)
    if isinstance(names, Sequence) and len(names) == len(class_images):
        return [str(name) for name in names]
    return [f"images_by_class[{c}][{j}]" for j in range(len(class_images))]


def _read_images(images: list[Sequence[Any]],
                 names: list[list[str]]) -> tuple[list[list[str]], list[list[tuple[int, int]]]]:
    """Every image's digest and ``(width, height)``, class by class, reading each image once."""
    digests, sizes = [], []
    for class_images, class_names_ in zip(images, names):
        pils = (to_pil_rgb(image, name=name) for image, name in zip(class_images, class_names_))
        pairs = [(image_digest(pil), pil.size) for pil in pils]
        digests.append([digest for digest, _ in pairs])
        sizes.append([size for _, size in pairs])
    return digests, sizes


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


def _check_images(images_by_class: Any, names: list[str]) -> list[Sequence[Any]]:
    """The per-class sequences as given: a base dataset that streams its images is read one image at a time."""
    if isinstance(images_by_class, (str, bytes)) or not isinstance(images_by_class, Sequence):
        _checks.fail(TypeError, "images_by_class", "a sequence (one sequence of images per class)", images_by_class)
    if len(images_by_class) != len(names):
        raise ValueError(f"images_by_class has {len(images_by_class)} classes but class_names has {len(names)}")
    images = list(images_by_class)
    for c, class_images in enumerate(images):
        if isinstance(class_images, (str, bytes)) or not hasattr(class_images, "__len__"):
            _checks.fail(TypeError, f"images_by_class[{c}]", "a sequence of images", class_images)
    empty = [names[i] for i, class_images in enumerate(images) if len(class_images) == 0]
    if empty:
        raise ValueError(f"these classes have no images to learn from: {empty}")
    return images


class _ImagesInOrder(Sequence):
    """Every class's images as one sequence, each read when it is needed (not all held at once)."""

    def __init__(self, images_by_class: list[Sequence[Any]], where: list[tuple[int, int]]) -> None:
        self._images_by_class, self._where = images_by_class, where

    def __len__(self) -> int:
        return len(self._where)

    def __getitem__(self, index: int) -> Any:
        c, j = self._where[index]
        return self._images_by_class[c][j]


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


def _concept_set_from_tensors(tensors: Mapping[str, torch.Tensor], names: list[str], metaclass: str,
                              n_vectors: int, recipe: dict[str, Any]) -> ConceptSet:
    placeholders = tensors["placeholders"].float()
    lora = {key.removeprefix("lora."): value for key, value in tensors.items() if key.startswith("lora.")}
    return ConceptSet(names, metaclass, placeholders.reshape(len(names), n_vectors, -1), lora, recipe=recipe)
