"""Fill a :class:`SyntheticStore`: concepts, suffixes, then inversion and generation class by class.

This is the one generation path: the torch wrapper, the Hugging Face builder and
the CLI all call :func:`synthesize`. It orchestrates the diffusion layer and
writes through the store; it implements no diffusion math itself.

Resumable and safe to run from several processes at once: each class is done
under its own lock and committed atomically, classes already committed (and
intact) are skipped, the suffixes are derived under the store's lock and the
concepts under a lock of their key (shared by every store of the cache). Damage is
repaired, with a warning: a damaged class is generated again, damaged suffixes
derived again, damaged concepts learned again, a damaged manifest written again.
The base images are read one class at a time (``job.images_by_class`` may be lazy,
as :func:`~diffii_datasets.data.scan_dataset` makes it), so memory follows the
largest class, not the dataset.
Under ``torchrun`` the ranks of a :class:`~diffii_datasets.distributed.World`
share the work instead: pending classes are sharded by expected images, concepts
are learned data-parallel, and rank 0 writes the manifest once every rank is done.
A :class:`~diffii_datasets.plan.Plan` is shown before any work, and every stage has
a bar and announces its ETA after its first few steps (:mod:`diffii_datasets.progress`).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from PIL import Image

from diffii_datasets._io import FileFormatError, fingerprint, read_json, write_json
from diffii_datasets._warnings import warn_at_caller
from diffii_datasets.config import LEGACY_NAMES, DiffIIConfig
from diffii_datasets.diffusion.concepts import ConceptSet, learn_concepts
from diffii_datasets.diffusion.concepts.config import RECIPE_0_1, ConceptConfig, concept_recipe, recipe_differences
from diffii_datasets.diffusion.generator import generate_class, invert_class, num_synthetic
from diffii_datasets.diffusion.pipeline import execution_device, loading_bars, pipeline_resolution
from diffii_datasets.diffusion.suffixes import suffix_provider
from diffii_datasets.distributed import World, check_shared_filesystem, shard_classes
from diffii_datasets.data import ChainedImages
from diffii_datasets.plan import CONCEPTS, GENERATION, INVERSION, format_duration, plan_run
from diffii_datasets.progress import RunProgress, StageProgress
from diffii_datasets.store import StoreDamageError, StoreHeader, StoreProblem, SyntheticStore

logger = logging.getLogger(__name__)

__all__ = ["SynthesisJob", "SynthesisReport", "load_generation_pipeline", "pending_classes", "synthesize"]


@dataclass(frozen=True)
class SynthesisJob:
    """Everything that determines a synthetic set, besides the pipeline's weights."""

    images_by_class: Sequence[Sequence[Image.Image]]
    class_names: Sequence[str]
    metaclass: str
    config: DiffIIConfig
    dataset_fingerprint: str
    model: str
    concepts: ConceptSet | None = None

    def concepts_key(self) -> str:
        """Learned concepts depend on the data, the model, the concept recipe and the seed only."""
        return fingerprint({
            "dataset": self.dataset_fingerprint,
            "model": self.model,
            "metaclass": self.metaclass,
            "recipe": self.config.concepts.to_dict(),
            "seed": self.config.seed,
        })

    def concepts_identity(self) -> str:
        return self.concepts.identity() if self.concepts is not None else f"learned:{self.concepts_key()}"

    def header(self) -> StoreHeader:
        """The header of the store this job fills (its :meth:`~StoreHeader.key` names the store's directory)."""
        return StoreHeader(
            config=self.config,
            classes=tuple(self.class_names),
            metaclass=self.metaclass,
            dataset=self.dataset_fingerprint,
            model=self.model,
            concepts=self.concepts_identity(),
            real_counts=tuple(len(images) for images in self.images_by_class),
            expected_counts=tuple(self.expected_counts()),
        )

    def create_store(self, cache_dir: str | os.PathLike) -> SyntheticStore:
        """The store for this job under ``cache_dir`` (``<cache_dir>/<header key>``), opened for writing.

        A new store is never filled from another one: when ``cache_dir`` holds stores
        for the same data and model made with other knobs (another concept recipe, say),
        the log names each and the knobs that differ.
        """
        header = self.header()
        path = Path(cache_dir) / header.key()
        if not (path / "store.json").is_file():
            self._log_stores_made_otherwise(Path(cache_dir), header)
        return SyntheticStore.create(path, header)

    def _log_stores_made_otherwise(self, cache_dir: Path, header: StoreHeader) -> None:
        mine = header.config.to_dict()
        for other in sorted(cache_dir.glob("*/store.json")):
            try:
                theirs = read_json(other)
            except FileFormatError:
                continue
            same_data = [theirs.get(key) for key in ("dataset", "model", "metaclass", "classes")] == [
                header.dataset, header.model, header.metaclass, list(header.classes)]
            if not same_data or not isinstance(theirs.get("config"), dict):
                continue
            config = {LEGACY_NAMES.get(key, key): value for key, value in theirs["config"].items()}
            changed = [f"{knob}: {repr(config[knob]) if knob in config else '(unrecorded)'} -> {value!r}"
                       for knob, value in mine.items() if config.get(knob, _ABSENT) != value]
            if changed:
                logger.info("not reusing the store %s: it was made from the same data and model with other knobs "
                            "(%s)", other.parent, ", ".join(changed))

    def concepts_origin(self) -> dict[str, Any]:
        """What learned concepts were learned from, besides their recipe (saved beside them in the cache)."""
        return {"dataset": self.dataset_fingerprint, "model": self.model, "metaclass": self.metaclass}

    def expected_counts(self) -> list[int]:
        return [num_synthetic(len(images), self.config.expansion_rate) for images in self.images_by_class]


