"""``prepare(job)``: the one way a synthetic set is made, whatever the method and whoever asks.

The wrapper, the Hub builder, every command and the split-ratio sweep build a
:class:`~diffii_datasets.job.PreparationJob` and call :func:`prepare`, which finds
(or creates) the job's store in the cache and fills it: the method's concepts (learned
once per concept key into the cache, under a lock every store of the cache shares),
its suffixes (derived once per store), then its classes, one at a time, each under
its own lock and committed atomically by the method's
:meth:`~diffii_datasets.methods.Method.generate_class`. It implements no diffusion
math itself.

Resumable and safe to run from several processes at once: classes already committed
(and intact) are skipped; damage is repaired with a warning (a damaged class is
generated again, damaged suffixes derived again, damaged concepts learned again, a
damaged manifest written again). The base images are read one class at a time. Under
``torchrun`` the ranks of a :class:`~diffii_datasets.distributed.World` share the
work: pending classes are sharded by expected images, concepts are learned
data-parallel, and rank 0 writes the manifest once every rank is done. A
:class:`~diffii_datasets.plan.Plan` is shown before any work, and every stage has a
bar and announces its ETA after its first few steps.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.distributed import World
from diffii_datasets.job import PreparationJob
from diffii_datasets.methods import ClassJob
from diffii_datasets.plan import CONCEPTS, format_duration, plan_run
from diffii_datasets.progress import RunProgress, StageProgress
from diffii_datasets.store import ConceptCache, StoreDamageError, StoreProblem, SyntheticStore, default_cache_dir
from diffii_datasets.store.cache import related_stores, store_path

if TYPE_CHECKING:
    from diffii_datasets.diffusion.concepts import ConceptSet

logger = logging.getLogger(__name__)

__all__ = ["PreparationReport", "fill_store", "load_generation_pipeline", "pending_classes", "prepare"]


@dataclass
class PreparationReport:
    """What :func:`prepare` did: the store, and the classes this process generated, skipped and repaired."""

    store: SyntheticStore
    generated: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    repaired: list[StoreProblem] = field(default_factory=list)
    complete: bool = False


def load_generation_pipeline(model: str, device: Any = None) -> Any:
    """``model`` loaded for generation: :func:`~diffii_datasets.diffusion.pipeline.load_pipeline`, step bars off.

    Generation shows one bar per process; the pipeline's per-step bars would only interleave with it.
    """
    from diffii_datasets.diffusion.pipeline import load_pipeline

    pipe = load_pipeline(model, device=device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prepare(
    job: PreparationJob,
    *,
    cache_dir: str | os.PathLike | None = None,
    pipeline: Any = None,
    device: Any = None,
    classes: Sequence[int] | None = None,
    progress: bool = True,
    world: World | None = None,
) -> PreparationReport:
    """Find or make ``job``'s store under ``cache_dir`` (default: :func:`default_cache_dir`) and fill it.

    ``pipeline`` is a ready pipeline (it must be the job's model); without one the job's
    model is loaded on ``device``, at most once and only when this process has work, so a
    complete store costs no diffusion work. ``classes``: only these (default: all).
    ``progress`` shows the plan, a bar per stage and the ETAs on stderr (else they are
    logged at INFO). ``world``: the ranks of a ``torchrun`` launch, which all call this
    with the same arguments (see :func:`fill_store`). A run that fails before any work
    leaves no empty store behind (an interrupt leaves everything as it is).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    source_config = job.method.source_config(job.config)
    source = None
    if source_config is not None:  # made first, whole: what this method reads across classes
        source = prepare(dataclasses.replace(job, config=source_config), cache_dir=cache, pipeline=pipeline,
                         device=device, progress=progress, world=world).store
    header = job.header()
    path = store_path(cache, header)
    if not path.is_dir():
        for other in related_stores(cache, header):
            logger.info("not reusing the store %s: it was made from the same images, but %s", other.path, other.why)
    store = SyntheticStore.create(path, header)
    model = job.config.model

    def load() -> Any:
        return pipeline if pipeline is not None else load_generation_pipeline(model, device)

    try:
        return fill_store(store, job, load, classes=classes, progress=progress, world=world, source=source)
    except Exception:
        if store.remove_if_unused():  # nothing was done: leave no empty store behind
            logger.info("removed the unused store %s", store.path)
        raise
    finally:
        store.close()


def pending_classes(store: SyntheticStore, classes: Sequence[int]) -> tuple[list[int], list[StoreProblem]]:
    """Classes that still need generating, after verifying the committed ones (damaged ones are redone)."""
    problems = store.verify(classes)
    for problem in problems:
        warn_at_caller(f"store {store.path}: class {problem.class_index} file {problem.file} is "
                       f"{problem.reason}; the class will be regenerated", RuntimeWarning)
    broken = {p.class_index for p in problems}
    return [c for c in classes if c in broken or not store.is_committed(c)], problems


def fill_store(store: SyntheticStore, job: PreparationJob, pipeline_factory: Callable[[], Any], *,
               classes: Sequence[int] | None = None, progress: bool = True, world: World | None = None,
               source: SyntheticStore | None = None) -> PreparationReport:
    """Generate every missing class of ``classes`` (default: all) of ``job`` into ``store`` (opened for writing).

    With a ``world`` of several ranks every rank calls this with the same arguments: after
    checking that all ranks see the store, the pending classes are dealt out by expected
    images (:func:`~diffii_datasets.distributed.shard_classes`), concepts are learned
    data-parallel by all ranks, each rank commits its own classes, and rank 0 writes the
    manifest after a barrier. Each class's images depend only on the seed and its index, so
    the store is the same whatever the number of ranks. The report lists what *this* rank did.
    ``source``: the complete store of the method's ``source_config``, for a method that reads one.
    """
    from diffii_datasets.distributed import check_shared_filesystem, shard_classes

    world = world or World()
    method = job.method
    all_classes = list(range(len(job.class_names)))
    classes = all_classes if classes is None else list(classes)
    report = PreparationReport(store)
    if world.size > 1:
        check_shared_filesystem(world, store.work_dir / "ranks")
    todo, repaired = _pending(store, classes, world)
    report.skipped = [c for c in classes if c not in todo]
    for class_index in report.skipped:
        logger.info("class %d (%s) is already in the store %s, skipped", class_index, job.class_names[class_index],
                    store.path)
    board = RunProgress(progress, prefix=f"rank {world.rank}: " if world.size > 1 else "",
                        first_position=2 * world.rank)
    pipeline = _pipeline_once(pipeline_factory, job.config, progress)
    cache = ConceptCache(store.path.parent)
    if todo:
        counts = job.expected_counts()
        mine = shard_classes({c: counts[c] for c in todo}, world.size)[world.rank]
        if world.size > 1:
            logger.info("rank %d of %d: %d of %d pending classes (%d images)", world.rank, world.size, len(mine),
                        len(todo), sum(counts[c] for c in mine))
        if world.is_main:
            for line in plan_run(job, store, todo, world.size).lines():
                board.announce(line)
        try:
            concepts = _concept_stage(store, job, pipeline, cache, board, world) if method.concepts else None
            if mine:
                pipe = pipeline() if method.diffusion else None
                suffixes = _suffixes(store, job) if method.suffixes else []
                if concepts is not None:
                    concepts.apply(pipe)
                try:
                    _generate(store, job, pipe, concepts, suffixes, mine, report, board, source)
                finally:
                    if concepts is not None:
                        concepts.remove(pipe)
        finally:
            board.close()
    else:
        _repair_shared_stage(store, job, pipeline, cache, board, world)
    world.barrier()  # every rank has committed its classes (or found them done)
    complete = False
    if world.is_main and all(store.is_committed(c) for c in all_classes):
        store.finalize(all_classes, versions=_versions())
        complete = True
    report.complete = world.broadcast(complete)
    report.repaired = repaired + store.repairs
    return report


def _versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    import diffii_datasets

    return {"diffii_datasets": diffii_datasets.__version__, "torch": torch.__version__.split("+")[0],
            "diffusers": diffusers.__version__, "transformers": transformers.__version__}


def _pipeline_once(factory: Callable[[], Any], config: Any, progress: bool) -> Callable[[], Any]:
    """``factory`` called at most once, its loading bars shown only with ``progress``, its size checked."""
    from diffii_datasets.diffusion.pipeline import loading_bars, pipeline_resolution

    @functools.cache
    def pipeline() -> Any:
        with loading_bars(progress):
            pipe = factory()
        own = pipeline_resolution(pipe)
        resolution = getattr(config, "resolution", None)
        if resolution is not None and resolution != own:
            warn_at_caller(f"resolution={resolution} differs from the pipeline's own {own} px: inversion and "
                           f"generation run at {resolution} px, a size the model was not trained for (expect "
                           "worse images); resolution=None uses the pipeline's own")
        return pipe

    return pipeline


def _pending(store: SyntheticStore, classes: list[int], world: World) -> tuple[list[int], list[StoreProblem]]:
    """:func:`pending_classes`, with the checksum work split over the ranks and the answer agreed by all."""
    if world.size == 1:
        return pending_classes(store, classes)
    todo, problems = pending_classes(store, classes[world.rank::world.size])
    gathered = world.all_gather((todo, problems))
    pending = {c for rank_todo, _ in gathered for c in rank_todo}
    return [c for c in classes if c in pending], [p for _, rank_problems in gathered for p in rank_problems]


def _repair_shared_stage(store: SyntheticStore, job: PreparationJob, pipeline: Callable[[], Any],
                         cache: ConceptCache, board: RunProgress, world: World) -> None:
    """With nothing to generate: derive damaged suffixes again, learn damaged cached concepts again.

    Both only steer the generation of classes still to come, but a store is kept whole:
    the next class to be generated (or regenerated) must not use damaged ones.
    """
    method, damaged = job.method, False
    if world.is_main:
        if method.suffixes and store.shared_problems():
            _suffixes(store, job)
        damaged = (method.concepts and job.concepts is None
                   and bool(cache.problems(job.concepts_identity())))
    if world.broadcast(damaged):
        _concept_stage(store, job, pipeline, cache, board, world)


def _concept_stage(store: SyntheticStore, job: PreparationJob, pipeline: Callable[[], Any], cache: ConceptCache,
                   board: RunProgress, world: World) -> ConceptSet:
    """The job's concepts: given, cached, or learned now (by all ranks together) and saved into the cache.

    Under the lock of the concept key (shared by every store of the cache, so stores of
    different generation knobs or methods learn their common concepts once), a cached set
    that does not load intact is moved aside, with a warning, and learned again.
    """
    if job.concepts is not None:
        return job.concepts
    key = job.concepts_key()
    with cache.lock(key) if world.is_main else nullcontext():
        if world.is_main:
            cache.discard_if_damaged(key, store)
        cached = world.broadcast(cache.is_learned(key))
        if cached:
            logger.info("reusing learned concepts from %s", cache.directory(key))
        else:
            if world.is_main:
                _log_concepts_learned_otherwise(cache, job)
            concepts = _learn(store, job, pipeline(), board, world)
            if world.is_main:
                cache.save(key, concepts, job.concepts_origin(), store)
            if world.size == 1:
                return concepts
    world.barrier()  # rank 0 has saved them: every rank uses the same saved set
    return cache.load(key)


def _log_concepts_learned_otherwise(cache: ConceptCache, job: PreparationJob) -> None:
    """Say why cached concepts for this data and model are not reused (another recipe)."""
    from diffii_datasets.diffusion.concepts.config import concept_recipe, recipe_differences

    recipe = concept_recipe(job.config.concepts, job.config.seed)
    for directory, manifest, origin in cache.learned_sets():
        if origin is None or origin != job.concepts_origin():
            continue
        changed = recipe_differences(manifest.get("recipe"), recipe)
        if changed:
            logger.info("not reusing the concepts in %s: they were learned from the same data and model with "
                        "another recipe (%s)", directory, ", ".join(changed))


def _learn(store: SyntheticStore, job: PreparationJob, pipe: Any, board: RunProgress, world: World) -> ConceptSet:
    from diffii_datasets.diffusion.concepts import ConceptConfig, learn_concepts
    from diffii_datasets.diffusion.pipeline import execution_device

    empty = [name for name, images in zip(job.class_names, job.images_by_class) if not images]
    if empty:
        raise ValueError(f"cannot learn concepts for classes with no images: {empty}; "
                         "pass concepts= or drop those classes")
    steps = job.config.concepts.train_steps
    logger.info("learning class concepts (%d steps%s)", steps,
                f", data-parallel on {world.size} ranks" if world.size > 1 else "")
    on_cpu = execution_device(pipe).type == "cpu"

    def warn_if_long_on_cpu(stage: StageProgress) -> None:
        if on_cpu and steps >= ConceptConfig().train_steps:  # the published recipe's
            warn_at_caller(f"learning concepts for {steps:,} steps (the published recipe) on a CPU will take about "
                           f"{format_duration(stage.remaining_seconds() or 0)} at the measured {stage.speed()}. Use "
                           "a GPU, pass ready concepts, or lower concept_train_steps (--concept-train-steps) for a "
                           "quick look")

    clock = board.stage(CONCEPTS, steps, "step", bar=False, on_measured=warn_if_long_on_cpu) if world.is_main \
        else None
    if clock is not None:
        clock.resume()
    return learn_concepts(pipe, job.images_by_class, job.class_names, job.metaclass,
                          job.config.concepts, seed=job.config.seed, work_dir=store.concept_work_dir,
                          progress=board.show, callback=(lambda step, _: clock.advance_to(step)) if clock else None,
                          world=world)


def _suffixes(store: SyntheticStore, job: PreparationJob) -> list[str]:
    """The store's suffixes: saved (under a checksum) by the first process, derived again when damaged."""
    from diffii_datasets.base_dataset import ChainedImages
    from diffii_datasets.diffusion.suffixes import suffix_provider

    with store.lock("shared"):
        try:
            cached = store.read_suffixes()
        except StoreDamageError as error:
            store.repaired(error.store_problem, "the suffixes will be derived again")
            cached = None
        if cached is not None:
            return cached
        provider = suffix_provider(job.config.suffixes)
        suffixes = provider.suffixes(ChainedImages(job.images_by_class), job.metaclass, cache_dir=store.shared_dir)
        store.write_suffixes(suffixes)
        return suffixes


def _generate(store: SyntheticStore, job: PreparationJob, pipe: Any, concepts: ConceptSet | None,
              suffixes: list[str], todo: list[int], report: PreparationReport, board: RunProgress,
              source: SyntheticStore | None) -> None:
    method = job.method
    counts = job.expected_counts()
    real_counts = [len(images) for images in job.images_by_class]
    # One bar per stage and rank (their own terminal lines), advanced at every UNet step.
    stages = {stage.name: board.stage(stage.name, sum(real_counts[c] if stage.per_real else counts[c]
                                                      for c in todo), stage.unit)
              for stage in method.image_stages(job.config)}
    for class_index in todo:
        name = job.class_names[class_index]
        with store.class_lock(class_index):
            broken = {p.class_index for p in store.verify([class_index])}
            if store.is_committed(class_index) and class_index not in broken:
                logger.info("class %d (%s) was completed by another process, skipped", class_index, name)
                report.skipped.append(class_index)
                for stage in method.image_stages(job.config):
                    stages[stage.name].skip(real_counts[class_index] if stage.per_real else counts[class_index])
                continue
            store.remove_stale_temporaries(class_index)
            previous = method.reusable(store, class_index)
            store.discard(class_index)
            for stage in stages.values():
                stage.describe(name[:30])
            images = list(job.images_by_class[class_index])  # one class in memory at a time
            with store.writing(class_index) as writer:
                for index, image in enumerate(images):
                    writer.add_real(index, image)
                method.generate_class(ClassJob(pipe, job.config, class_index, job.class_names, job.metaclass,
                                               images, concepts, suffixes, writer, previous, stages, source))
            report.generated.append(class_index)
            logger.info("%sclass %d (%s): committed %d images", board.prefix, class_index, name, counts[class_index])
