"""The data a command runs on, named in one way everywhere: a paper setting, or your own images.

``plan``, ``generate`` and ``compare`` take ``SETTING --root DIR`` (one of the paper's
settings, or a family with ``--shots`` / ``--imbalance-factor``) or ``--image-folder DIR
--metaclass WORD`` (your own images, one folder per class), with the same config flags.
A command adds them with :func:`add_data_arguments`, checks them with
:func:`check_data_arguments` (before any heavy import: a mistake answers at once), and
reads them with :func:`config_from_args`, :func:`load_training_set` and
:func:`concepts_from_args`. ``train`` takes your own test images with :func:`add_test_folder`.
Pure Python at import time: building the parser loads no torch.
"""

from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path
from typing import Any

from diffii_datasets.cli._common import (CommandError, add_knob_flags, knob_values, method_defaults,
                                         positive_int)
from diffii_datasets.cli.released import add_released_flags, add_released_from_flag, check_released_from
from diffii_datasets.methods import all_knobs, get_method, list_methods
from diffii_datasets.methods.config import TINY_MODEL, MethodConfig
from diffii_datasets.released.layout import REPO_ID
from diffii_datasets.settings.base import FAMILIES, LONG_TAIL_PROFILES, Setting, custom_setting, get_setting, \
    list_settings