@dataclass
class SynthesisReport:
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


def _versions() -> dict[str, str]:
    import diffusers
    import transformers

    import diffii_datasets

    return {"diffii_datasets": diffii_datasets.__version__, "torch": torch.__version__.split("+")[0],
            "diffusers": diffusers.__version__, "transformers": transformers.__version__}


def _open_class_problems(store: SyntheticStore, classes: Sequence[int]) -> list[StoreProblem]:
    problems = store.verify(classes)
    for problem in problems:
        warn_at_caller(f"store {store.path}: class {problem.class_index} file {problem.file} is "
                       f"{problem.reason}; the class will be regenerated", RuntimeWarning)
    return problems


def pending_classes(store: SyntheticStore, classes: Sequence[int]) -> tuple[list[int], list[StoreProblem]]:
    """Classes that still need generating, after verifying the committed ones."""
    problems = _open_class_problems(store, classes)
    broken = {p.class_index for p in problems}
    return [c for c in classes if c in broken or not store.is_committed(c)], problems


def synthesize(
    store: SyntheticStore,
    job: SynthesisJob,
    pipeline_factory: Callable[[], Any],
    *,
    concepts_root: Path,
    classes: Sequence[int] | None = None,
    progress: bool = True,
    world: World | None = None,
) -> SynthesisReport:
    """Generate every missing class of ``classes`` (default: all) into ``store``.

    ``pipeline_factory`` is called at most once, and only when this process has
    work, so a complete store costs no diffusion work. ``concepts_root`` caches
    learned concept sets across stores (they do not depend on generation knobs).
    With work to do, the :class:`~diffii_datasets.plan.Plan` of it is shown first;
    ``progress`` shows it, a bar per stage and the ETAs on stderr (else they are
    logged at INFO).

    With a ``world`` of several ranks every rank calls this with the same arguments:
    after checking that all ranks see the store, the pending classes are dealt out by
    expected images (:func:`~diffii_datasets.distributed.shard_classes`), concepts
    are learned data-parallel by all ranks, each rank commits its own classes, and
    rank 0 writes the manifest after a barrier. Each class's images depend only on
    the seed and its index, so the store is the same whatever the number of ranks.
    The report lists what *this* rank generated.
    """
    try:
        return _synthesize(store, job, pipeline_factory, concepts_root, classes, progress, world or World())
    except BaseException:
        if store.remove_if_unused():  # a run that failed before any work leaves no empty store behind
            logger.info("removed the unused store %s", store.path)
        raise


def _synthesize(store: SyntheticStore, job: SynthesisJob, pipeline_factory: Callable[[], Any], concepts_root: Path,
                classes: Sequence[int] | None, progress: bool, world: World) -> SynthesisReport:
    all_classes = list(range(len(job.class_names)))
    classes = all_classes if classes is None else list(classes)
    report = SynthesisReport()
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
    if todo:
        counts = job.expected_counts()
        mine = shard_classes({c: counts[c] for c in todo}, world.size)[world.rank]
        if world.size > 1:
            logger.info("rank %d of %d: %d of %d pending classes (%d images)", world.rank, world.size, len(mine),
                        len(todo), sum(counts[c] for c in mine))
        if world.is_main:
            for line in plan_run(job, store, Path(concepts_root), todo, world.size).lines():
                board.announce(line)
        try:
            concepts = _concept_stage(store, job, pipeline, Path(concepts_root), board, world)
            if mine:
                pipe = pipeline()
                suffixes = _suffixes(store, job)
                concepts.apply(pipe)
                try:
                    _generate(store, job, pipe, concepts, suffixes, mine, report, board, world)
                finally:
                    concepts.remove(pipe)
        finally:
            board.close()
    else:
        _repair_shared_stage(store, job, pipeline, Path(concepts_root), board, world)
    world.barrier()  # every rank has committed its classes (or found them done)
    complete = False
    if world.is_main and all(store.is_committed(c) for c in all_classes):
        store.finalize(all_classes, versions=_versions())
        complete = True
    report.complete = world.broadcast(complete)
    report.repaired = repaired + store.repairs
    return report


