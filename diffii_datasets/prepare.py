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
:class:`~diffii_datasets.plan.Plan` is shown before any work, with its estimated time
from a short probe of the pipeline (:mod:`~diffii_datasets.estimate`; the published
concept recipe, or a run of an hour or more, on a CPU is warned about first), and every
stage has a bar and announces its ETA after its first few steps.
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
from diffii_datasets.plan import CONCEPTS, Plan, format_duration, plan_run
from diffii_datasets.progress import RunProgress
from diffii_datasets.store import ConceptCache, StoreDamageError, StoreProblem, SyntheticStore, default_cache_dir
from diffii_datasets.store.cache import related_stores, store_path

if TYPE_CHECKING:
    from diffii_datasets.diffusion.concepts import ConceptSet

logger = logging.getLogger(__name__)

LONG_ON_CPU_SECONDS = 3600
"""A run on a CPU estimated at this many seconds or more is warned about before it starts (so is the published
concept recipe on a CPU, whatever its estimate)."""

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

    ``"tiny"`` (:data:`~diffii_datasets.config.TINY_MODEL`) is the offline tiny pipeline, built on the spot.
    Generation shows one bar per process; the pipeline's per-step bars would only interleave with it.
    """
    from diffii_datasets._pretrained import default_device
    from diffii_datasets.config import TINY_MODEL

    if model == TINY_MODEL:
        from diffii_datasets.testing import tiny_pipeline

        return tiny_pipeline(seed=0, device=default_device(device))
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
            if other.other_model:  # likely a slip (another --model), and a whole new run: said at WARNING
                logger.warning("not reusing the store %s: it was made from the same images with another model (%s); "
                               "a new store is made for this one. To use that store, pass its model %r (model=, "
                               "--model)", other.path, other.why, other.header.model)
            else:
                logger.info("not reusing the store %s: it was made from the same images, but %s", other.path,
                            other.why)
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
            _show_plan(plan_run(job, store, todo, world.size), job, pipeline, board)
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


def _show_plan(plan: Plan, job: PreparationJob, pipeline: Callable[[], Any], board: RunProgress) -> None:
    """Announce ``plan`` with its estimated time (a short probe of the pipeline the run loads anyway), then warn
    before a long run on a CPU."""
    from diffii_datasets.diffusion.pipeline import execution_device
    from diffii_datasets.estimate import Estimate, estimate_plan

    seen = board.show or logging.getLogger("diffii_datasets.progress").isEnabledFor(logging.INFO)
    published = _published_concept_steps(plan)
    pipe = pipeline() if job.method.diffusion and not plan.empty and (seen or published) else None
    if not job.method.diffusion:
        estimate = Estimate.unknown("the method runs no UNet")
    elif plan.empty:
        estimate = Estimate(0.0, "nothing to run")
    elif pipe is None or not (seen or execution_device(pipe).type == "cpu"):
        estimate = Estimate.unknown("not measured: the plan is not shown")
    else:
        try:
            estimate = estimate_plan(plan, job, pipe)
        except Exception as error:  # an estimate is worth no failed run: the run itself says what is wrong
            logger.info("the probe of the plan's time failed: %s", error)
            estimate = Estimate.unknown(f"the probe of a few UNet calls failed: {error}")
    plan = plan.with_estimate(estimate)
    for line in plan.lines():
        board.announce(line)
    if pipe is not None:
        _warn_if_long_on_cpu(plan, pipe)


def _published_concept_steps(plan: Plan) -> bool:
    """Whether ``plan`` learns concepts for the published recipe's steps (or more)."""
    from diffii_datasets.diffusion.concepts.config import ConceptConfig

    return any(stage.name == CONCEPTS and stage.count >= ConceptConfig().train_steps for stage in plan.stages)


