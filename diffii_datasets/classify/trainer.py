"""The training loop of the paper's protocol: SGD, smoothed cross-entropy, warm-up + cosine per step.

Targets may be class indices or probability vectors (soft labels; see
:mod:`~diffii_datasets.classify.data`), and the recipe may add the authors' Mixup and
CutMix (:mod:`~diffii_datasets.classify.mixing`) and BatchNorm over per-GPU-sized groups
(:mod:`~diffii_datasets.classify.batchnorm`).

One loop for one process and for a ``torchrun`` launch (``DistributedDataParallel``
over the :class:`~diffii_datasets.distributed.World`'s ranks, gloo on the CPU, NCCL
on GPUs), with mixed precision on CUDA. The test set (and a validation set, when
given) is evaluated after every epoch, as the authors do. With an ``output_dir`` a
checkpoint is written after every epoch and a killed run, started again with the same
arguments, resumes from it to the same final weights (on the CPU; on GPUs up to
their non-deterministic kernels): every random draw of an epoch depends only on the
seed, the epoch and the rank (see :mod:`diffii_datasets.classify.data`), or on the seed,
the epoch and the item (CutMix).
"""

from __future__ import annotations

import functools

import io
import logging
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from diffii_datasets import _checks
from diffii_datasets._io import atomic_write, fingerprint, read_json, write_json
from diffii_datasets.augmented import DiffIIAugmented
from diffii_datasets.classify.batchnorm import group_batch_norm
from diffii_datasets.classify.data import Transformed, epoch_loader
from diffii_datasets.classify.evaluate import Evaluation, evaluate
from diffii_datasets.classify.loss import smoothed_cross_entropy
from diffii_datasets.classify.mixing import CutMixed, draw_mixup, mixup, mixup_generator
from diffii_datasets.classify.models import build_model
from diffii_datasets.classify.recipes import Recipe
from diffii_datasets.classify.results import EpochRecord, TrainResult
from diffii_datasets.classify.schedule import published_total_steps, warmup_cosine
from diffii_datasets.classify.transforms import eval_transform, train_transform
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.base_dataset import dataset_targets, find_classes
from diffii_datasets.distributed import World

logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_FILE", "RESULT_FILE", "WEIGHTS_FILE", "train"]

CHECKPOINT_FILE = "checkpoint.pt"
"""Written after every epoch (model, optimiser, schedule, history); removed when the run is complete."""
RESULT_FILE = "result.json"
"""The run's :class:`TrainResult`, written last: its presence means the run is complete."""
WEIGHTS_FILE = "model.safetensors"
"""The final weights (after the last epoch)."""

_LATER_KNOBS = {"mixup": False, "cutmix": False, "mixup_probability": 0.3, "bn_group_size": None,
                "soft_label_gamma": None}
"""Knobs added after runs were written, left out of a run's identity at these values (where they change nothing),
so that those runs are still read back and resumed."""


