"""``diffii-datasets report`` and ``sweep``: how good a store's synthetic set is, in numbers and pictures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffii_datasets._deprecated import warn_renamed
from diffii_datasets.cli._common import (CLASSES_HELP, STORE_HELP, AddCommand, CommandError, add_knob_flags,
                                         knob_values, open_store, parse_classes, positive_int)
from diffii_datasets.methods.config import TINY_MODEL
from diffii_datasets.quality.settings import GRID_IMAGES, QualitySettings
from diffii_datasets.quality.sweep import DEFAULT_SPLIT_RATIOS, SWEEP_IMAGES

EPILOG_REPORT = """examples:
  diffii-datasets report stores/3f9c2a... -o report/
  diffii-datasets report stores/<a store of your images, from generate --image-folder> -o report/
  diffii-datasets report stores/3f9c2a... -o report/ --classes 0,5,7 --device cuda
  diffii-datasets report demo-output/cache/<store> -o demo-output/report --tiny-models

Writes report.json and report.html, one self-contained page (images inlined) to open
in any browser. Any store works, your own images' (generate --image-folder) as well as
a paper setting's: the real images it compares with are the store's own. CLIP loads
from the Hugging Face Hub and LPIPS's backbone from torchvision on first use; with
HF_HUB_OFFLINE=1 both must already be cached, and the error names what is missing.
--tiny-models uses tiny random-weight networks instead (the offline models of the demo
and the tests): the numbers then mean nothing.
"""

EPILOG_SWEEP = """examples:
  diffii-datasets sweep stores/3f9c2a... --class 0 -o sweep/
  diffii-datasets sweep stores/3f9c2a... --class "Laysan Albatross" --split-ratios 0,0.3,0.6,1 --images 16
  diffii-datasets sweep demo-output/cache/<store> --class 0 -o demo-output/sweep --tiny-models

