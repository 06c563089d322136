"""Planning a comparison: the data, the methods, the stores to make and the classifier runs, with their cost.

:func:`plan_comparison` runs nothing: it lists each store with the UNet evaluations it still needs and each group
of runs with the classifier epochs it still needs (``compare --dry-run``). Importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks
from diffii_datasets.classify.recipes import BACKBONES, OOD_SETTING, SAMPLE_SETTING, Recipe, recipe_for, \
    recipe_settings
from diffii_datasets.classify.report import FIGURE_LABELS
from diffii_datasets.methods import get_method, list_methods
from diffii_datasets.methods.config import MethodConfig

if TYPE_CHECKING:
    from diffii_datasets.job import PreparationJob
    from diffii_datasets.plan import Plan

__all__ = ["CLASSIFIER_METHODS", "COMPARISON_FILES", "OWN_DATA_RECIPE", "RUNS_DIR", "TABLES", "ComparisonPlan",
           "OwnData", "PlannedRun", "PlannedStore", "known_methods", "method_config", "plan_comparison",
           "table_settings"]

CLASSIFIER_METHODS: Mapping[str, Mapping[str, bool]] = {"original": {}, "mixup": {"mixup": True},
                                                        "cutmix": {"cutmix": True}}
"""The methods that make no images, and the recipe knobs each turns on (they train on the real images alone)."""
TABLES = ("table1", "table2", "table3")
"""Names that stand for the settings of a paper table (:func:`table_settings`)."""
OWN_DATA_RECIPE = "cub-5shot"
"""One's own data trains with this setting's published recipe for the backbone (the few-shot CUB one), as
``diffii-datasets train --test-folder`` does; ``recipe_knobs`` change it."""
SAMPLE_METACLASS = "shape"
"""The metaclass of the bundled sample (as ``diffii-datasets demo`` prompts it)."""
COMPARISON_FILES = ("comparison.json", "comparison.md", "comparison.html")
RUNS_DIR = "runs"
_FIXED_BY_METHOD = ("mixup", "cutmix", "seed")  # recipe knobs the methods (and seeds=) set, not the caller


@dataclass(frozen=True)
class OwnData:
    """One's own data as a column of the comparison: ``name`` (the column's label), a training and a test set of
    ``(PIL image, label)`` items with the same classes in the same order (``ImageFolder`` s), and ``metaclass``,
    the word the prompts use for what the classes are (``"bird"``)."""

    name: str
    train: Any
    test: Any
    metaclass: str

    def __post_init__(self) -> None:
        from diffii_datasets.settings.base import FAMILIES

        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.name):
            _checks.fail(ValueError, "data.name", "letters, digits, '.', '_' and '-' (a folder name)", self.name)
        if self.name in recipe_settings() or self.name.startswith(OOD_SETTING) or any(
                re.fullmatch(rf"{re.escape(family)}-(\d+shot|if[\d.]+)", self.name) for family in FAMILIES):
            _checks.fail(ValueError, "data.name", "unlike the paper's settings (it would stand in the paper's tables, "
                                                  "beside the paper's numbers)", self.name)
        _checks.check_one_line(self.metaclass, "data.metaclass")


def table_settings(table: str) -> list[str]:
    """The settings of a paper table: ``table1`` the 8 few-shot ones, ``table2`` the 6 long-tail ones, ``table3``
    Waterbirds."""
    from diffii_datasets.settings.base import list_settings

    _checks.check_choice(table, "table", TABLES)
    if table == "table3":
        return [OOD_SETTING]
    return [setting.name for setting in list_settings() if setting.long_tail == (table == "table2")]


def known_methods() -> list[str]:
    """Every method a comparison can run: those that make no images, then the registered ones."""
    return [*CLASSIFIER_METHODS, *list_methods()]


@dataclass
class PlannedStore:
    """A synthetic set the comparison reads: its method, the data it augments, its store and the work still to do."""

    method: str
    data: str
    path: Path
    plan: Plan
    job: PreparationJob = field(repr=False)
    read_by: str | None = None  # the method that reads this store (a filter reads its source), when not one itself


@dataclass
class PlannedRun:
    """The classifier runs of one method on one setting and backbone: its recipe, seeds, folder and store."""

    setting: str
    backbone: str | None  # the paper's backbone whose recipe this is; None when the recipe's model is another
    method: str
    recipe: Recipe
    seeds: tuple[int, ...]
    directory: Path
    store: Path | None
    finished: tuple[int, ...] = ()  # seeds with a complete run in the folder
    started: tuple[int, ...] = ()  # seeds with the checkpoint of a killed run

    @property
    def classifier(self) -> str:
        """How the table names the classifier: the backbone, or the recipe's model."""
        return self.backbone or self.recipe.model

    @property
    def epochs_to_run(self) -> int:
        return self.recipe.epochs * (len(self.seeds) - len(self.finished))

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "backbone": self.classifier, "method": self.method, "seeds": list(self.seeds),
                "directory": str(self.directory), "store": None if self.store is None else str(self.store),
                "recipe": {k: v for k, v in self.recipe.to_dict().items() if k != "seed"}}


