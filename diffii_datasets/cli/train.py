"""``diffii-datasets train`` and ``evaluate``: a paper setting's classifier, trained the paper's way, to a table.

Every ``Recipe`` knob is a flag derived from its declaration; unset ones take the
published recipe of the setting and backbone (:func:`~diffii_datasets.classify.recipe_for`).
"""

from __future__ import annotations

import argparse

from diffii_datasets.classify.recipes import BACKBONES, SAMPLE_SETTING, Recipe, recipe_for, recipe_settings
from diffii_datasets.cli._common import AddCommand, CommandError, add_knob_flags, knob_values, open_store

EPILOG_TRAIN = """examples:
  diffii-datasets train cub-5shot --root data/ --store stores/3f9c2a... --seeds 0,1,2 --output-dir runs/cub-5shot
  diffii-datasets train cub-5shot --root data/ --seeds 0,1,2 --output-dir runs/cub-5shot-original
  diffii-datasets train pet-10shot --backbone vit_b_16 --root data/ --store stores/... --output-dir runs/pet-vit
  diffii-datasets train waterbirds --root data/ --store stores/<cub-5shot store> --output-dir runs/waterbirds
  torchrun --nproc_per_node=8 -m diffii_datasets train cub-lt-if100 --root data/ --store stores/... --output-dir runs/x
  diffii-datasets train sample --store demo-output/cache/<store> --seeds 0,1 --output-dir demo-output/classifier

With --store the classifier trains on the store's real images, each replaced by a
synthetic one with probability 0.5 (class-balanced for the long-tail settings);
without one it trains on the setting's real subset alone (the paper's "Original" /
"CE" row). The test split comes from --root (Waterbirds from
--root/waterbird_complete95_forest2water2/ for the OOD setting): the official test
split of each dataset (the long-tail settings: the whole CUB test split, or the
second half of Flowers-102, not the authors' test_imb.txt), or with --released the
authors' test lists (Waterbirds: their four group lists); the first line printed
says which. --mixup and --cutmix add the authors' Mixup and CutMix (Table 1's
baselines, with --mixup-probability 0.3). Each seed writes
--output-dir/seed-<s>/: a checkpoint after every epoch, so running the same command
again resumes a killed run and skips finished ones. The table shows the best test
accuracy over epochs (the authors' figure), the accuracy after the last epoch (the
honest one) and, with --validation-fraction, the test accuracy at the best validation
epoch, as mean ± std over the seeds; report.json holds the same numbers. The setting
sample is the bundled sample of `diffii-datasets demo` (its store), with a small CPU
recipe and test images drawn on the spot: a check that everything runs, not a result.
"""

EPILOG_EVALUATE = """examples:
  diffii-datasets evaluate cub-5shot --root data/ --output-dir runs/cub-5shot
  diffii-datasets evaluate waterbirds --root data/ --output-dir runs/cub-5shot --per-class

Scores the final weights of every seed in --output-dir on SETTING's test split (which
may be another setting's, e.g. Waterbirds after cub-5shot) and writes
--output-dir/evaluation-<SETTING>.json.
"""

_TRAIN_KNOBS = [item for item in Recipe.knobs() if item.name != "seed"]  # --seeds gives the seeds
_VARYING = ("model", "weights", "image_size", "resize", "transforms", "epochs", "batch_size", "lr",
            "synthetic_probability", "class_balanced")
"""The knobs whose published value depends on the setting and backbone."""


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct non-negative seeds such as 0,1,2, got {text!r}")
    return seeds


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text}")
    return value


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("setting", metavar="SETTING", choices=recipe_settings(),
                         help=f"a paper setting: {', '.join(recipe_settings())}")
    command.add_argument("--root", help="folder holding the datasets in torchvision's layouts (not needed for "
                                        "sample: its test images are drawn on the spot)")
    command.add_argument("--output-dir", required=True, help="where each seed's run and the report are written")
    command.add_argument("--workers", type=_non_negative_int, default=4,
                         help="data-loading processes per rank (default: %(default)s)")
    command.add_argument("--device", help="cpu, cuda or cuda:N (default: this rank's GPU when there is one)")
    command.add_argument("--download", action="store_true", help="download a missing dataset where torchvision can")
    command.add_argument("--per-class", action="store_true", help="also print every class's accuracy")
    command.add_argument("--released", action="store_true",
                         help="test on the authors' released test list of SETTING (waterbirds: their four group "
                              "lists) and (train, without --store) train on their released training subset (see "
                              "`diffii-datasets released --help`)")