__all__ = ["DATA_EPILOG", "IMAGE_EXTENSIONS", "add_data_arguments", "add_test_folder", "check_data_arguments",
           "check_image_folder", "concepts_from_args", "config_from_args", "data_name", "load_training_set",
           "resolve_setting"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The files torchvision's ``ImageFolder`` reads as images (``torchvision.datasets.folder.IMG_EXTENSIONS``)."""

DATA_EPILOG = """your own images:
  --image-folder DIR --metaclass WORD instead of SETTING and --root. DIR holds one
  folder per class with its images (DIR/<class>/<image>.jpg: torchvision's ImageFolder
  layout; classes in sorted folder order). Every image of DIR is used (no subset is
  drawn), and WORD says what they all are, as the prompts name it ("a photo of a
  <class tokens> WORD"): bird, car, flower, aircraft, animal, or any noun. Unset knobs
  take the paper's defaults (split ratio 0.3, as its 5-shot settings); --model tiny
  runs the offline tiny model instead (random weights, 32 px, about a minute on a CPU:
  a check that everything runs, its images are noise). The same folder in Python:
  DiffIIAugmented(ImageFolder(DIR), WORD, config=...) makes the same store.
"""

# Per family kind: the flag that gives its count, and how the help names the count.
_COUNT_FLAGS = {"few-shot": ("--shots", "N"), "long-tail": ("--imbalance-factor", "F")}


def _setting_names() -> list[str]:
    return [setting.name for setting in list_settings()] + list(FAMILIES)


def _setting_argument(text: str) -> str:
    """``SETTING``: a paper setting or family; anything else is refused with what to type instead."""
    names = _setting_names()
    if text in names:
        return text
    close = difflib.get_close_matches(text, names, n=1)
    hints = [f"did you mean {close[0]!r}?"] if close else []
    if Path(text).expanduser().is_dir():
        hints.append(f"{text} is a folder: for your own images pass --image-folder {text} --metaclass WORD")
    else:
        hints.append("for your own images pass --image-folder DIR --metaclass WORD")
    raise argparse.ArgumentTypeError(f"{text!r} is not one of the paper's settings or families "
                                     f"({', '.join(repr(name) for name in names)}); {' '.join(hints)}")


def add_data_arguments(command: argparse.ArgumentParser) -> None:
    """SETTING and its data flags, or ``--image-folder`` and ``--metaclass``; the cache, concepts and every config knob.

    The commands that make (or plan, or compare) a synthetic set share these; add
    :data:`DATA_EPILOG` to the command's epilog.
    """
    settings = [setting.name for setting in list_settings()]
    command.add_argument("setting", metavar="SETTING", nargs="?", type=_setting_argument,
                         help=f"a paper setting ({', '.join(settings)}) or a family with --shots / "
                              f"--imbalance-factor ({', '.join(FAMILIES)}); or none, with --image-folder")
    command.add_argument("--root", help="folder holding the datasets in torchvision's layouts (with SETTING)")
    command.add_argument("--image-folder", metavar="DIR",
                         help="your own images instead of SETTING: DIR/<class>/<image> (torchvision's ImageFolder)")
    command.add_argument("--metaclass", metavar="WORD",
                         help="with --image-folder: what every image shows, as the prompts name it (bird, car, ...)")
    command.add_argument("--cache-dir", help="where stores (and learned concepts) live; on a filesystem all ranks "
                                             "of a launch share (default: $DIFFII_DATASETS_CACHE, else "
                                             "$XDG_CACHE_HOME/diffii-datasets, else ~/.cache/diffii-datasets)")
    command.add_argument("--shots", type=positive_int, help="images per class, for the few-shot families "
                                                            f"({', '.join(_family_names('few-shot'))})")
    command.add_argument("--imbalance-factor", type=float, help="long-tail imbalance factor, for the long-tail "
                                                                f"families ({', '.join(_family_names('long-tail'))})")
    command.add_argument("--profile", choices=LONG_TAIL_PROFILES,
                         help=f"long-tail profile (default: {LONG_TAIL_PROFILES[0]})")
    command.add_argument("--subset-seed", type=int, help="seed that draws the training subset (default: --seed)")
    command.add_argument("--concepts", help="a saved concept set (ConceptSet.save) to use instead of learning one")
    command.add_argument("--method", choices=list_methods(), default="diff-ii",
                         help="how the synthetic images are made: Diff-II (the default) or one of the paper's "
                              "baselines (diffii-datasets compare runs them side by side)")
    command.add_argument("--config", help="a JSON file of the method's config (MethodConfig.to_json); flags below "
                                          "override its knobs")
    command.add_argument("--download", action="store_true", help="download a missing dataset where torchvision can")
    command.add_argument("--released", action="store_true",
                         help="use the authors' released concepts, suffixes and training subset of SETTING "
                              f"(from {REPO_ID}) instead of learning concepts and drawing a subset")
    add_released_flags(command)
    add_released_from_flag(command)
    knobs = command.add_argument_group("method settings", "every knob of the methods' configs (each method takes "
                                                          "its own); defaults are the published ones (--model tiny: "
                                                          "the tiny offline model's preset)")
    add_knob_flags(knobs, all_knobs(), method_defaults())


def _family_names(kind: str) -> list[str]:
    return [family.name for family in FAMILIES.values() if family.kind == kind]


def check_data_arguments(args: argparse.Namespace) -> None:
    """Refuse a contradictory or incomplete choice of data, naming the flag and what to pass instead; loads no torch."""
    if args.image_folder is not None:
        if args.setting is not None:
            raise CommandError(f"pass SETTING ({args.setting}) or --image-folder, not both: SETTING reads a paper "
                               "setting under --root, --image-folder your own images")
        if args.metaclass is None:
            raise CommandError(f"--image-folder {args.image_folder} needs --metaclass WORD: what every image shows, "
                               "as the prompts name it (bird, car, flower, ...)")
        given = [flag for flag, value in (("--root", args.root), ("--shots", args.shots),
                                          ("--imbalance-factor", args.imbalance_factor), ("--profile", args.profile),
                                          ("--subset-seed", args.subset_seed), ("--download", args.download),
                                          ("--released", args.released), ("--released-from", args.released_from))
                 if value not in (None, False)]
        if given:
            raise CommandError(f"{given[0]} applies to the paper's settings (SETTING), not to --image-folder: every "
                               f"image of {args.image_folder} is used; drop {given[0]}")
        check_image_folder(args.image_folder, "--image-folder")
    else:
        if args.setting is None:
            raise CommandError("name the images: a paper setting (e.g. cub-5shot --root data/) or your own "
                               "(--image-folder DIR --metaclass WORD)")
        if args.metaclass is not None:
            raise CommandError(f"--metaclass applies to --image-folder; {args.setting} has its own metaclass: "
                               "drop --metaclass")
        if args.root is None:
            raise CommandError(f"{args.setting} needs --root DIR: the folder holding its dataset in torchvision's "
                               "layout (e.g. CUB_200_2011/, flowers-102/)")
        if not Path(args.root).expanduser().is_dir():
            raise CommandError(f"--root {args.root}: no such directory (it should hold the datasets in "
                               "torchvision's layouts, e.g. CUB_200_2011/, flowers-102/)")
        resolve_setting(args)
    _check_released_flags(args)
    if args.concepts is not None and not Path(args.concepts).expanduser().exists():
        raise CommandError(f"--concepts {args.concepts}: no such file or directory (a concept set saved with "
                           "ConceptSet.save, e.g. a folder under <cache-dir>/concepts/)")
    config_from_args(args)


def check_image_folder(folder: str, flag: str) -> list[str]:
    """The class names of ``folder`` (an ``ImageFolder`` layout), read without torch; a layout it is not is refused."""
    path = Path(folder).expanduser()
    layout = f"{flag} {folder}: expected one folder per class holding its images ({folder}/<class>/<image>.jpg)"
    if not path.is_dir():
        raise CommandError(f"{flag} {folder}: no such directory")
    classes = sorted(entry.name for entry in os.scandir(path) if entry.is_dir())
    if not classes:
        raise CommandError(f"{layout}, but it holds no folder")
    for name in classes:
        if not _has_image(path / name):
            raise CommandError(f"{layout}, but {path / name} holds no image ({', '.join(IMAGE_EXTENSIONS)}): add "
                               "its images or remove the folder")
    return classes


def _has_image(folder: Path) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in files):
            return True
    return False