@dataclass
class ComparisonPlan:
    """What :func:`compare` runs: the stores to make, the classifier runs, and the pairs it leaves out (why)."""

    output_dir: Path
    cache_dir: Path
    figure: str
    stores: list[PlannedStore]
    runs: list[PlannedRun]
    skipped: list[str]
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # how the settings' data is read
    own: dict[str, OwnData] = field(default_factory=dict, repr=False)

    @property
    def unet_evaluations(self) -> int:
        """UNet evaluations still to run; concepts that several stores share are learned, and counted, once."""
        from diffii_datasets.plan import CONCEPTS

        total, learned = 0, set()
        for store in self.stores:
            total += store.plan.unet_evaluations
            job = store.job
            if job.method.concepts and job.concepts is None:
                if job.concepts_key() in learned:
                    total -= sum(stage.unet_evaluations for stage in store.plan.stages if stage.name == CONCEPTS)
                learned.add(job.concepts_key())
        return total

    @property
    def classifier_epochs(self) -> int:
        """Classifier epochs still to run (a killed run counts whole: it resumes where it stopped)."""
        return sum(run.epochs_to_run for run in self.runs)

    def lines(self) -> list[str]:
        """The plan as text: a line per store and per group of runs with what each still costs, then the totals."""
        seeds = sorted({seed for run in self.runs for seed in run.seeds})
        settings = list(dict.fromkeys(run.setting for run in self.runs))
        lines = [f"comparison of {len(dict.fromkeys(r.method for r in self.runs))} methods on {len(settings)} "
                 f"setting(s) ({', '.join(settings)}), seeds {', '.join(map(str, seeds))}; the table shows the "
                 f"{FIGURE_LABELS[self.figure]}", f"stores (in {self.cache_dir}):"]
        rows = [[store.data, store.method + (f" (read by {store.read_by})" if store.read_by else ""),
                 _store_state(store.plan), str(store.path)] for store in self.stores]
        lines += _aligned(rows) if rows else ["  none: no method makes images"]
        lines.append(f"classifier runs (in {self.output_dir / RUNS_DIR}):")
        lines += _aligned([[run.setting, run.classifier, run.method,
                            "real images" if run.store is None else f"p = {run.recipe.synthetic_probability:g}",
                            f"{len(run.seeds)} x {run.recipe.epochs} epochs"
                            + (f", {len(run.finished)} finished" if run.finished else "")
                            + (f", {len(run.started)} to resume" if run.started else ""),
                            f"{run.epochs_to_run:,} epochs to run"] for run in self.runs])
        lines += [f"skipped: {reason}" for reason in self.skipped]
        lines.append(f"total still to run: {self.unet_evaluations:,} UNet evaluations, {self.classifier_epochs:,} "
                     f"classifier epochs ({len(self.runs) * len(seeds)} classifier runs in all)")
        return lines