Generates --images images of the class at each split ratio with the store's config,
concepts, suffixes, inversions and seed (the store's split ratio repeats its first
images), then writes sweep.json, sweep.png (the curves) and sweep-images.png.
"""


def add_commands(add_command: AddCommand) -> None:
    report = add_command("report", "measure a store's diversity (LPIPS), faithfulness (CLIP), KID and provenance "
                                   "per class; write report.json and a self-contained report.html",
                         EPILOG_REPORT, run_report)
    report.add_argument("store", help=STORE_HELP)
    report.add_argument("-o", "--output-dir", required=True, help="directory for report.json and report.html")
    report.add_argument("--classes", help=CLASSES_HELP)
    report.add_argument("--grid-images", type=positive_int, default=GRID_IMAGES,
                        help="real and synthetic images shown per class (default: %(default)s)")
    _add_model_flags(report)

    sweep = add_command("sweep", "generate one class again at several split ratios and plot its CLIP score and "
                                 "LPIPS against them (the paper's Fig. 7)", EPILOG_SWEEP, run_sweep)
    sweep.add_argument("store", help=STORE_HELP)
    sweep.add_argument("--class", dest="class_", required=True, metavar="CLASS", help="a class index or name")
    sweep.add_argument("-o", "--output-dir", required=True, help="directory for sweep.json, sweep.png, "
                                                                 "sweep-images.png")
    sweep.add_argument("--split-ratios", default=",".join(f"{ratio:g}" for ratio in DEFAULT_SPLIT_RATIOS),
                       help="comma-separated split ratios in [0, 1] (default: %(default)s)")
    sweep.add_argument("--images", type=positive_int, default=SWEEP_IMAGES,
                       help="images per split ratio (default: %(default)s)")
    sweep.add_argument("--model", help="the store's model (Hub id, directory or 'tiny'; default: the one the store "
                                       "names)")
    sweep.add_argument("--concepts", help="the concept set the store was made with, when it was given to generate "
                                          "(default: the store's learned concepts)")
    sweep.add_argument("--tiny-pipeline", action="store_true", help=argparse.SUPPRESS)  # 0.2's --model tiny
    _add_model_flags(sweep)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    parser.add_argument("--tiny-models", action="store_true",
                        help="tiny random-weight CLIP and LPIPS, offline: for the demo and tests, meaningless numbers")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_knob_flags(parser.add_argument_group("measures", "how the measures are computed"), QualitySettings.knobs())


def _settings(args: argparse.Namespace) -> QualitySettings:
    try:
        return QualitySettings(**knob_values(args, QualitySettings.knobs()))
    except (TypeError, ValueError) as error:  # knobs that are fine alone but not together
        raise CommandError(str(error)) from None


def _models(args: argparse.Namespace, settings: QualitySettings) -> Any:
    if args.tiny_models:
        from diffii_datasets.testing.metrics import tiny_metric_models

        return tiny_metric_models(device=args.device)
    from diffii_datasets.quality.models import load_quality_models

    return load_quality_models(settings, device=args.device)


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_report(args: argparse.Namespace) -> int:
    settings = _settings(args)  # every check before torch loads
    store = open_store(args.store)
    classes = parse_classes(args.classes, store.header.classes)

    from diffii_datasets.quality.report import report_store

    report = report_store(store, args.output_dir, models=_models(args, settings), settings=settings,
                          classes=classes, grid_images=args.grid_images, progress=not args.quiet)
    overall = report.overall
    if report.models.get("random_weights"):
        print("metric networks: tiny, random weights (--tiny-models): the numbers below mean nothing")
    print(f"{len(report.classes)} classes, {overall.real_count} real and {overall.synthetic_count} synthetic images")
    print(f"diversity: LPIPS {_number(overall.lpips_synthetic)} among synthetic images "
          f"({_number(overall.lpips_real)} among real ones)")
    share = "n/a" if overall.own_nearest_share is None else f"{overall.own_nearest_share:.0%}"
    print(f"faithfulness: CLIP score {_number(overall.clip_score, 2)} (real images "
          f"{_number(overall.clip_score_real, 2)}); nearest real image in its own class: {share} of synthetic images")
    print(f"KID to the real images: {_number(overall.kid)}")
    for row in report.flagged():
        print(f"flagged: class {row.index} ({row.name}): {', '.join(row.flags)}")
    output = Path(args.output_dir)
    print(f"report: {(output / 'report.html').resolve()} and {(output / 'report.json').resolve()}")
    return 0


def _class_index(text: str, names: tuple[str, ...]) -> int:
    if text.isdigit() and int(text) < len(names):
        return int(text)
    if text in names:
        return names.index(text)
    raise CommandError(f"--class: {text!r} is neither a class index (0..{len(names) - 1}) nor a class name of this "
                       f"store (e.g. {', '.join(repr(n) for n in names[:3])})")


def _split_ratios(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--split-ratios must be comma-separated numbers in [0, 1], got {text!r}") from None


def run_sweep(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_store(args.store)
    class_index = _class_index(args.class_, store.header.classes)
    ratios = _split_ratios(args.split_ratios)
    if args.tiny_pipeline:
        if args.model not in (None, TINY_MODEL):
            raise CommandError("--tiny-pipeline and --model name two different pipelines: pass one")
        warn_renamed("sweep --tiny-pipeline", "--model tiny")
        args.model = TINY_MODEL

    from diffii_datasets.prepare import load_generation_pipeline
    from diffii_datasets.quality.sweep import split_ratio_sweep, write_sweep

    models = _models(args, settings)
    pipeline = load_generation_pipeline(args.model or store.header.model, device=args.device)
    try:
        sweep = split_ratio_sweep(store, class_index, ratios, models=models, num_images=args.images,
                                  pipeline=pipeline, concepts=args.concepts, settings=settings,
                                  progress=not args.quiet)
    except TypeError as error:  # a bad argument value, said in the library's words
        raise CommandError(str(error)) from None
    path = write_sweep(sweep, args.output_dir, store.real_images(class_index))
    if sweep.models.get("random_weights"):
        print("metric networks: tiny, random weights (--tiny-models): the numbers below mean nothing")
    print(f"class {class_index} ({sweep.class_name}); the store's split ratio is {sweep.store_split_ratio:g}")
    print(f"{'split ratio':>11}  {'CLIP score':>10}  {'LPIPS':>7}  images")
    for point in sweep.points:
        print(f"{point.split_ratio:>11g}  {_number(point.clip_score, 2):>10}  {_number(point.lpips):>7}  {point.count}")
    print(f"sweep: {path.resolve()}, {(path.parent / 'sweep.png').resolve()}")
    return 0
