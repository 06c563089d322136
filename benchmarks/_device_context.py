"""What every section of the device check shares: the sizes of a run, the models built once, measuring.

A run is either the real one (CUDA, SD-1.5's exact shapes in fp16) or a dry run
(CPU, the tiny pipeline at 32 px, one or two steps, tiny classifiers) that goes
through the same code so the test suite keeps it working. Only the sizes differ;
they are all in :class:`Sizes`.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import torch


@dataclass(frozen=True)
class Sizes:
    """How big each section's work is (see :data:`GPU` and :data:`DRY_RUN`)."""

    pipeline: str  # a size of _common.build_pipeline: "sd15" (SD-1.5's shapes) or "tiny"
    generation_classes: int  # each reloads the baseline's pipeline from disk
    generation_images: int  # synthetic images per class: a multiple of every engine batch
    generation_batches: tuple[int, ...]  # engine batch sizes (the UNet sees twice as many rows: CFG)
    generation_steps: int
    inversion_images: int
    inversion_steps: int  # both sides scale linearly with it: the ratio does not depend on it
    inversion_batches: tuple[int, ...]
    share_real: int  # real images of the one class of the UNet-share prepare()
    share_steps: dict[str, int]  # DiffIIConfig knobs of that prepare() ({}: the paper's 200 + 25 steps)
    concept_timed_steps: int  # timed steps after one warm-up step
    concept_overrides: dict[str, Any]  # ConceptConfig knobs besides the defaults ({}: the published recipe)
    prepare_knobs: dict[str, Any]  # DiffIIConfig knobs of the end-to-end prepare() (2 classes x 3 images)
    classifier_models: dict[str, dict[str, Any]]  # label -> Recipe knobs replaced in the published recipe
    classifier_precisions: tuple[str, ...]  # "fp32" (published) and "amp" (the opt-in)
    classifier_steps: int  # training steps per epoch
    classifier_epochs: int  # the last epoch's images/s is reported (the first warms up)
    compile_backend: str
    compile_images: int
    compile_batch: int
    compile_steps: int
    torchrun_attempts: tuple[tuple[str, str], ...]  # (backend, device) of each two-rank launch
    torchrun_timeout_s: float
    workers: int  # DataLoader workers of the classifier runs


GPU = Sizes(
    pipeline="sd15",
    generation_classes=2,
    generation_images=16,
    generation_batches=(4, 8, 16),
    generation_steps=25,
    inversion_images=8,
    inversion_steps=50,
    inversion_batches=(4, 8),
    share_real=2,
    share_steps={},
    concept_timed_steps=6,
    concept_overrides={},
    prepare_knobs={"inversion_steps": 10, "denoising_steps": 10, "concept_train_steps": 2},
    classifier_models={
        # The published few-shot recipes, with random weights (built at the recipe's size).
        "resnet50": {"model": "resnet50"},
        "vit_b_16": {"model": "vit_b_16"},
    },
    classifier_precisions=("fp32", "amp"),
    classifier_steps=20,
    classifier_epochs=2,
    compile_backend="inductor",
    compile_images=16,
    compile_batch=8,
    compile_steps=25,
    torchrun_attempts=(("nccl", "cuda:0"), ("gloo", "cuda:0")),
    torchrun_timeout_s=75.0,
    workers=min(4, os.cpu_count() or 1),  # each holds two batches in shared memory (ResNet-50: 150 MB each)
)

DRY_RUN = Sizes(
    pipeline="tiny",
    generation_classes=2,
    generation_images=4,
    generation_batches=(2, 4),
    generation_steps=1,
    inversion_images=2,
    inversion_steps=2,
    inversion_batches=(1, 2),
    share_real=2,
    share_steps={"inversion_steps": 2, "denoising_steps": 1, "expansion_rate": 1.0},
    concept_timed_steps=1,
    concept_overrides={"resolution": 32, "batch_size": 2},
    prepare_knobs={"inversion_steps": 2, "denoising_steps": 1, "concept_train_steps": 1, "concept_resolution": 32,
                   "concept_batch_size": 2, "resolution": 32},
    classifier_models={
        "resnet50": {"model": "resnet18", "image_size": 32, "resize": 36, "batch_size": 4},
        "vit_b_16": {"model": "timm:test_vit", "image_size": 160, "resize": 176, "batch_size": 2},
    },
    classifier_precisions=("fp32",),
    classifier_steps=1,
    classifier_epochs=1,
    compile_backend="eager",
    compile_images=2,
    compile_batch=2,
    compile_steps=1,
    torchrun_attempts=(("gloo", "cpu"),),
    torchrun_timeout_s=120.0,
    workers=0,
)


class Skipped(Exception):
    """Raised by a section that stops short for a reason that is no failure (its time ran out): recorded as skipped."""


@dataclass
class Result:
    """What a section reports, filled as it goes so that the figures measured before an error are kept.

    ``figures``: name -> number or short text; the name ends in its unit (``_s``, ``_x``,
    ``_mib``, ``_pct``, ``_images_per_s``). ``details``: anything else worth keeping.
    """

    figures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Measured:
    value: Any
    seconds: float
    peak_mib: float | None  # torch.cuda.max_memory_allocated during the call (None on the CPU)


class Context:
    """The run's mode, sizes and scratch directory, and the pipeline every section shares (built once)."""

    def __init__(self, dry_run: bool, scratch: Path) -> None:
        self.dry_run = dry_run
        self.sizes = DRY_RUN if dry_run else GPU
        self.device = torch.device("cpu" if dry_run else "cuda")
        self.dtype = _common.default_dtype(self.device)
        self.scratch = scratch
        self._pipe = None
        self._pipe_error: str | None = None
        self._model_dir: Path | None = None
        self.build_s: float | None = None
        self.save_s: float | None = None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def pipeline(self):
        """The shared pipeline (random weights; SD-1.5's shapes in fp16, or the tiny one), built on first use.

        A build that failed is not tried again: every section that needs the pipeline fails at once with its error.
        """
        if self._pipe_error is not None:
            raise RuntimeError(f"the pipeline could not be built: {self._pipe_error}")
        if self._pipe is None:
            start = time.perf_counter()
            try:
                self._pipe = _common.build_pipeline(self.sizes.pipeline, self.device, dtype=self.dtype)
            except Exception as error:
                self._pipe_error = f"{type(error).__name__}: {error}"
                raise
            _common.synchronize(self.device)
            self.build_s = time.perf_counter() - start
        return self._pipe

    def model_dir(self) -> Path:
        """The shared pipeline saved as a diffusers directory (what the baseline reloads, what children load)."""
        if self._model_dir is None:
            pipe = self.pipeline()
            start = time.perf_counter()
            directory = self.scratch / "model"
            pipe.save_pretrained(directory)
            self.save_s = time.perf_counter() - start
            self._model_dir = directory
        return self._model_dir

    def measure(self, function: Callable[[], Any]) -> Measured:
        """Run ``function`` once: its value, wall seconds (synchronised) and peak GPU memory (peak reset first)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        value = function()
        _common.synchronize(self.device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else None
        return Measured(value, seconds, peak)

    def allocated_mib(self) -> float | None:
        """GPU memory held now (the shared pipeline's weights, mostly); None on the CPU."""
        return torch.cuda.memory_allocated(self.device) / 2**20 if self.cuda else None

    def release(self) -> None:
        """Return what the last section left behind to the allocator, so that the next one starts clean."""
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