def _store_state(plan: Plan) -> str:
    if not plan.classes:
        return "complete"
    if plan.empty:  # a method that runs no UNet (a filter)
        return f"{plan.classes} of {plan.total_classes} classes to make, no UNet evaluations"
    return f"{plan.unet_evaluations:,} UNet evaluations to run"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def plan_comparison(
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
) -> ComparisonPlan:
    """What :func:`compare` would run and what it still costs (arguments: :func:`compare`'s).

    Reads the data of the methods that make images (to key their stores) and what the cache and
    ``output_dir`` hold; writes nothing and runs no model.
    """
    from diffii_datasets.store import default_cache_dir

    columns = _columns(data)
    methods = _methods(methods)
    seeds = _seeds(seeds)
    backbones = list(_checks.check_str_sequence(backbones, "backbones"))
    for backbone in backbones:
        _checks.check_choice(backbone, "backbones", BACKBONES)
    changes = _recipe_changes(recipe_knobs, methods)
    figure = _checks.check_choice(figure, "figure", tuple(FIGURE_LABELS))
    validation_fraction = _checks.check_number(validation_fraction, "validation_fraction", minimum=0)
    if validation_fraction >= 1 or (figure == "test_at_best_val") != (validation_fraction > 0):
        raise ValueError(f"figure {figure!r} with validation_fraction {validation_fraction}: test_at_best_val needs a "
                         "validation_fraction in (0, 1), and the other figures none")
    making = [method for method in methods if method not in CLASSIFIER_METHODS]
    knobs = _method_knobs(method_knobs, making)
    configs = _configs(configs, making)
    output = Path(output_dir).expanduser()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    own = {column.name: column for column in columns if isinstance(column, OwnData)}
    options = {"root": root, "subset_seed": subset_seed, "profile": profile, "download": download,
               "validation_fraction": validation_fraction}
    plan = ComparisonPlan(output, cache, figure, [], [], [], options, own)
    stores: dict[tuple[str, str], PlannedStore] = {}
    for name in (column if isinstance(column, str) else column.name for column in columns):
        for backbone in backbones:
            try:  # a pair the paper does not train (a long tail with ViT-B/16) is left out
                recipe = recipe_for(OWN_DATA_RECIPE if name in own else name, backbone).replace(**changes)
            except ValueError as error:
                plan.skipped.append(f"{name} with {backbone}: {error}")
                continue
            for method in methods:
                store = None
                if method in CLASSIFIER_METHODS:
                    run_recipe = recipe.replace(synthetic_probability=0.0, **CLASSIFIER_METHODS[method])
                else:
                    key = ("cub-5shot" if name == OOD_SETTING else name, method)  # Waterbirds trains as cub-5shot
                    if key not in stores:
                        stores[key] = _plan_store(plan, *key, knobs, configs.get(method))
                    store, run_recipe = stores[key].path, recipe
                plan.runs.append(_planned_run(output, name, backbone, method, run_recipe, seeds, store))
    if not plan.runs:
        raise ValueError(f"backbones: the paper trains none of these settings with {', '.join(backbones)} "
                         f"({'; '.join(plan.skipped)})")
    _check_distinct(plan.runs)
    return plan


def _columns(data: Any) -> list[str | OwnData]:
    items = [data] if isinstance(data, (str, OwnData)) else list(data) if isinstance(data, Sequence) else []
    if not items or not all(isinstance(item, (str, OwnData)) for item in items):
        _checks.fail(TypeError, "data", "a setting, a table (table1, table2, table3), an OwnData, or a list of those",
                     data)
    columns: list[str | OwnData] = []
    for item in items:
        if isinstance(item, OwnData):
            columns.append(item)
        else:
            _checks.check_choice(item, "data", [*recipe_settings(), *TABLES])
            columns += [name for name in (table_settings(item) if item in TABLES else [item]) if name not in columns]
    names = [column if isinstance(column, str) else column.name for column in columns]
    if len(set(names)) != len(names):
        _checks.fail(ValueError, "data", "settings and OwnData of distinct names", names)
    return columns


def _methods(methods: Any) -> list[str]:
    methods = list(_checks.check_str_sequence(methods, "methods"))
    for method in methods:
        _checks.check_choice(method, "methods", known_methods())
    if len(set(methods)) != len(methods):
        _checks.fail(ValueError, "methods", "distinct methods", methods)
    return methods