def train(
    train_set: Any,
    test_set: Any,
    recipe: Recipe | None = None,
    *,
    validation_set: Any = None,
    output_dir: str | Path | None = None,
    world: World | None = None,
    device: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    apply_transforms: bool = True,
    download: bool = True,
) -> TrainResult:
    """Train ``recipe.model`` on ``train_set``; evaluate ``test_set`` (and ``validation_set``) after every epoch.

    The datasets yield ``(PIL image, label)`` (or ``{"image", "label"}`` rows) and the
    recipe's train and eval transforms are applied to them; ``apply_transforms=False`` takes
    their items as they are (tensors). A training label may be a class index or a
    probability vector (a float tensor ``[C]``, for every item of the set: soft labels).
    ``train_set`` is typically a :class:`~diffii_datasets.augmented.DiffIIAugmented` in replace mode, whose
    ``synthetic_probability`` and ``class_balanced`` must be the recipe's; any other
    dataset is trained on as it is. The classes are ``train_set``'s (``classes``, or the
    labels' range); a test set with a ``groups`` list (one group index per item) and
    ``group_names`` is also scored per group.

    ``output_dir``: checkpoints, and at the end ``model.safetensors`` and ``result.json``;
    a run already complete there is read back, not trained again. ``world``: the ranks of
    a launch (:func:`~diffii_datasets.distributed.distributed_world`), every rank calling
    ``train``; ``device`` (without a world): where to train, default CUDA when available.
    ``download=False`` refuses to download pretrained weights that are not cached.
    """
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        _checks.fail(TypeError, "recipe", "a Recipe (classify.recipe_for(...) or Recipe(...))", recipe)
    workers = None if workers is None else _checks.check_int(workers, "workers", minimum=0)
    for value, name in ((progress, "progress"), (apply_transforms, "apply_transforms"), (download, "download")):
        _checks.check_bool(value, name)
    if world is None:
        world = World(device=torch.device(device)) if device is not None else World()
    elif device is not None:
        raise ValueError("pass device or world, not both: the world knows its device")
    if recipe.batch_size % world.size:
        raise ValueError(f"recipe.batch_size must be a multiple of the {world.size} ranks, got {recipe.batch_size}")
    per_rank = recipe.batch_size // world.size
    if recipe.bn_group_size is not None and per_rank % recipe.bn_group_size:
        raise ValueError(f"recipe.bn_group_size ({recipe.bn_group_size}) must divide the batch of each rank "
                         f"({recipe.batch_size} over {world.size} rank(s): {per_rank})")
    _check_joint_training(train_set, recipe)
    datasets = {"train_set": train_set, "test_set": test_set, "validation_set": validation_set}
    for name, dataset in datasets.items():
        if dataset is not None and len(dataset) == 0:
            raise ValueError(f"{name} is empty")
    classes = _classes(train_set, test_set, validation_set)
    if apply_transforms:
        datasets = {name: None if dataset is None else
                    Transformed(dataset, (train_transform if name == "train_set" else eval_transform)(recipe), name,
                                soft_targets=name == "train_set")
                    for name, dataset in datasets.items()}
        for name, dataset in datasets.items():
            if dataset is not None:
                dataset[0]  # a dataset that does not yield PIL images fails here, not in a loader worker
    if recipe.cutmix or recipe.mixup:  # both need vector targets: the authors wrap the set in CutMix(prob=0) for Mixup
        datasets["train_set"] = CutMixed(datasets["train_set"], len(classes),
                                         recipe.mixup_probability if recipe.cutmix else 0.0, recipe.seed)
    trainer = _Trainer(datasets["train_set"], datasets["test_set"], datasets["validation_set"], recipe, classes,
                       _groups(test_set), output_dir, world, workers, progress, download)
    return trainer.fit()


def _check_joint_training(train_set: Any, recipe: Recipe) -> None:
    if isinstance(train_set, DiffIIAugmented) and train_set.mode == "replace":
        for knob in ("synthetic_probability", "class_balanced"):
            if getattr(train_set, knob) != getattr(recipe, knob):
                raise ValueError(f"train_set.{knob} is {getattr(train_set, knob)!r} but recipe.{knob} is "
                                 f"{getattr(recipe, knob)!r}: build the dataset with the recipe's value "
                                 "(classify.joint_training_set) or change the recipe with recipe.replace(...)")
    elif recipe.synthetic_probability > 0:
        warn_at_caller(f"train_set is not a DiffIIAugmented in replace mode: recipe.synthetic_probability "
                       f"({recipe.synthetic_probability}) is not applied, the dataset is trained on as it is")


def _classes(train_set: Any, test_set: Any, validation_set: Any) -> list[str]:
    names = find_classes(train_set)
    if names is None:
        first = train_set[0]
        target = first[1] if isinstance(first, (tuple, list)) and len(first) == 2 else None
        count = (target.shape[0] if isinstance(target, torch.Tensor) and target.dim() == 1  # soft labels
                 else max(dataset_targets(train_set)) + 1)
        names = [str(label) for label in range(count)]
    for name, dataset in (("test_set", test_set), ("validation_set", validation_set)):
        theirs = None if dataset is None else find_classes(dataset)
        if theirs is not None and theirs != names:
            raise ValueError(f"{name} must have train_set's {len(names)} classes in the same order; it has "
                             f"{len(theirs)} ({', '.join(theirs[:3])}, ...) against ({', '.join(names[:3])}, ...)")
    return names


def _groups(test_set: Any) -> tuple[list[int], list[str]] | None:
    groups, names = getattr(test_set, "groups", None), getattr(test_set, "group_names", None)
    if groups is None:
        return None
    if names is None or len(groups) != len(test_set) or not all(0 <= g < len(names) for g in groups):
        raise ValueError("test_set.groups must give every item a group index into test_set.group_names")
    return list(groups), list(names)


