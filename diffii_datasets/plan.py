"""The work ahead of a synthesis run, counted in one place: its stages, their sizes and their UNet evaluations.

:func:`~diffii_datasets.synthesis.synthesize` shows a :class:`Plan` before any work (so
``prepare()``, ``diffii-datasets generate`` and the Hub builder all do), and
``diffii-datasets plan`` prints one without running (:func:`plan_job` reads what a
cache already holds). A UNet evaluation is one latent through the UNet once: the unit
the three stages share, so their costs compare. Importing this module loads no torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from diffii_datasets._io import FileFormatError, read_json

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticStore
    from diffii_datasets.store_header import StoreHeader
    from diffii_datasets.synthesis import SynthesisJob

__all__ = ["CONCEPTS", "GENERATION", "INVERSION", "Plan", "Stage", "format_duration", "plan_job", "plan_run",
           "plan_synthesis"]

CONCEPTS, INVERSION, GENERATION = "concept learning", "DDIM inversion", "generation"
"""The stages of a run, in the order they run (inversion and generation alternate class by class)."""


@dataclass(frozen=True)
class Stage:
    """One stage's work still to do: ``count`` steps (concept learning) or images, and its UNet evaluations."""

    name: str
    count: int
    unit: str  # "step" or "image"
    unet_evaluations: int
    detail: str  # how count becomes UNet evaluations, or why there is nothing to do


@dataclass(frozen=True)
class Plan:
    """What a run will do: its three stages, for ``classes`` of ``total_classes`` classes, shared by ``ranks``."""

    stages: tuple[Stage, ...]
    classes: int
    total_classes: int
    resolution: int | None  # None: the pipeline's own
    concept_resolution: int | None
    ranks: int = 1

    @property
    def unet_evaluations(self) -> int:
        return sum(stage.unet_evaluations for stage in self.stages)

    @property
    def empty(self) -> bool:
        return self.unet_evaluations == 0

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r} in the plan; stages: {[stage.name for stage in self.stages]}")

    def lines(self) -> list[str]:
        """The plan as a small table: one line per stage, then the total."""
        done = self.total_classes - self.classes
        already = f" ({done} already in the store)" if done else ""
        shared = f", shared by {self.ranks} ranks" if self.ranks > 1 else ""
        head = (f"Diff-II plan: {self.classes} of {self.total_classes} classes to generate{already}{shared}; "
                f"images at {_pixels(self.resolution)}, concepts learned at {_pixels(self.concept_resolution)}")
        width = max(len(stage.detail) for stage in self.stages)
        digits = len(f"{self.unet_evaluations:,}")
        rows = [f"  {stage.name:<18}{stage.detail:<{width}}  {_evaluations(stage, digits)}" for stage in self.stages]
        total = f"{self.unet_evaluations:>{digits},} UNet evaluations"
        return [head, *rows, f"  {'total':<18}{'':<{width}}  {total}"]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _pixels(resolution: int | None) -> str:
    return "the pipeline's own size" if resolution is None else f"{resolution} px"


def _evaluations(stage: Stage, digits: int) -> str:
    if not stage.unet_evaluations:
        return f"{'-':>{digits}}"
    backward = " (forward and backward)" if stage.name == CONCEPTS else ""
    return f"{stage.unet_evaluations:>{digits},} UNet evaluations{backward}"