def _seeds(seeds: Any) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        _checks.fail(TypeError, "seeds", "a list of distinct seeds", seeds)
    seeds = tuple(_checks.check_seed(seed, "seeds") for seed in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        _checks.fail(ValueError, "seeds", "distinct and at least one", list(seeds))
    return seeds


def _recipe_changes(knobs: Mapping[str, Any] | None, methods: list[str]) -> dict[str, Any]:
    knobs = dict(knobs or {})
    for name in knobs:
        if name in _FIXED_BY_METHOD:
            why = "seeds= gives the seeds" if name == "seed" else f"the method {name!r} turns it on in its own runs"
            raise ValueError(f"recipe_knobs: {name!r} is not the caller's to set in a comparison ({why})")
        _checks.check_choice(name, "recipe_knobs", [item.name for item in Recipe.knobs()])
    changed = Recipe().replace(**knobs)  # each value checked under its knob's name
    if "synthetic_probability" in knobs and changed.synthetic_probability == 0 and \
            any(method not in CLASSIFIER_METHODS for method in methods):
        raise ValueError("recipe_knobs: synthetic_probability 0 would train every method on the real images alone; "
                         "the methods that make images need it above 0 (the paper: 0.5 for all)")
    return knobs


def _method_knobs(knobs: Mapping[str, Any] | None, making: list[str]) -> dict[str, Any]:
    knobs = dict(knobs or {})
    declared = {item.name for method in making for item in get_method(method).config_class.knobs()}
    for name in knobs:
        if name not in declared:
            raise ValueError(f"method_knobs: {name!r} is a knob of none of the methods that make images here "
                             f"({', '.join(making) or 'none'}); their knobs: {', '.join(sorted(declared)) or 'none'}")
    return knobs


def _configs(configs: Mapping[str, MethodConfig] | None, making: list[str]) -> dict[str, MethodConfig]:
    configs = dict(configs or {})
    for method, config in configs.items():
        _checks.check_choice(method, "configs", making)
        wanted = get_method(method).config_class
        if not isinstance(config, wanted):
            _checks.fail(TypeError, f"configs[{method!r}]", f"a {wanted.__name__}", config)
    return configs


def method_config(method: str, data: str | None, knobs: Mapping[str, Any],
                  config: MethodConfig | None = None) -> MethodConfig:
    """``method``'s config in a comparison on ``data`` (a setting's name, or None): ``config``, by default the
    method's defaults with the paper setting's own knobs where the method declares them (over the tiny preset's,
    when ``knobs["model"]`` is ``"tiny"``, as ``generate --model tiny`` starts); then the ``knobs`` it declares."""
    from diffii_datasets.methods.config import TINY_MODEL
    from diffii_datasets.settings.base import get_setting

    cls = get_method(method).config_class
    if config is None:
        preset = "tiny" if knobs.get("model") == TINY_MODEL else "paper"
        paper = data in recipe_settings() and data not in (SAMPLE_SETTING, OOD_SETTING)
        config = get_setting(data).method_config(method, preset=preset) if paper else cls.preset(preset)
    return config.replace(**cls.declared(dict(knobs)))


def _plan_store(plan: ComparisonPlan, data: str, method: str, knobs: dict[str, Any],
                config: MethodConfig | None) -> PlannedStore:
    """The store of ``method`` on ``data``'s images (and that of the store it reads first, if any)."""
    from diffii_datasets.job import build_job
    from diffii_datasets.plan import plan_job
    from diffii_datasets.store.cache import store_path

    train, metaclass = _training_images(data, plan)
    job = build_job(train, metaclass, method_config(method, data, knobs, config),
                    cache_dir=plan.cache_dir if plan.cache_dir.is_dir() else None)  # planning creates no cache
    jobs = [job]
    source = job.method.source_config(job.config)
    if source is not None:
        jobs.insert(0, dataclasses.replace(job, config=source))
    for each in jobs:
        path = store_path(plan.cache_dir, each.header())
        planned = next((store for store in plan.stores if store.path == path), None)
        if planned is None:
            planned = PlannedStore(each.config.method, data, path, plan_job(each, plan.cache_dir), each, method)
            plan.stores.append(planned)
        if each is job:
            planned.read_by = None  # a method of the comparison itself
    return planned


def _training_images(name: str, plan: ComparisonPlan) -> tuple[Any, str]:
    """The real training images of a column (every method of it starts from these) and their metaclass."""
    from diffii_datasets.settings.base import get_setting

    options = plan.options
    if name in plan.own:
        return plan.own[name].train, plan.own[name].metaclass
    if name == SAMPLE_SETTING:
        from torchvision.datasets import ImageFolder

        from diffii_datasets.classify.protocol import SAMPLE_DIR

        return ImageFolder(str(SAMPLE_DIR)), SAMPLE_METACLASS
    if options["root"] is None:
        raise ValueError(f"root must be the folder holding {name}'s dataset, got None")
    try:
        splits = get_setting(name).load(options["root"], options["subset_seed"], profile=options["profile"],
                                        download=options["download"])
    except (RuntimeError, OSError) as error:
        raise (OSError if isinstance(error, OSError) else RuntimeError)(
            f"cannot load {name} from {options['root']}: {error}") from None
    return splits.train, splits.metaclass


def _planned_run(output: Path, setting: str, backbone: str, method: str, recipe: Recipe, seeds: tuple[int, ...],
                 store: Path | None) -> PlannedRun:
    from diffii_datasets.classify.trainer import CHECKPOINT_FILE, RESULT_FILE

    label = backbone if recipe.model == backbone else None
    directory = output / RUNS_DIR / setting / re.sub(r"[^\w.-]", "_", label or recipe.model) / method
    finished = tuple(s for s in seeds if (directory / f"seed-{s}" / RESULT_FILE).is_file())
    started = tuple(s for s in seeds if s not in finished and (directory / f"seed-{s}" / CHECKPOINT_FILE).is_file())
    return PlannedRun(setting, label, method, recipe, seeds, directory, store, finished, started)


def _check_distinct(runs: list[PlannedRun]) -> None:
    seen = set()
    for run in runs:
        key = (run.setting, run.classifier, run.method)
        if key in seen:
            raise ValueError(f"backbones: two of them train the same classifier ({run.recipe.model}) on {run.setting} "
                             "(recipe_knobs sets the model, or the setting has one recipe for all); pass one backbone")
        seen.add(key)
