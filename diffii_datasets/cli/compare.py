"""``diffii-datasets compare``: augmentation methods side by side, each trained the same way, beside the paper.

The command line of :func:`~diffii_datasets.compare.compare`. The data is one or more
settings (or a paper table: ``table1``, ``table2``, ``table3``) under ``--root``, and/or
your own images (``--image-folder``, ``--test-folder``, ``--metaclass``, spelled as
:mod:`~diffii_datasets.cli.data` spells them for the other commands). The methods' knobs
are flags derived from their configs' declarations (each applies to the methods that
declare it); the classifier recipe's are ``--classifier-<knob>``. Several settings and a
method knob of each method make :func:`~diffii_datasets.cli.data.add_data_arguments`
(one setting, Diff-II's knobs) the wrong fit here; its folder check is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from diffii_datasets._knobs import Knob
from diffii_datasets.classify.recipes import BACKBONES, OOD_SETTING, SAMPLE_SETTING, Recipe, recipe_settings
from diffii_datasets.classify.report import FIGURE_LABELS
from diffii_datasets.cli._common import (AddCommand, CommandError, add_knob_flags, knob_values, method_defaults,
                                         non_negative_int)
from diffii_datasets.cli.data import check_image_folder
from diffii_datasets.compare import CLASSIFIER_METHODS, COMPARISON_FILES, TABLES, OwnData, known_methods, \
    table_settings
from diffii_datasets.config import TINY_MODEL
from diffii_datasets.methods import all_knobs, get_method
from diffii_datasets.settings.base import LONG_TAIL_PROFILES

EPILOG = """examples:
  diffii-datasets compare cub-5shot --root data/ --methods original,mixup,cutmix,diff-ii --seeds 0,1,2 --output-dir cmp/
  diffii-datasets compare table1 --root data/ --backbones resnet50,vit_b_16 --methods paper --seeds 0,1,2 \\
      --output-dir t1/
  diffii-datasets compare table1 --root data/ --methods paper --seeds 0,1,2 --output-dir t1/ --dry-run
  diffii-datasets compare --image-folder my-birds/ --test-folder my-birds-test/ --metaclass bird \\
      --methods original,diff-ii --seeds 0,1,2 --output-dir cmp-mine/
  diffii-datasets compare sample --methods original,cutmix,diff-ii --seeds 0,1 --model tiny --output-dir cmp-sample/

Makes each method's synthetic set (a store already in --cache-dir is reused, an
interrupted one completed), trains one classifier per setting, backbone, method and
seed, and writes comparison.json, comparison.md and comparison.html in --output-dir,
after every group of runs: our mean ± std over the seeds, with the paper's printed
number beside each cell it has (the two cells of Table 1 that do not add up kept as
printed, with a note). Each run's folder is --output-dir/runs/<setting>/<backbone>/
<method>/ (report.json, seed-<s>/). Running the same command again skips finished
runs and resumes killed ones; --dry-run lists the stores and runs with what they still
cost (UNet evaluations, classifier epochs) and runs nothing.