def _pipeline_once(factory: Callable[[], Any], config: DiffIIConfig, progress: bool) -> Callable[[], Any]:
    """``factory`` called at most once, its loading bars shown only with ``progress``, its size checked."""

    @functools.cache
    def pipeline() -> Any:
        with loading_bars(progress):
            pipe = factory()
        own = pipeline_resolution(pipe)
        if config.resolution is not None and config.resolution != own:
            warn_at_caller(f"resolution={config.resolution} differs from the pipeline's own {own} px: inversion and "
                           f"generation run at {config.resolution} px, a size the model was not trained for (expect "
                           "worse images); resolution=None uses the pipeline's own")
        return pipe

    return pipeline


def _repair_shared_stage(store: SyntheticStore, job: SynthesisJob, pipeline: Callable[[], Any],
                         concepts_root: Path, board: RunProgress, world: World) -> None:
    """With nothing to generate: derive damaged suffixes again, learn damaged cached concepts again.

    Both only steer the generation of classes still to come, but a store is kept whole:
    the next class to be generated (or regenerated) must not use damaged ones.
    """
    directory = concepts_root / job.concepts_key()
    damaged = False
    if world.is_main:
        if store.shared_problems():
            _suffixes(store, job)
        damaged = job.concepts is None and directory.exists() and not _loads(directory)
    if world.broadcast(damaged):
        _concept_stage(store, job, pipeline, concepts_root, board, world)


def _loads(directory: Path) -> bool:
    try:
        ConceptSet.load(directory)
    except (ValueError, OSError):
        return False
    return True


def _pending(store: SyntheticStore, classes: list[int], world: World) -> tuple[list[int], list[StoreProblem]]:
    """:func:`pending_classes`, with the checksum work split over the ranks and the answer agreed by all."""
    if world.size == 1:
        return pending_classes(store, classes)
    todo, problems = pending_classes(store, classes[world.rank::world.size])
    gathered = world.all_gather((todo, problems))
    pending = {c for rank_todo, _ in gathered for c in rank_todo}
    return [c for c in classes if c in pending], [p for _, rank_problems in gathered for p in rank_problems]


def _concept_stage(store: SyntheticStore, job: SynthesisJob, pipeline: Callable[[], Any], concepts_root: Path,
                   board: RunProgress, world: World) -> ConceptSet:
    """:func:`_concepts` under a lock of the concept key, after checking the cached set.

    The lock (``<cache>/locks/concepts-<key>.lock``) is per key, not per store, so stores
    of different generation knobs sharing one cache learn their common concepts once. A
    cached set that does not load intact (a damaged file, an edited ``concepts.json``) is
    moved aside, with a warning, and learned again.
    """
    if job.concepts is not None:
        return job.concepts
    directory = concepts_root / job.concepts_key()
    lock = nullcontext()
    if world.is_main:  # beside concepts_root (<cache>/locks/), so a glob over it sees concept sets only
        locks = concepts_root.parent / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"concepts-{job.concepts_key()}.lock"))
    with lock:
        if world.is_main and directory.exists():
            try:
                ConceptSet.load(directory)
            except (ValueError, OSError) as error:
                store.repaired(StoreProblem(None, str(directory), f"not a usable concept set ({error})"),
                               "the concepts will be learned again")
                trash = directory.with_name(f".trash-{directory.name}-{os.getpid()}")
                os.rename(directory, trash)
                shutil.rmtree(trash, ignore_errors=True)
        return _concepts(store, job, pipeline, concepts_root, board, world)


def _concepts(store: SyntheticStore, job: SynthesisJob, pipeline: Callable[[], Any], concepts_root: Path,
              board: RunProgress, world: World) -> ConceptSet:
    """The job's concepts: given, cached under ``concepts_root``, or learned now (by all ranks together)."""
    if job.concepts is not None:
        return job.concepts
    directory = Path(concepts_root) / job.concepts_key()
    # One rank decides under the store lock, so every rank takes the same branch.
    with store.lock("shared") if world.is_main else nullcontext():
        cached = world.broadcast((directory / "concepts.json").is_file())
        if cached:
            logger.info("reusing learned concepts from %s", directory)
        else:
            if world.is_main:
                _log_concepts_learned_otherwise(Path(concepts_root), job)
            concepts = _learn(store, job, pipeline(), board, world)
            if world.is_main:
                concepts.save(directory)
                write_json(directory / _CONCEPTS_ORIGIN, job.concepts_origin())
            if world.size == 1:
                return concepts
    world.barrier()  # rank 0 has saved them: every rank uses the same saved set
    return ConceptSet.load(directory)


