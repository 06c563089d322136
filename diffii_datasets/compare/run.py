"""Running a comparison: each store before the first run that reads it, each group of runs, the table after each.

:func:`compare` plans (:func:`~diffii_datasets.compare.plan.plan_comparison`) and runs; a finished run is read
back, a killed one resumed, so the same call again skips what is done.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks
from diffii_datasets.classify.report import FIGURE_LABELS
from diffii_datasets.compare.plan import COMPARISON_FILES, ComparisonPlan, OwnData, PlannedRun, plan_comparison
from diffii_datasets.methods.config import MethodConfig

if TYPE_CHECKING:
    from diffii_datasets.distributed import World
    from diffii_datasets.job import PreparationJob

__all__ = ["compare", "run_comparison"]


def compare(
    data: str | OwnData | Sequence[str | OwnData],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    output_dir: str | os.PathLike,
    backbones: Sequence[str] = ("resnet50",),
    root: str | os.PathLike | None = None,
    recipe_knobs: Mapping[str, Any] | None = None,
    method_knobs: Mapping[str, Any] | None = None,
    configs: Mapping[str, MethodConfig] | None = None,
    figure: str = "best_test",
    validation_fraction: float = 0.0,
    cache_dir: str | os.PathLike | None = None,
    subset_seed: int = 0,
    profile: str = "exponential",
    download: bool = False,
    device: str | None = None,
    world: World | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Make each method's synthetic set, train each method under the same recipe, write the table; the table.

    ``data``: a setting of the classifier protocol (``"cub-5shot"``, ``"waterbirds"``, ``"sample"``), a paper
    table (``"table1"``: its 8 settings), an :class:`OwnData`, or a list of those; ``methods``: names of
    :func:`known_methods`; ``seeds``: the classifier seeds, one run each. ``backbones``: the published recipes
    to train (``("resnet50", "vit_b_16")`` for Table 1's two blocks; a pair the paper does not train, such as a
    long-tail setting with ViT-B/16, is left out and listed in ``skipped``); ``root``: the datasets' folder;
    ``recipe_knobs``: knobs changed in every run's recipe (``{"epochs": 10}``); ``method_knobs``: knobs of the
    methods' configs, each applied to the methods that declare it (``{"model": "tiny"}``); ``configs``: a
    method's whole config (the start, before ``method_knobs``); ``figure``: the accuracy the table shows
    (the authors' ``best_test``, the honest ``final_test``, or ``test_at_best_val`` with
    ``validation_fraction``); ``cache_dir``: where stores live (default: the shared cache, so stores made by
    ``generate`` are reused); ``subset_seed``, ``profile``, ``download``: how the training subsets are drawn
    and read. ``device``, or ``world`` (a ``torchrun`` launch; every rank calls this): where to run.

    Returns the comparison document (:func:`~diffii_datasets.classify.comparison.build_comparison`) with
    ``runs`` (each group's recipe, folder and report) and ``skipped``, as written to ``comparison.json``.
    """
    from diffii_datasets.distributed import World

    if world is None:
        import torch

        world = World(device=None if device is None else torch.device(device))
    elif device is not None:
        raise ValueError("pass device or world, not both: the world knows its device")

    def plan() -> ComparisonPlan:
        return plan_comparison(data, methods, seeds, output_dir=output_dir, backbones=backbones, root=root,
                               recipe_knobs=recipe_knobs, method_knobs=method_knobs, configs=configs, figure=figure,
                               validation_fraction=validation_fraction, cache_dir=cache_dir,
                               subset_seed=subset_seed, profile=profile, download=download)

    planned = plan() if world.is_main else None  # rank 0 first: it downloads what is missing
    world.barrier()
    return run_comparison(planned or plan(), world=world, workers=workers, progress=progress)