def _warn_if_long_on_cpu(plan: Plan, pipe: Any) -> None:
    """Before the published concept recipe, or any run estimated at :data:`LONG_ON_CPU_SECONDS` or more, starts on a
    CPU: the estimate, and what to do instead."""
    from diffii_datasets.diffusion.concepts.config import ConceptConfig
    from diffii_datasets.diffusion.pipeline import execution_device

    if execution_device(pipe).type != "cpu":
        return
    published = _published_concept_steps(plan)
    seconds = plan.estimate.seconds if plan.estimate is not None else None
    if not published and (seconds is None or seconds < LONG_ON_CPU_SECONDS):
        return
    took = f"about {format_duration(seconds)}" if seconds is not None else "an unknown time"
    recipe = (f", the published {ConceptConfig().train_steps:,} concept-learning steps among them" if published
              else "")
    warn_at_caller(f"this run will take {took} on a CPU ({plan.unet_evaluations:,} UNet evaluations{recipe}). Use a "
                   "GPU (device=, --device cuda), pass ready concepts (concepts=, --concepts), lower "
                   "concept_train_steps (--concept-train-steps), or try the tiny offline model first "
                   "(DiffIIConfig.preset(\"tiny\"), --model tiny)")


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
    """With nothing to generate: derive damaged suffixes again; learn damaged cached concepts again (or write their
    ``learned-from.json`` again); discard damaged concept-learning checkpoints.

    They only steer the generation of classes still to come, but a store is kept whole:
    the next class to be generated (or regenerated) must not use damaged ones.
    """
    method, damaged = job.method, False
    if world.is_main:
        if method.suffixes and store.shared_problems():
            _suffixes(store, job)
        damaged = (method.concepts and job.concepts is None
                   and bool(cache.problems(job.concepts_identity(), job.concepts_origin())
                            or store.concept_checkpoint_problems()))
    if world.broadcast(damaged):
        _concept_stage(store, job, pipeline, cache, board, world)


def _concept_stage(store: SyntheticStore, job: PreparationJob, pipeline: Callable[[], Any], cache: ConceptCache,
                   board: RunProgress, world: World) -> ConceptSet:
    """The job's concepts: given, cached, or learned now (by all ranks together) and saved into the cache.

    Under the lock of the concept key (shared by every store of the cache, so stores of
    different generation knobs or methods learn their common concepts once): what killed
    processes left of the set is swept, a cached set that does not load intact is moved
    aside, with a warning, and learned again; an intact one gets its ``learned-from.json``
    written again from the job when that is missing or wrong, and the store's damaged
    concept-learning checkpoints are discarded (the concepts they were learning are cached).
    """
    if job.concepts is not None:
        return job.concepts
    key = job.concepts_key()
    with cache.lock(key) if world.is_main else nullcontext():
        if world.is_main:
            cache.sweep(key)
            cache.discard_if_damaged(key, store)
        cached = world.broadcast(cache.is_learned(key))
        if cached:
            logger.info("reusing learned concepts from %s", cache.directory(key))
            if world.is_main:
                cache.restore_origin(key, job.concepts_origin(), store)
                store.discard_damaged_checkpoints()
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

    recipe = concept_recipe(job.config.concepts)
    for directory, manifest, origin in cache.learned_sets():
        if origin is None or origin != job.concepts_origin():
            continue
        changed = recipe_differences(manifest.get("recipe"), recipe)
        if changed:
            logger.info("not reusing the concepts in %s: they were learned from the same data and model with "
                        "another recipe (%s)", directory, ", ".join(changed))


def _learn(store: SyntheticStore, job: PreparationJob, pipe: Any, board: RunProgress, world: World) -> ConceptSet:
    from diffii_datasets.diffusion.concepts import ConceptWriteError, learn_concepts

    empty = [name for name, images in zip(job.class_names, job.images_by_class) if not images]
    if empty:
        raise ValueError(f"cannot learn concepts for classes with no images: {empty}; "
                         "pass concepts= or drop those classes")
    steps = job.config.concepts.total_steps(len(job.class_names))
    logger.info("learning class concepts (%d steps%s)", steps,
                f", data-parallel on {world.size} ranks" if world.size > 1 else "")
    clock = board.stage(CONCEPTS, steps, "step", bar=False) if world.is_main else None
    if clock is not None:
        clock.resume()
    try:
        return learn_concepts(pipe, job.images_by_class, job.class_names, job.metaclass, job.config.concepts,
                              work_dir=store.concept_work_dir, progress=board.show,
                              callback=(lambda step, _: clock.advance_to(step)) if clock else None, world=world)
    except ConceptWriteError as error:  # a full disk: say which store the checkpoint belongs to
        error.message += f" (a concept-learning checkpoint of the store {store.path})"
        raise


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