_CONCEPTS_ORIGIN = "learned-from.json"
"""Beside each cached concept set: :meth:`SynthesisJob.concepts_origin` (its ``concepts.json`` holds the recipe)."""
_ABSENT = object()


def _log_concepts_learned_otherwise(concepts_root: Path, job: SynthesisJob) -> None:
    """Say why cached concepts for this data and model (or, unrecorded, these classes) are not reused."""
    recipe = concept_recipe(job.config.concepts, job.config.seed)
    for manifest_path in sorted(concepts_root.glob("*/concepts.json")):
        try:
            manifest = read_json(manifest_path)
            origin = read_json(manifest_path.parent / _CONCEPTS_ORIGIN, missing_ok=True)
        except FileFormatError:
            continue
        if origin is not None:
            if origin != job.concepts_origin():
                continue
            changed = recipe_differences(manifest.get("recipe"), recipe)
            if not changed:
                continue
            logger.info("not reusing the concepts in %s: they were learned from the same data and model with "
                        "another recipe (%s)", manifest_path.parent, ", ".join(changed))
        elif manifest.get("class_names") == list(job.class_names) and manifest.get("metaclass") == job.metaclass:
            logger.info("not reusing the concepts in %s: they are for the same classes but record no recipe "
                        "(learned before recipes were recorded, by diffii-datasets 0.1's recipe: %s)",
                        manifest_path.parent, ", ".join(f"concept_{k}={v!r}" for k, v in RECIPE_0_1.items()))


def _learn(store: SyntheticStore, job: SynthesisJob, pipe: Any, board: RunProgress, world: World) -> ConceptSet:
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
                          job.config.concepts, seed=job.config.seed, work_dir=store.work_dir / "concepts",
                          progress=board.show, callback=(lambda step, _: clock.advance_to(step)) if clock else None,
                          world=world)


def _suffixes(store: SyntheticStore, job: SynthesisJob) -> list[str]:
    """The store's suffixes: saved (under a checksum) by the first process, derived again when damaged."""
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


def _generate(store: SyntheticStore, job: SynthesisJob, pipe: Any, concepts: ConceptSet, suffixes: list[str],
              todo: list[int], report: SynthesisReport, board: RunProgress, world: World) -> None:
    generation = job.config.generation
    counts = job.expected_counts()
    real_counts = [len(images) for images in job.images_by_class]
    # Two bars per rank (their own terminal lines), advanced at every UNet step: images done/total and images/s.
    inversion = board.stage(INVERSION, sum(real_counts[c] for c in todo), "image")
    creation = board.stage(GENERATION, sum(counts[c] for c in todo), "image")
    for class_index in todo:
        name = job.class_names[class_index]
        with store.class_lock(class_index):
            broken = {p.class_index for p in store.verify([class_index])}
            if store.is_committed(class_index) and class_index not in broken:
                logger.info("class %d (%s) was completed by another process, skipped", class_index, name)
                report.skipped.append(class_index)
                inversion.skip(real_counts[class_index])
                creation.skip(counts[class_index])
                continue
            store.remove_stale_temporaries(class_index)
            inversions = _reusable_inversions(store, class_index)
            store.discard(class_index)
            inversion.describe(name[:30])
            creation.describe(name[:30])
            tokens = concepts.class_tokens(class_index)
            images = list(job.images_by_class[class_index])  # one class in memory at a time
            with store.writing(class_index) as writer:
                for index, image in enumerate(images):
                    writer.add_real(index, image)
                if inversions is None:
                    inversion.resume()
                    inversions = invert_class(pipe, images, tokens, job.metaclass, generation,
                                              on_step=inversion.advance)
                else:
                    inversion.skip(real_counts[class_index])
                writer.write_inversions(inversions)
                creation.resume()
                for sample in generate_class(pipe, inversions, tokens, job.metaclass, suffixes, generation,
                                             seed=job.config.seed, class_index=class_index,
                                             on_step=creation.advance):
                    writer.add(sample.image, {
                        "index": sample.index,
                        "source_indices": list(sample.source_indices),
                        "lam": sample.lam,
                        "suffix": sample.suffix,
                        "seed": sample.seed,
                    })
            report.generated.append(class_index)
            logger.info("%sclass %d (%s): committed %d images", board.prefix, class_index, name, counts[class_index])


def _reusable_inversions(store: SyntheticStore, class_index: int) -> torch.Tensor | None:
    """The committed inversion pool of a class being regenerated, if it and its record are intact."""
    if not store.is_committed(class_index):
        return None
    try:
        return store.read_inversions(class_index)
    except StoreDamageError:
        return None