def run_comparison(plan: ComparisonPlan, *, world: World, workers: int | None = None, progress: bool = True
                   ) -> dict[str, Any]:
    """Run ``plan`` (:func:`plan_comparison`): each store before the first run that reads it, the files after each
    group of runs; the comparison document (see :func:`compare`)."""
    workers = None if workers is None else _checks.check_int(workers, "workers", minimum=0)
    opened: dict[Path, Any] = {}
    accuracies: dict[tuple[str, str, str], list[float]] = {}
    reports: dict[int, str] = {}
    document: dict[str, Any] = {}
    for number, run in enumerate(plan.runs):
        if progress and world.is_main:
            print(f"[{number + 1}/{len(plan.runs)}] {run.setting}, {run.classifier}, {run.method}: seeds "
                  f"{', '.join(map(str, run.seeds))}", file=sys.stderr, flush=True)
        if run.store is not None and run.store not in opened:
            job = next(store.job for store in plan.stores if store.path == run.store)
            opened[run.store] = _prepare(job, plan.cache_dir, world, progress)
        report = _train(plan, run, opened.get(run.store), world, workers, progress)
        reports[number] = str(run.directory / "report.json")
        accuracies.update(_accuracies(report, plan.figure, run))
        document = _document(plan, accuracies, reports)
        if world.is_main:
            _write(plan.output_dir, document)
    return document


def _prepare(job: PreparationJob, cache: Path, world: World, progress: bool) -> Any:
    """The job's store, made, completed or found complete, opened for reading."""
    from diffii_datasets.prepare import prepare
    from diffii_datasets.store import SyntheticStore

    report = prepare(job, cache_dir=cache, device=world.device, progress=progress, world=world)
    if not report.complete:
        raise RuntimeError(f"the store {report.store.path} is not complete after preparing it")
    return SyntheticStore.open(report.store.path)


def _train(plan: ComparisonPlan, run: PlannedRun, store: Any, world: World, workers: int | None,
           progress: bool) -> dict[str, Any]:
    from diffii_datasets.classify.protocol import train_runs, train_setting

    options = plan.options
    if run.setting in plan.own:  # one's own data: its test set as given
        data, validation = plan.own[run.setting], None
        test = data.test
        if options["validation_fraction"]:
            from diffii_datasets.classify.protocol import VALIDATION_SPLIT_SEED
            from diffii_datasets.image_datasets.sampling import split_per_class

            validation, test = split_per_class(data.test, options["validation_fraction"], seed=VALIDATION_SPLIT_SEED)
        return train_runs(data.train, test, run.recipe, output_dir=run.directory, seeds=run.seeds, store=store,
                          backbone=run.backbone, method=run.method, validation=validation, world=world,
                          workers=workers, progress=progress)
    return train_setting(run.setting, run.recipe, root=options["root"], output_dir=run.directory, seeds=run.seeds,
                         store=store, backbone=run.backbone, validation_fraction=options["validation_fraction"],
                         subset_seed=options["subset_seed"], profile=options["profile"], world=world,
                         workers=workers, progress=progress, download=options["download"])


def _accuracies(report: dict[str, Any], figure: str, run: PlannedRun) -> dict[tuple[str, str, str], list[float]]:
    from diffii_datasets.classify.comparison import report_accuracies

    return report_accuracies(report, figure=figure, method=run.method, setting=run.setting)


def _document(plan: ComparisonPlan, accuracies: dict[tuple[str, str, str], list[float]],
              reports: dict[int, str]) -> dict[str, Any]:
    from diffii_datasets.classify.comparison import build_comparison

    document = build_comparison(accuracies, figure=FIGURE_LABELS[plan.figure])
    runs = [{**run.to_dict(), "report": reports.get(number)} for number, run in enumerate(plan.runs)]
    return {**document, "runs": runs, "skipped": list(plan.skipped)}


def _write(output: Path, document: dict[str, Any]) -> None:
    from diffii_datasets._io import atomic_write, write_json
    from diffii_datasets.classify.comparison import format_markdown, render_comparison_html

    output.mkdir(parents=True, exist_ok=True)
    json_file, markdown_file, html_file = (output / name for name in COMPARISON_FILES)
    write_json(json_file, document)
    atomic_write(markdown_file, format_markdown(document).encode("utf-8"))
    atomic_write(html_file, render_comparison_html(document, title="Augmentation methods compared").encode("utf-8"))
