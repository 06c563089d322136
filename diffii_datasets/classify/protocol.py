"""A paper setting from data to report: the test split from a root folder, the training set from a store
(or the real subset alone, the baseline), one run per seed, the report over the seeds.

The command line's ``train`` and ``evaluate`` are these two functions. Output layout::

    <output_dir>/seed-<s>/   one run (checkpoint.pt while training; model.safetensors, result.json at the end)
    <output_dir>/report.json the report over the seeds (the printed table is rendered from it)
    <output_dir>/evaluation-<setting>.json  what ``evaluate`` measured
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets._io import read_json, write_json
from diffii_datasets.classify.recipes import OOD_SETTING, SAMPLE_SETTING, Recipe
from diffii_datasets.classify.report import build_report
from diffii_datasets.classify.results import EpochRecord, TrainResult
from diffii_datasets.distributed import World
from diffii_datasets.store import SyntheticStore

__all__ = ["REPORT_FILE", "describe_test_split", "evaluate_setting", "load_test_split", "train_runs",
           "train_setting"]

REPORT_FILE = "report.json"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
"""The bundled sample (``diffii-datasets demo`` augments it): 3 classes x 4 images, ImageFolder layout."""
SAMPLE_TEST_PER_CLASS = 10
"""Test images per class of the sample setting: a fresh draw (seed 1) of the generator that drew the sample (seed 0)."""
VALIDATION_SPLIT_SEED = 0
"""Seed of the per-class draw that sets a validation part aside from the test split (the same for every run)."""


def load_test_split(setting: str, root: str | Path | None, *, validation_fraction: float = 0.0,
                    download: bool = False, subset: str = "drawn",
                    released_from: str | Path | None = None) -> tuple[Any, Any]:
    """``(test set, validation set or None)`` of ``setting``, read from ``root`` (Waterbirds for ``"waterbirds"``).

    ``"sample"`` needs no root: its test set is drawn like the bundled sample, with another seed.
    ``subset="released"``: the authors' released test list (``load_setting(..., subset="released")``;
    for ``"waterbirds"`` their four group lists, :meth:`~diffii_datasets.classify.Waterbirds.from_lists`), from
    the Hub or, with ``released_from``, from a local copy of their archives.
    :func:`describe_test_split` says in words which test set this is.

    With ``validation_fraction``, that fraction of every test class (drawn with
    :data:`VALIDATION_SPLIT_SEED`) becomes the validation set and the rest the test set:
    the paper's datasets have no validation split, and the training subset is too small to spare one.
    """
    from diffii_datasets.image_datasets.sampling import split_per_class
    from diffii_datasets.settings.base import get_setting

    if setting == SAMPLE_SETTING:
        test = _SampleTest()
    elif root is None:
        raise ValueError(f"root must be the folder holding {setting}'s dataset, got None")
    elif setting == OOD_SETTING:
        from diffii_datasets.classify.waterbirds import Waterbirds

        if subset == "released":
            from diffii_datasets.released import fetch

            lists = fetch.fetch_waterbirds_lists(released_from=released_from)
            test = Waterbirds.from_lists(root, lists.files, sources=lists.sources)
        else:
            test = Waterbirds(root, "test")
    elif subset == "released":
        from diffii_datasets.settings.loading import load_setting

        test = load_setting(setting, root, subset=subset, download=download, released_from=released_from).test
    else:
        test = get_setting(setting).load(root, 0, download=download).test
    if not validation_fraction:
        return test, None
    validation, rest = split_per_class(test, validation_fraction, seed=VALIDATION_SPLIT_SEED)
    if hasattr(test, "groups"):
        rest.groups, rest.group_names = [test.groups[i] for i in rest.indices], test.group_names
    return rest, validation


def describe_test_split(setting: str, subset: str = "drawn") -> str:
    """Which test set :func:`load_test_split` reads for ``setting``, in words (``train`` prints it)."""
    from diffii_datasets.settings.base import FAMILIES, get_setting
    from diffii_datasets.released.layout import released_paths

    if setting == SAMPLE_SETTING:
        return f"{SAMPLE_TEST_PER_CLASS} images per class drawn on the spot like the bundled sample (seed 1)"
    if setting == OOD_SETTING:
        if subset == "released":
            return "the authors' Waterbirds lists datasets/waterbird/test00.txt ... test11.txt, one per group"
        return ("the Waterbirds test split (metadata.csv split 2) in its four groups; --released tests on the "
                "authors' lists datasets/waterbird/test00.txt ... test11.txt instead")
    spec = get_setting(setting)
    theirs = released_paths(spec).files["test_list"]
    if subset == "released":
        return f"the authors' list {theirs}"
    if FAMILIES[spec.family].kind == "long-tail":
        return f"{spec.test_split}, not the authors' {theirs} (--released tests on their list)"
    return f"{spec.test_split} (--released tests on the authors' list {theirs})"


class _SampleTest(Dataset):
    """Fresh images of the sample's classes, labelled in the sample's (ImageFolder, alphabetical) class order."""

    def __init__(self) -> None:
        from torchvision.datasets import ImageFolder

        from diffii_datasets.testing import tiny_image_dataset

        self.classes = ImageFolder(str(SAMPLE_DIR)).classes
        self._drawn = tiny_image_dataset(len(self.classes), SAMPLE_TEST_PER_CLASS, 64, seed=1)
        if sorted(self._drawn.classes) != self.classes:
            raise RuntimeError(f"the bundled sample's classes {self.classes} are not those of the test generator "
                               f"({self._drawn.classes})")
        self._label = [self.classes.index(name) for name in self._drawn.classes]
        self.targets = [self._label[label] for label in self._drawn.targets]

    def __len__(self) -> int:
        return len(self._drawn)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self._drawn[index]
        return image, self._label[label]


def _real_subset(setting: str, root: str | Path | None, subset_seed: int, profile: str, download: bool,
                 subset: str, released_from: str | Path | None) -> Any:
    from diffii_datasets.settings.base import get_setting

    if setting == SAMPLE_SETTING:
        from torchvision.datasets import ImageFolder

        return ImageFolder(str(SAMPLE_DIR))
    if root is None:
        raise ValueError(f"root must be the folder holding {setting}'s dataset, got None")
    name = "cub-5shot" if setting == OOD_SETTING else setting
    if subset == "released":
        from diffii_datasets.settings.loading import load_setting

        return load_setting(name, root, subset=subset, download=download, released_from=released_from).train
    return get_setting(name).load(root, subset_seed, profile=profile, download=download).train


def train_setting(
    setting: str,
    recipe: Recipe,
    *,
    root: str | Path | None,
    output_dir: str | Path,
    seeds: Sequence[int],
    store: SyntheticStore | None = None,
    backbone: str | None = None,
    validation_fraction: float = 0.0,
    subset_seed: int = 0,
    profile: str = "exponential",
    world: World | None = None,
    workers: int | None = None,
    progress: bool = True,
    download: bool = False,
    subset: str = "drawn",
    released_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train one run per seed of ``setting`` and return (and write, on rank 0) the report over them.

    With a ``store`` the runs train on its real and synthetic images (the joint
    training of ``recipe``); without one on the setting's real subset drawn with
    ``subset_seed`` (``recipe.synthetic_probability`` must then be 0: the baseline).
    A run already complete in ``output_dir`` is read back, a killed one resumed.
    ``download`` fetches missing datasets; missing pretrained weights are always downloaded.
    ``subset="released"`` tests on the authors' released test list and, without a store, trains on
    their released training subset (:func:`~diffii_datasets.settings.load_setting`), from the Hub or,
    with ``released_from``, a local copy of their archives.
    """
    from diffii_datasets.settings.loading import SUBSETS

    world = world or World()
    seeds = [_checks.check_seed(seed, "seeds") for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    if store is None and recipe.synthetic_probability > 0:
        raise ValueError("training without a store is the baseline: it needs synthetic_probability 0, got "
                         f"{recipe.synthetic_probability} (pass a store for the joint training)")
    _checks.check_choice(subset, "subset", SUBSETS)
    if subset == "released" and setting == SAMPLE_SETTING:
        raise ValueError(f"the {SAMPLE_SETTING} setting has no released subset: subset must be 'drawn'")
    test, validation = load_test_split(setting, root, validation_fraction=validation_fraction, download=download,
                                       released_from=released_from,
                                       subset=subset)
    real = None if store is not None else _real_subset(setting, root, subset_seed, profile, download, subset,
                                                       released_from)
    if store is not None and list(store.header.classes) != list(test.classes):
        raise ValueError(f"the store at {store.path} was made for {store.header.num_classes} classes "
                         f"({', '.join(store.header.classes[:3])}, ...), not {setting}'s test classes "
                         f"({', '.join(test.classes[:3])}, ...)")
    return train_runs(real, test, recipe, output_dir=output_dir, seeds=seeds, store=store, setting=setting,
                      backbone=backbone, validation=validation, world=world, workers=workers, progress=progress)


def train_runs(train_set: Any, test: Any, recipe: Recipe, *, output_dir: str | Path, seeds: Sequence[int],
               store: SyntheticStore | None = None, setting: str | None = None, backbone: str | None = None,
               method: str | None = None, validation: Any = None, world: World | None = None,
               workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """One run per seed, scored on ``test``; the report over them (written on rank 0 as ``report.json``).

    The runs train on ``train_set``, or with a ``store`` on its joint-training set (the store's real
    images, replaced by its synthetic ones with the recipe's probability). ``setting`` and
    ``backbone`` name the paper's cell the report compares with, ``method`` its row (default: the
    store's method). What :func:`train_setting` and a comparison on one's own data both run.
    """
    from diffii_datasets.classify.data import joint_training_set
    from diffii_datasets.classify.trainer import train

    world = world or World()
    output_dir = Path(output_dir)
    results = []
    for seed in seeds:
        seeded = recipe.replace(seed=seed)
        runs_on = train_set if store is None else joint_training_set(store, seeded)
        results.append(train(runs_on, test, seeded, validation_set=validation, output_dir=output_dir / f"seed-{seed}",
                             world=world, workers=workers, progress=progress))
    report = build_report(results, setting=setting, backbone=backbone,
                          store=None if store is None else str(store.path),
                          method=method if method is not None or store is None else store.header.method)
    if world.is_main:
        write_json(output_dir / REPORT_FILE, report)
    return report


def evaluate_setting(setting: str, *, root: str | Path | None, output_dir: str | Path, world: World | None = None,
                     workers: int | None = None, download: bool = False, subset: str = "drawn",
                     released_from: str | Path | None = None) -> dict[str, Any]:
    """Score the final weights of every run in ``output_dir`` on ``setting``'s test split; the report of that.

    ``setting`` may differ from the one trained (``waterbirds`` after ``cub-5shot``);
    the report holds the ``final_test`` figure only (one evaluation per run).
    ``subset="released"``: the authors' released test list (from ``released_from``, a local copy, when given).
    """
    from safetensors.torch import load_file

    from diffii_datasets.classify.data import Transformed
    from diffii_datasets.classify.evaluate import evaluate
    from diffii_datasets.classify.models import build_model
    from diffii_datasets.classify.trainer import RESULT_FILE, WEIGHTS_FILE
    from diffii_datasets.classify.transforms import eval_transform

    world = world or World()
    output_dir = Path(output_dir)
    runs = sorted(path.parent for path in output_dir.glob(f"seed-*/{RESULT_FILE}"))
    if not runs:
        raise FileNotFoundError(f"{output_dir} holds no complete run (seed-*/{RESULT_FILE}); train first")
    test, _ = load_test_split(setting, root, download=download, subset=subset, released_from=released_from)
    groups = getattr(test, "groups", None)
    results = []
    for run in runs:
        trained = TrainResult.from_dict(read_json(run / RESULT_FILE))
        if list(test.classes) != trained.classes:
            raise ValueError(f"{run} was trained on {len(trained.classes)} classes, not {setting}'s test classes")
        model = build_model(trained.recipe.model, len(trained.classes), None, image_size=trained.recipe.image_size)
        model.load_state_dict(load_file(str(run / WEIGHTS_FILE)))
        scored = evaluate(model.to(world.device), Transformed(test, eval_transform(trained.recipe), "test_set"),
                          batch_size=trained.recipe.batch_size // world.size, world=world, workers=workers)
        totals = [scored.labels.count(c) for c in range(len(trained.classes))]
        result = TrainResult(trained.recipe, trained.classes, totals, None if groups is None else test.group_names)
        if groups is not None:
            result.group_totals = [groups.count(g) for g in range(len(test.group_names))]
        last = trained.history[-1]
        result.history.append(EpochRecord(
            epoch=last.epoch, train_loss=last.train_loss, train_accuracy=last.train_accuracy,
            images_per_second=last.images_per_second, lr=last.lr, test_accuracy=scored.accuracy,
            test_class_correct=scored.class_correct(len(trained.classes)),
            test_group_correct=None if groups is None else scored.group_correct(groups, len(test.group_names))))
        results.append(result)
    backbone = results[0].recipe.model
    report = build_report(results, setting=setting, backbone=backbone, figures=("final_test",))
    if world.is_main:
        write_json(output_dir / f"evaluation-{setting}.json", report)
    return report