def plan_synthesis(header: StoreHeader, *, pending: Sequence[int] | None = None, concept_steps: int | None = None,
                   concepts_note: str = "", ranks: int = 1) -> Plan:
    """The plan of filling the store ``header`` describes.

    ``pending``: the classes still to generate (default: all). ``concept_steps``: the
    concept-learning steps still to run (default: the config's; 0 when concepts are given
    or already learned, with ``concepts_note`` saying which). Nothing is learned when no
    class is pending, as :func:`~diffii_datasets.synthesis.synthesize` does.
    """
    config = header.config
    pending = list(range(header.num_classes)) if pending is None else sorted(set(pending))
    generation = config.generation
    steps = config.concepts.train_steps if concept_steps is None else concept_steps
    if not pending:
        steps, concepts_note = 0, "nothing to generate"
    batch = config.concepts.batch_size
    if steps:
        resuming = config.concepts.train_steps - steps
        detail = f"{steps:,} steps x batch {batch}" + (f" (resuming at step {resuming:,})" if resuming else "")
    else:
        detail = f"none: {concepts_note or 'nothing to learn'}"
    concepts = Stage(CONCEPTS, steps, "step", steps * batch, detail)
    to_invert = sum(header.real_counts[c] for c in pending)
    to_generate = sum(header.expected_counts[c] for c in pending)
    inversion = _image_stage(INVERSION, to_invert, generation.inversion_steps, generation.inversion_guidance_scale)
    creation = _image_stage(GENERATION, to_generate, generation.denoising_steps, generation.guidance_scale)
    return Plan((concepts, inversion, creation), len(pending), header.num_classes, generation.resolution,
                config.concepts.resolution, ranks)


def plan_job(job: SynthesisJob, cache_dir: str | os.PathLike) -> Plan:
    """What :func:`~diffii_datasets.synthesis.synthesize` would do now for ``job`` under ``cache_dir``.

    Reads, writes nothing: classes already committed to the job's store are left out,
    and so is concept learning when the concepts are given or already learned in
    ``<cache_dir>/concepts`` (after an interrupted run, only the steps still to go count).
    """
    from diffii_datasets.store import StoreFormatError, SyntheticStore

    header = job.header()
    try:
        store: SyntheticStore | None = SyntheticStore.open(Path(cache_dir) / header.key())
    except StoreFormatError:  # not made yet
        store = None
    pending = [c for c in range(header.num_classes) if store is None or not store.is_committed(c)]
    return plan_run(job, store, Path(cache_dir) / "concepts", pending, ranks=1)


def plan_run(job: SynthesisJob, store: SyntheticStore | None, concepts_root: Path, pending: Sequence[int],
             ranks: int) -> Plan:
    """The plan of generating ``pending`` classes of ``job`` into ``store`` (None: not made yet)."""
    steps, note = _concept_steps_to_go(job, concepts_root, store)
    return plan_synthesis(job.header(), pending=pending, concept_steps=steps, concepts_note=note, ranks=ranks)


def _concept_steps_to_go(job: SynthesisJob, concepts_root: Path, store: SyntheticStore | None) -> tuple[int, str]:
    """Concept-learning steps a run still has to make, and why none when none."""
    from diffii_datasets.diffusion.concepts.checkpoint import CHECKPOINT_FILE

    if job.concepts is not None:
        return 0, "the concepts are given"
    directory = concepts_root / job.concepts_key()
    if (directory / "concepts.json").is_file():
        return 0, f"already learned ({directory})"
    steps = job.config.concepts.train_steps
    try:
        state = read_json(store.work_dir / "concepts" / CHECKPOINT_FILE, missing_ok=True) if store else None
    except FileFormatError:  # learning will say what is wrong with it
        state = None
    done = state.get("step") if isinstance(state, dict) else None
    if not isinstance(done, int) or done <= 0:
        return steps, ""
    return max(steps - done, 0), "finished in the checkpoint of an interrupted run"


def _image_stage(name: str, images: int, steps: int, guidance: float) -> Stage:
    """Images x steps, twice with classifier-free guidance (the unconditional branch runs in the same UNet call)."""
    branches = 2 if guidance > 1 else 1
    detail = f"{images:,} images x {steps} steps" + (f" x 2 (guidance {guidance:g})" if branches == 2 else "")
    return Stage(name, images, "image", images * steps * branches, detail if images else "none")


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"2 h 13 min"``, ``"4 d 3 h"``: two units at most, for ETAs."""
    if seconds < 1:
        return "under 1 s"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"