def _amp_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    if not recipe.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class _Trainer:
    """One run: the model, optimiser and schedule, the epoch loop, checkpoints and the result."""

    def __init__(self, train_set: Any, test_set: Any, validation_set: Any, recipe: Recipe, classes: list[str],
                 groups: tuple[list[int], list[str]] | None, output_dir: str | Path | None, world: World,
                 workers: int | None, progress: bool, download: bool) -> None:
        self.train_set, self.test_set, self.validation_set = train_set, test_set, validation_set
        self.recipe, self.classes, self.groups = recipe, classes, groups
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.world, self.device, self.workers = world, world.device, workers
        self.progress, self.download = progress and world.is_main, download
        self.amp_dtype = _amp_dtype(recipe, world.device)
        self.identity = fingerprint({
            "recipe": {name: value for name, value in recipe.to_dict().items()
                       if name not in _LATER_KNOBS or value != _LATER_KNOBS[name]},
            "classes": classes, "train": len(train_set), "test": len(test_set),
            "validation": None if validation_set is None else len(validation_set), "ranks": world.size})
        self.result = TrainResult(recipe, classes, [], None if groups is None else groups[1])

    def _path(self, name: str) -> Path | None:
        return None if self.output_dir is None else self.output_dir / name

    # -- the run -------------------------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        finished = self._finished()
        if finished is not None:
            return finished
        recipe = self.recipe
        random.seed(recipe.seed)
        np.random.seed(recipe.seed % 2**32)
        torch.manual_seed(recipe.seed)
        model = self._build_model().to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                    weight_decay=recipe.weight_decay)
        total_steps = published_total_steps(recipe.epochs, len(self.train_set), recipe.batch_size)
        scheduler = warmup_cosine(optimizer, total_steps, recipe.warmup_fraction)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        start = self._resume(parts)
        wrapped = model
        if self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            wrapped = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                              else None)
        for epoch in range(start, recipe.epochs):
            self.result.history.append(self._epoch(wrapped, optimizer, scheduler, scaler, epoch))
            self._save_checkpoint(parts, epoch + 1)
        self._finish(model)
        return self.result

    def _build_model(self) -> Any:
        """Rank 0 first, so that only it downloads missing weights; every rank draws the same new head."""
        recipe, model = self.recipe, None
        build = functools.partial(build_model, recipe.model, len(self.classes), recipe.weights,
                                  image_size=recipe.image_size, download=self.download)
        if self.world.is_main:
            model = build()
        self.world.barrier()
        if not self.world.is_main:
            model = build()
        if recipe.bn_group_size is not None and not group_batch_norm(model, recipe.bn_group_size):
            logger.warning("%s has no BatchNorm layer: bn_group_size %d changes nothing", recipe.model,
                           recipe.bn_group_size)
        return model

    def _epoch(self, model: Any, optimizer: Any, scheduler: Any, scaler: Any, epoch: int) -> EpochRecord:
        recipe, device = self.recipe, self.device
        loader = epoch_loader(self.train_set, recipe, self.world, epoch, self.workers)
        autocast = torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()
        model.train()
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n
        bar = tqdm(total=len(loader), desc=f"seed {recipe.seed} epoch {epoch + 1}/{recipe.epochs}", unit="batch",
                   disable=not self.progress, dynamic_ncols=True)
        lr, start = recipe.lr, time.perf_counter()
        mixing = mixup_generator(recipe.seed, epoch, self.world.rank) if recipe.mixup else None
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if labels.dim() == 2 and labels.shape[1] != len(self.classes):
                raise ValueError(f"train_set gives soft targets of {labels.shape[1]} classes, not its "
                                 f"{len(self.classes)}")
            draw = None if mixing is None else draw_mixup(mixing, recipe.mixup_probability, len(labels))
            if draw is not None:
                images, labels = mixup(images, labels, *draw)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(images)
            loss = smoothed_cross_entropy(logits, labels, recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            truth = labels if labels.dim() == 1 else labels.argmax(dim=1)  # the authors' accuracy on soft targets
            correct = (logits.detach().argmax(dim=1) == truth).sum()
            sums += torch.stack([loss.detach().double() * len(labels), correct.double(),
                                 torch.tensor(float(len(labels)), dtype=torch.float64, device=device)])
            if self.progress:
                loss_sum, hits, seen = sums.tolist()
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * hits / seen:.1f}",
                                img_s=f"{seen * self.world.size / (time.perf_counter() - start):.0f}", refresh=False)
                bar.update()
        elapsed = time.perf_counter() - start
        loss_sum, hits, seen = self.world.all_reduce_sum(sums).tolist()
        plain = getattr(model, "module", model)  # ranks score unequal shares: no DDP collectives in forward
        test = self._evaluate(plain, self.test_set)
        validation = None if self.validation_set is None else self._evaluate(plain, self.validation_set)
        if not self.result.class_totals:
            self._set_totals(test)
        record = EpochRecord(
            epoch=epoch + 1, train_loss=loss_sum / seen, train_accuracy=100 * hits / seen,
            images_per_second=seen / elapsed, lr=lr, test_accuracy=test.accuracy,
            test_class_correct=test.class_correct(len(self.classes)),
            test_group_correct=None if self.groups is None else test.group_correct(self.groups[0], len(self.groups[1])),
            val_accuracy=None if validation is None else validation.accuracy)
        if self.progress:
            val = "" if validation is None else f", val {validation.accuracy:.2f}"
            bar.set_postfix(loss=f"{record.train_loss:.3f}", acc=f"{record.train_accuracy:.1f}",
                            img_s=f"{record.images_per_second:.0f}", test=f"{record.test_accuracy:.2f}{val}")
        bar.close()
        return record

    def _evaluate(self, model: Any, dataset: Any) -> Evaluation:
        return evaluate(model, dataset, batch_size=self.recipe.batch_size // self.world.size, world=self.world,
                        workers=self.workers, autocast_dtype=self.amp_dtype)

    def _set_totals(self, test: Evaluation) -> None:
        totals = [0] * len(self.classes)
        for label in test.labels:
            if not 0 <= label < len(totals):
                raise ValueError(f"test_set has label {label}, outside train_set's {len(totals)} classes")
            totals[label] += 1
        self.result.class_totals = totals
        if self.groups is not None:
            group_totals = [0] * len(self.groups[1])
            for group in self.groups[0]:
                group_totals[group] += 1
            self.result.group_totals = group_totals

    # -- files ---------------------------------------------------------------------------------------------------------

    def _finished(self) -> TrainResult | None:
        """The result of a complete run in ``output_dir`` (made with the same identity), or None."""
        path = self._path(RESULT_FILE)
        if path is None or not path.is_file():
            return None
        data = read_json(path)
        if data.get("identity") != self.identity:
            raise ValueError(f"{path} is the result of a run with another recipe, data or number of ranks; use "
                             "another output directory, or delete that one to train again")
        logger.info("%s: the run is complete, read back", path)
        return TrainResult.from_dict(data)

    def _resume(self, parts: dict[str, Any]) -> int:
        """Load the checkpoint of ``output_dir`` into ``parts``; the number of epochs already done (0 without one)."""
        path = self._path(CHECKPOINT_FILE)
        if path is None or not path.is_file():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("identity") != self.identity:
            raise ValueError(f"{path} is a checkpoint of a run with another recipe, data or number of ranks; use "
                             "another output directory, or delete that one to start over")
        for name, part in parts.items():
            part.load_state_dict(state[name])
        self.result = TrainResult.from_dict(state["result"])
        logger.info("%s: resuming after epoch %d of %d", path, state["epoch"], self.recipe.epochs)
        return state["epoch"]

    def _save_checkpoint(self, parts: dict[str, Any], epochs_done: int) -> None:
        path = self._path(CHECKPOINT_FILE)
        if path is None:
            return
        if self.world.is_main:
            state = {name: part.state_dict() for name, part in parts.items()}
            state.update(identity=self.identity, epoch=epochs_done, result=self.result.to_dict())
            buffer = io.BytesIO()
            torch.save(state, buffer)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, buffer.getvalue())
        self.world.barrier()

    def _finish(self, model: Any) -> None:
        if self.output_dir is None:
            return
        if self.world.is_main:
            from safetensors.torch import save_file

            self.output_dir.mkdir(parents=True, exist_ok=True)
            weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
            save_file(weights, str(self.output_dir / WEIGHTS_FILE))
            write_json(self.output_dir / RESULT_FILE, {"identity": self.identity, **self.result.to_dict()})
            (self.output_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        self.world.barrier()