def _check_released_flags(args: argparse.Namespace) -> None:
    """``--released`` brings concepts, suffixes and subset: the flags that would set them again are refused.

    ``--released-from PATH`` implies ``--released`` (the artifacts read from a local copy).
    """
    if args.released_from is not None:
        args.released = True
        check_released_from(args)
    if not args.released:
        given = [flag for flag, value in (("--revision", args.revision), ("--force-download", args.force_download))
                 if value]
        if given:
            raise CommandError(f"{given[0]} applies to the released artifacts: add --released")
        return
    if args.setting in FAMILIES:
        raise CommandError(f"--released: the authors released the paper's settings only "
                           f"({', '.join(s.name for s in list_settings())}), not a family with a count")
    clashes = [flag for flag, value in (("--concepts", args.concepts), ("--suffixes", args.suffixes),
                                        ("--subset-seed", args.subset_seed)) if value is not None]
    if clashes:
        raise CommandError(f"--released brings the authors' concepts, suffixes and subset: drop {clashes[0]}")
    concept_flags = [item.flag for item in all_knobs()
                     if item.name.startswith("concept_") and getattr(args, item.name, None) is not None]
    if concept_flags:
        raise CommandError(f"--released brings the authors' learned concepts, so nothing is learned: drop "
                           f"{concept_flags[0]}")


def resolve_setting(args: argparse.Namespace) -> Setting | None:
    """The :class:`~diffii_datasets.settings.Setting` that ``SETTING``, ``--shots`` and ``--imbalance-factor`` name;
    ``None`` for ``--image-folder``."""
    if args.setting is None:
        return None
    fixed = args.setting not in FAMILIES
    setting = get_setting(args.setting) if fixed else None
    family = FAMILIES[setting.family if fixed else args.setting]
    own, metavar = _COUNT_FLAGS[family.kind]
    given = {"--shots": args.shots, "--imbalance-factor": args.imbalance_factor}
    others = [flag for flag, value in given.items() if flag != own and value is not None]
    if fixed:
        if others:
            raise CommandError(f"{setting.name} is a {family.kind} setting: {others[0]} does not apply to it")
        value = setting.shots if family.kind == "few-shot" else setting.imbalance_factor
        if given[own] is not None and given[own] != value:
            raise CommandError(f"{setting.name} fixes {own.lstrip('-')}={value:g}; to use {given[own]:g}, name the "
                               f"family instead: {args.command} {family.name} {own} {given[own]:g} ...")
        return setting
    if given[own] is None or others:
        published = [f"{value:g}" for value in family.published]
        paper = ", ".join(published[:-1]) + " and " + published[-1]
        not_others = f", not {others[0]}" if others else ""
        raise CommandError(f"{family.name} is a {family.kind} family: pass {own} {metavar} (the paper uses {paper})"
                           f"{not_others}")
    try:
        return custom_setting(family.name, given[own])
    except (TypeError, ValueError) as error:
        raise CommandError(f"{own} {given[own]:g}: {error}") from None


