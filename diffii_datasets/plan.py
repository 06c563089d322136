"""The work ahead of a preparation, counted in one place: its stages, their sizes and their UNet evaluations.

:func:`~diffii_datasets.prepare.prepare` shows a :class:`Plan` before any work (so
``prepare()``, ``diffii-datasets generate`` and the Hub builder all do), and
``diffii-datasets plan`` prints one without running (:func:`plan_job` reads what a
cache already holds). Its last line is the estimated wall time
(:func:`~diffii_datasets.estimate.estimate_plan`, from a short probe of the pipeline),
when one was made. The stages are concept learning (for methods with concepts) and
the method's per-class stages (:meth:`~diffii_datasets.methods.Method.image_stages`).
A UNet evaluation is one latent through the UNet once: the unit the stages share, so
their costs compare. Importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffii_datasets.estimate import Estimate
    from diffii_datasets.job import PreparationJob
    from diffii_datasets.store import StoreHeader, SyntheticStore

__all__ = ["CONCEPTS", "Plan", "Stage", "format_duration", "plan_job", "plan_run", "plan_synthesis"]

CONCEPTS = "concept learning"
"""The stage that runs first, once, for methods with concepts (the method's per-class stages follow)."""


@dataclass(frozen=True)
class Stage:
    """One stage's work still to do: ``count`` steps (concept learning) or images, and its UNet evaluations."""

    name: str
    count: int
    unit: str  # "step" or "image"
    unet_evaluations: int
    detail: str  # how count becomes UNet evaluations, or why there is nothing to do
    per_real: bool = False  # a stage run once per real image (inversion), else per synthetic one or a step


@dataclass(frozen=True)
class Plan:
    """What a run will do: its stages, for ``classes`` of ``total_classes`` classes, shared by ``ranks``;
    ``estimate``: how long it will take, when a probe measured it."""

    stages: tuple[Stage, ...]
    classes: int
    total_classes: int
    resolution: int | None  # None: the pipeline's own
    concept_resolution: int | None  # None: the pipeline's own, or no concepts (see method)
    ranks: int = 1
    method: str = "Diff-II"
    estimate: Estimate | None = None

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

    def with_estimate(self, estimate: Estimate) -> Plan:
        return dataclasses.replace(self, estimate=estimate)

    def lines(self) -> list[str]:
        """The plan as a small table: one line per stage, the total, then the estimated time (if any)."""
        done = self.total_classes - self.classes
        already = f" ({done} already in the store)" if done else ""
        shared = f", shared by {self.ranks} ranks" if self.ranks > 1 else ""
        concepts = (f", concepts learned at {_pixels(self.concept_resolution)}"
                    if any(stage.name == CONCEPTS for stage in self.stages) else "")
        head = (f"{self.method} plan: {self.classes} of {self.total_classes} classes to generate{already}{shared}; "
                f"images at {_pixels(self.resolution)}{concepts}")
        width = max(len(stage.detail) for stage in self.stages)
        digits = len(f"{self.unet_evaluations:,}")
        rows = [f"  {stage.name:<18}{stage.detail:<{width}}  {_evaluations(stage, digits)}" for stage in self.stages]
        total = f"{self.unet_evaluations:>{digits},} UNet evaluations"
        estimate = [] if self.estimate is None else [f"  {'estimated time':<18}{self.estimate.text()}"]
        return [head, *rows, f"  {'total':<18}{'':<{width}}  {total}", *estimate]

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
    class is pending, as :func:`~diffii_datasets.prepare.prepare` does.
    """
    from diffii_datasets.methods import get_method

    method = get_method(header.method)
    config = header.config
    pending = list(range(header.num_classes)) if pending is None else sorted(set(pending))
    stages = []
    if method.concepts:
        total = config.concepts.total_steps(header.num_classes)
        steps = total if concept_steps is None else concept_steps
        if not pending:
            steps, concepts_note = 0, "nothing to generate"
        batch = config.concepts.batch_size
        if steps:
            resuming = total - steps
            detail = f"{steps:,} steps x batch {batch}" + (f" (resuming at step {resuming:,})" if resuming else "")
        else:
            detail = f"none: {concepts_note or 'nothing to learn'}"
        stages.append(Stage(CONCEPTS, steps, "step", steps * batch, detail))
    for stage in method.image_stages(config):
        per_real = bool(stage.per_real)
        count = sum((header.real_counts if per_real else header.expected_counts)[c] for c in pending)
        evaluations = count * (stage.per_real if per_real else stage.per_synthetic)
        stages.append(Stage(stage.name, count, stage.unit, evaluations,
                            f"{count:,} {stage.detail}" if count else "none", per_real))
    concept_resolution = config.concepts.resolution if method.concepts else None
    return Plan(tuple(stages), len(pending), header.num_classes, getattr(config, "resolution", None),
                concept_resolution, ranks, method.title)


def plan_job(job: PreparationJob, cache_dir: str | os.PathLike) -> Plan:
    """What :func:`~diffii_datasets.prepare.prepare` would do now for ``job`` under ``cache_dir``.

    Reads, writes nothing: classes already committed to the job's store are left out,
    and so is concept learning when the concepts are given or already learned in the
    cache (after an interrupted run, only the steps still to go count).
    """
    from diffii_datasets.store import StoreFormatError, SyntheticStore
    from diffii_datasets.store.cache import store_path

    try:
        store: SyntheticStore | None = SyntheticStore.open(store_path(cache_dir, job.header()))
    except StoreFormatError:  # not made yet
        store = None
    pending = [c for c in range(len(job.class_names)) if store is None or not store.is_committed(c)]
    return plan_run(job, store, pending, ranks=1, cache_dir=cache_dir)


def plan_run(job: PreparationJob, store: SyntheticStore | None, pending: Sequence[int], ranks: int,
             cache_dir: str | os.PathLike | None = None) -> Plan:
    """The plan of generating ``pending`` classes of ``job`` into ``store`` (None: not made yet, in ``cache_dir``)."""
    steps, note = _concept_steps_to_go(job, Path(cache_dir) if store is None else store.path.parent, store)
    return plan_synthesis(job.header(), pending=pending, concept_steps=steps, concepts_note=note, ranks=ranks)


def _concept_steps_to_go(job: PreparationJob, cache_dir: Path, store: SyntheticStore | None) -> tuple[int, str]:
    """Concept-learning steps a run still has to make, and why none when none."""
    from diffii_datasets.diffusion.concepts.checkpoint import steps_done
    from diffii_datasets.store import ConceptCache

    if not job.method.concepts:
        return 0, "the method has none"
    if job.concepts is not None:
        return 0, "the concepts are given"
    cache = ConceptCache(cache_dir)
    if cache.is_learned(job.concepts_key()):
        return 0, f"already learned ({cache.directory(job.concepts_key())})"
    steps = job.config.concepts.total_steps(len(job.class_names))
    done = steps_done(store.concept_work_dir) if store is not None else 0
    if done <= 0:
        return steps, ""
    return max(steps - done, 0), "finished in the checkpoint of an interrupted run"


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