Every run of a setting and backbone trains with the same recipe (the published one of
the setting and backbone; --classifier-<knob> changes it for all) except what its method
changes: original, mixup and cutmix make no images (mixup and cutmix turn on the authors'
Mixup or CutMix, p 0.3), and every method that makes images replaces each real image by
one of its synthetic ones with the same probability (0.5 for all, as the paper's text
says; class-balanced on the long-tail settings). --methods paper takes the rows of the
paper's tables of the settings that this library runs. The seeds are the classifier's:
each method has one synthetic set per setting (its config's seed).

A real-size comparison needs the pretrained weights (Stable Diffusion, the ImageNet
backbones) and a GPU; on a CPU, --model tiny with small --classifier-* values checks that
everything runs (random weights: the numbers mean nothing).
"""


def add_commands(add_command: AddCommand) -> None:
    command = add_command("compare", "make each method's synthetic set, train each under the same recipe and write "
                                     "a table of the accuracies beside the paper's", EPILOG, run_compare)
    command.add_argument("settings", metavar="SETTING", nargs="*", type=_setting,
                         help=f"paper settings ({', '.join(recipe_settings())}) or tables ({', '.join(TABLES)}); "
                              "none with --image-folder alone")
    command.add_argument("--methods", required=True,
                         help=f"comma-separated methods ({', '.join(known_methods())}), or paper: the rows of the "
                              "paper's tables of SETTING that this library runs")
    command.add_argument("--seeds", type=_seeds, required=True, help="comma-separated classifier seeds, one run each "
                                                                     "(e.g. 0,1,2: the paper averages three)")
    command.add_argument("--output-dir", required=True, help="the comparison's folder: the tables and every run")
    command.add_argument("--backbones", type=_backbones, default=["resnet50"],
                         help=f"comma-separated published recipes to train ({', '.join(BACKBONES)}; default: "
                              "resnet50)")
    command.add_argument("--root", help="folder holding the datasets in torchvision's layouts (not for sample)")
    command.add_argument("--image-folder", metavar="DIR", help="your own training images, DIR/<class>/<image>")
    command.add_argument("--test-folder", metavar="DIR", help="with --image-folder: your own test images, the same "
                                                              "class folders")
    command.add_argument("--metaclass", metavar="WORD", help="with --image-folder: what every image shows, as the "
                                                             "prompts name it (bird, car, ...)")
    command.add_argument("--data-name", help="the column of your own images (default: --image-folder's name)")
    command.add_argument("--cache-dir", help="where stores (and learned concepts) live (default: $DIFFII_DATASETS_"
                                             "CACHE, else $XDG_CACHE_HOME/diffii-datasets, else ~/.cache/"
                                             "diffii-datasets)")
    command.add_argument("--config", action="append", default=[], metavar="METHOD=FILE",
                         help="a method's config as JSON (its knob flags below override it); repeat per method")
    command.add_argument("--figure", choices=list(FIGURE_LABELS), default="best_test",
                         help="the accuracy the table shows (default: %(default)s, the authors' figure; final_test: "
                              "after the last epoch; test_at_best_val: with --validation-fraction)")
    command.add_argument("--validation-fraction", type=float, default=0.0,
                         help="set this fraction of every test class aside to pick the epoch (--figure "
                              "test_at_best_val)")
    command.add_argument("--subset-seed", type=int, default=0, help="seed that draws the training subsets "
                                                                    "(default: %(default)s)")
    command.add_argument("--profile", choices=LONG_TAIL_PROFILES, default=LONG_TAIL_PROFILES[0],
                         help="long-tail profile (default: %(default)s)")
    command.add_argument("--download", action="store_true", help="download a missing dataset where torchvision can")
    command.add_argument("--dry-run", action="store_true", help="list the stores and runs with what they still cost; "
                                                                "run nothing")
    command.add_argument("--device", help="cpu, cuda or cuda:N (default: this rank's GPU when there is one)")
    command.add_argument("--workers", type=non_negative_int,
                         help="data-loading processes per rank (default: 4, at most the CPUs a rank has)")
    command.add_argument("-q", "--quiet", action="store_true", help="no plans or progress bars")
    add_knob_flags(command.add_argument_group("methods", "knobs of the methods' configs, each applied to the methods "
                                                         "that declare it; defaults: each method's, with the "
                                                         "setting's own"), all_knobs(), method_defaults())
    add_knob_flags(command.add_argument_group("classifier recipe", "knobs of every run's recipe; defaults: the "
                                                                   "published recipe of each setting and backbone"),
                   classifier_knobs(), {item.name: "per setting and backbone" for item in classifier_knobs()})


def classifier_knobs() -> list[Knob]:
    """The recipe's knobs as ``--classifier-<knob>`` (the methods set mixup and cutmix, --seeds the seed)."""
    return [dataclasses.replace(item, name=f"classifier_{item.name}") for item in Recipe.knobs()
            if item.name not in ("mixup", "cutmix", "seed")]


def _setting(text: str) -> str:
    """``SETTING``: a setting of the classifier protocol or a table (argparse's choices refuse an empty ``*``)."""
    if text not in [*recipe_settings(), *TABLES]:
        raise argparse.ArgumentTypeError(f"expected a setting ({', '.join(recipe_settings())}) or a table "
                                         f"({', '.join(TABLES)}), got {text!r}")
    return text


def _seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct non-negative integers such as 0,1,2, got {text!r}")
    return values


def _backbones(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in BACKBONES]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct backbones among {', '.join(BACKBONES)}, got {text!r}")
    return names


def _settings(args: argparse.Namespace) -> list[str]:
    """The settings named, tables expanded, each once."""
    names: list[str] = []
    for name in args.settings:
        names += table_settings(name) if name in TABLES else [name]
    return list(dict.fromkeys(names))


def paper_methods(settings: list[str]) -> tuple[list[str], list[str]]:
    """``(runnable, missing)``: the methods with a row in the paper's tables of ``settings`` that this library runs,
    and those it does not (Table 2's CMO, a baseline not registered), in the paper's row order."""
    from diffii_datasets.classify import paper

    tables = {2 if name in table_settings("table2") else 3 if name == OOD_SETTING else 1
              for name in settings if name != SAMPLE_SETTING}
    rows = [method for method in paper.methods() if any(paper.method_label(method, t) for t in tables)]
    return [m for m in rows if m in known_methods()], [m for m in rows if m not in known_methods()]


def _methods(args: argparse.Namespace, settings: list[str]) -> list[str]:
    names = [part.strip() for part in args.methods.split(",") if part.strip()]
    if names == ["paper"]:
        names, missing = paper_methods(settings)
        if not names:
            raise CommandError("--methods paper: the settings have no paper table (name the methods)")
        if missing:
            print(f"the paper's rows {', '.join(missing)} have no method here: left out")
        return names
    unknown = [name for name in names if name not in known_methods()]
    if unknown or not names or len(set(names)) != len(names):
        what = f"{unknown[0]!r} is not a method here" if unknown else f"expected distinct methods, got {args.methods!r}"
        raise CommandError(f"--methods: {what}; choose from {', '.join(known_methods())}, or paper")
    return names


def _own_data(args: argparse.Namespace) -> Any:
    """Checks ``--image-folder``, ``--test-folder`` and ``--metaclass`` (no torch); the column's name or None."""
    given = {"--image-folder": args.image_folder, "--test-folder": args.test_folder, "--metaclass": args.metaclass}
    if not any(given.values()):
        if args.data_name is not None:
            raise CommandError("--data-name names your own images: add --image-folder, --test-folder and --metaclass")
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise CommandError(f"your own images need --image-folder, --test-folder and --metaclass: add {missing[0]}")
    train = check_image_folder(args.image_folder, "--image-folder")
    if check_image_folder(args.test_folder, "--test-folder") != train:
        raise CommandError(f"--test-folder {args.test_folder} must hold the class folders of --image-folder "
                           f"{args.image_folder} ({', '.join(train[:3])}, ...)")
    name = args.data_name or Path(args.image_folder).expanduser().resolve().name
    try:
        OwnData(name, None, None, args.metaclass)  # the name and the metaclass checked before any image is read
    except ValueError as error:
        flag = "--data-name" if args.data_name is not None else f"--image-folder {args.image_folder}: its name"
        raise CommandError(str(error).replace("data.name", flag).replace("data.metaclass", "--metaclass")) from None
    return name


def _configs(args: argparse.Namespace, making: list[str]) -> dict[str, Any]:
    from diffii_datasets._io import read_json

    configs = {}
    for text in args.config:
        method, _, path = text.partition("=")
        if method not in making or not path:
            raise CommandError(f"--config {text}: expected METHOD=FILE with METHOD among the methods that make "
                               f"images here ({', '.join(making) or 'none'})")
        try:
            configs[method] = get_method(method).config_class.from_dict(read_json(Path(path).expanduser()))
        except (OSError, TypeError, ValueError) as error:
            raise CommandError(f"--config {text}: not a readable config of {method} ({error})") from None
    return configs


def comparison_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`~diffii_datasets.compare.compare` a command line gives (the data as
    settings and the column name of one's own images, read later); checks everything that needs no torch."""
    settings = _settings(args)
    own = _own_data(args)
    if not settings and own is None:
        raise CommandError("name the data: settings (e.g. cub-5shot --root data/, or table1) and/or your own images "
                           "(--image-folder DIR --test-folder DIR --metaclass WORD)")
    if args.root is None and any(name != SAMPLE_SETTING for name in settings):
        raise CommandError(f"{next(n for n in settings if n != SAMPLE_SETTING)} needs --root DIR: the folder holding "
                           "its dataset in torchvision's layout")
    if args.root is not None and not Path(args.root).expanduser().is_dir():
        raise CommandError(f"--root {args.root}: no such directory")
    methods = _methods(args, settings)
    making = [method for method in methods if method not in CLASSIFIER_METHODS]
    knobs = knob_values(args, all_knobs())
    model = knobs.get("model")
    if model is not None and model != TINY_MODEL and Path(model).expanduser().is_dir():
        knobs["model"] = str(Path(model).expanduser().resolve())  # one identity (one store) whatever the cwd
    recipe = {name.removeprefix("classifier_"): value for name, value in knob_values(args, classifier_knobs()).items()}
    return {"settings": settings, "own": own, "methods": methods, "seeds": args.seeds,
            "output_dir": args.output_dir, "backbones": args.backbones, "root": args.root,
            "recipe_knobs": recipe, "method_knobs": knobs, "configs": _configs(args, making), "figure": args.figure,
            "validation_fraction": args.validation_fraction, "cache_dir": args.cache_dir,
            "subset_seed": args.subset_seed, "profile": args.profile, "download": args.download}


def run_compare(args: argparse.Namespace) -> int:
    options = comparison_options(args)  # checked before torch loads
    workers = args.workers

    from diffii_datasets.compare import compare, plan_comparison
    from diffii_datasets.distributed import distributed_world

    data: list[Any] = list(options.pop("settings"))
    own = options.pop("own")
    if own is not None:
        from torchvision.datasets import ImageFolder

        data.append(OwnData(own, ImageFolder(str(Path(args.image_folder).expanduser())),
                            ImageFolder(str(Path(args.test_folder).expanduser())), args.metaclass))
    methods, seeds = options.pop("methods"), options.pop("seeds")
    if args.dry_run:
        print("\n".join(plan_comparison(data, methods, seeds, **options).lines()))
        return 0
    with distributed_world(device=args.device) as world:
        document = compare(data, methods, seeds, world=world, workers=workers, progress=not args.quiet, **options)
        if world.is_main:
            from diffii_datasets.classify.comparison import format_markdown

            print(format_markdown(document), end="")
            output = Path(args.output_dir)
            print("comparison: " + ", ".join(str(output / name) for name in COMPARISON_FILES))
    return 0