def data_name(args: argparse.Namespace) -> str:
    """How the printed lines name the data: the setting, or the image folder."""
    setting = resolve_setting(args)
    return setting.name if setting is not None else str(Path(args.image_folder).expanduser())


def config_from_args(args: argparse.Namespace) -> MethodConfig:
    """The config of ``--method`` on a command line.

    The method's published defaults (``--model tiny``: the ``"tiny"`` preset) with the setting's own knobs
    that the method declares (:meth:`~diffii_datasets.settings.Setting.method_config`, as the Hub builder
    uses them), or a ``--config`` file; then every knob flag given, which must be one of the method's.
    """
    from diffii_datasets._io import read_json

    cls = get_method(args.method).config_class
    knobs = knob_values(args, all_knobs())
    foreign = [item.flag for item in all_knobs() if item.name in knobs and item.name not in cls.declared(knobs)]
    if foreign:
        raise CommandError(f"{foreign[0]} is not a knob of --method {args.method} (its knobs: "
                           f"{', '.join(item.flag for item in cls.knobs())})")
    setting = resolve_setting(args)
    preset = "tiny" if knobs.get("model") == TINY_MODEL else "paper"
    config = setting.method_config(args.method, preset=preset) if setting is not None else cls.preset(preset)
    if args.config is not None:
        try:
            config = cls.from_dict(read_json(Path(args.config).expanduser()))
        except (OSError, TypeError, ValueError) as error:
            raise CommandError(f"--config {args.config}: not a readable {cls.__name__} JSON file ({error})") from None
    model = knobs.get("model")
    if model is not None and model != TINY_MODEL and Path(model).expanduser().is_dir():
        knobs["model"] = str(Path(model).expanduser().resolve())  # one identity whatever the cwd
    return config.replace(**knobs)


def load_training_set(args: argparse.Namespace, seed: int, first: bool) -> tuple[Any, str, Any]:
    """The training images, their metaclass and, with ``--released``, the released setting (else None).

    SETTING's subset drawn with ``seed`` under ``--root``, or every image of ``--image-folder``.
    Only the ``first`` process forces a new download; the others then read what it fetched.
    """
    if args.image_folder is not None:
        from torchvision.datasets import ImageFolder

        return ImageFolder(str(Path(args.image_folder).expanduser())), args.metaclass, None
    root = Path(args.root).expanduser()
    setting = resolve_setting(args)
    try:
        if args.released:
            from diffii_datasets.released import load_released

            released = load_released(setting, root, revision=args.revision, cache_dir=args.cache_dir,
                                     force_download=args.force_download and first,
                                     progress=not getattr(args, "quiet", False), download=args.download,
                                     released_from=args.released_from)
            return released.splits.train, released.splits.metaclass, released
        splits = setting.load(root, seed, profile=args.profile or LONG_TAIL_PROFILES[0], download=args.download)
    except (RuntimeError, OSError, ValueError) as error:
        raise CommandError(f"cannot load {setting.name}{' as released' if args.released else ''} from {root}: "
                           f"{error}") from None
    return splits.train, splits.metaclass, None


def concepts_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~diffii_datasets.diffusion.ConceptSet` that ``--concepts`` names, or None."""
    if args.concepts is None:
        return None
    from diffii_datasets.diffusion.concepts import ConceptSet

    try:
        return ConceptSet.load(args.concepts)
    except (OSError, ValueError) as error:
        raise CommandError(f"--concepts {args.concepts}: {error}") from None


def add_test_folder(command: argparse.ArgumentParser) -> None:
    """``--test-folder DIR``: your own test images, in the ImageFolder layout of the training images."""
    command.add_argument("--test-folder", metavar="DIR",
                         help="your own test images instead of SETTING: DIR/<class>/<image>, the same class folders "
                              "as the images the store (or --image-folder) was made from")