def add_commands(add_command: AddCommand) -> None:
    train = add_command("train", "train a paper setting's classifier the paper's way (joint training on a store, "
                                 "or the real subset alone) and print the accuracy table", EPILOG_TRAIN, run_train)
    _common(train)
    train.add_argument("--store", help="a store of the setting's synthetic images (printed by generate); "
                                       "without it: the baseline on real images only")
    train.add_argument("--backbone", choices=BACKBONES, default="resnet50",
                       help="the published recipe to start from (default: %(default)s)")
    train.add_argument("--seeds", type=_seeds, help="comma-separated training seeds, one run each (default: 2020, "
                                                    "the seed of the authors' run.sh; the paper averages three "
                                                    "trials and does not name their seeds)")
    train.add_argument("--validation-fraction", type=_fraction,
                       help="set this fraction of every test class aside as a validation set and also report the "
                            "test accuracy at the best validation epoch")
    train.add_argument("--subset-seed", type=int, default=0,
                       help="seed that draws the real subset of the baseline (default: %(default)s; with --store "
                            "the store's real images are used)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    knobs = train.add_argument_group("recipe", "every knob of the training recipe; defaults: the published recipe "
                                               "of SETTING and --backbone")
    add_knob_flags(knobs, _TRAIN_KNOBS, {name: "per SETTING and --backbone" for name in _VARYING})

    evaluate = add_command("evaluate", "score the final weights of a train run on a setting's test split and print "
                                       "the table", EPILOG_EVALUATE, run_evaluate)
    _common(evaluate)


def _check_root(args: argparse.Namespace) -> None:
    if args.root is None and args.setting != SAMPLE_SETTING:
        raise CommandError(f"{args.setting} needs --root: the folder holding its dataset (its test split)")


def _recipe(args: argparse.Namespace) -> Recipe:
    _check_root(args)
    try:
        recipe = recipe_for(args.setting, args.backbone)
    except ValueError as error:
        raise CommandError(str(error)) from None
    changes = knob_values(args, _TRAIN_KNOBS)
    if args.store is None:
        if changes.get("synthetic_probability", 0) > 0:
            raise CommandError("--synthetic-probability needs --store: without a store the run is the baseline "
                               "on real images only")
        changes["synthetic_probability"] = 0.0
    return recipe.replace(**changes)


def run_train(args: argparse.Namespace) -> int:
    recipe = _recipe(args)  # checked before torch loads

    from diffii_datasets.classify.protocol import describe_test_split, train_setting
    from diffii_datasets.classify.report import format_table
    from diffii_datasets.distributed import distributed_world

    store = open_store(args.store) if args.store is not None else None
    subset = "released" if args.released else "drawn"
    with distributed_world(device=args.device) as world:
        if world.is_main:
            print(f"test set: {describe_test_split(args.setting, subset)}", flush=True)
        report = train_setting(args.setting, recipe, root=args.root, output_dir=args.output_dir,
                               seeds=args.seeds or [recipe.seed], store=store,
                               backbone=args.backbone if recipe.model == args.backbone else None,
                               validation_fraction=args.validation_fraction or 0.0, subset_seed=args.subset_seed,
                               world=world, workers=args.workers, progress=not args.quiet, download=args.download,
                               subset=subset)
        if world.is_main:
            print(format_table(report, per_class=args.per_class))
            print(f"report: {args.output_dir}/report.json")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    _check_root(args)
    from diffii_datasets.classify.protocol import describe_test_split, evaluate_setting
    from diffii_datasets.classify.report import format_table
    from diffii_datasets.distributed import distributed_world

    subset = "released" if args.released else "drawn"
    with distributed_world(device=args.device) as world:
        if world.is_main:
            print(f"test set: {describe_test_split(args.setting, subset)}", flush=True)
        report = evaluate_setting(args.setting, root=args.root, output_dir=args.output_dir, world=world,
                                  workers=args.workers, download=args.download, subset=subset)
        if world.is_main:
            print(format_table(report, per_class=args.per_class))
            print(f"report: {args.output_dir}/evaluation-{args.setting}.json")
    return 0
