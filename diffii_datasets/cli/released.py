"""``diffii-datasets released``: fetch a paper setting's released artifacts and say what was found.

Downloads (or takes from the Hub cache) the archives of ``Luka-Wang/Diff-II`` the setting
needs, extracts them once under ``--cache-dir``, and prints the files; with ``--root`` it
also reads them as ``generate --released`` would (concepts matched to the dataset's classes,
the lists mapped onto its images), so a problem shows before any GPU time is spent. With
``--released-from`` the files come from a local copy instead, and nothing touches the network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffii_datasets.cli._common import AddCommand, CommandError
from diffii_datasets.released.layout import REPO_ID, released_settings

EPILOG = f"""examples:
  diffii-datasets released cub-5shot
  diffii-datasets released cub-lt-if100 --root data/ --cache-dir stores/
  HF_HUB_OFFLINE=1 diffii-datasets released pet-10shot --revision <commit>
  diffii-datasets released cars-10shot --released-from ~/Diff-II --root data/

The artifacts are the authors' (the Hugging Face dataset repository {REPO_ID}):
learned concepts (ft_ti_db.zip), suffix lists (suffix.zip) and training and test
lists (datasets.zip, of which only the lists are extracted: the images are read from
--root). Downloads go through the Hugging Face cache ($HF_HUB_CACHE) and honour
HF_HUB_OFFLINE; archives are extracted under --cache-dir/released/<commit>/.
--released-from reads a copy on disk instead: the folder where the authors'
scripts/download.sh unzipped the archives, or a folder holding the three zips.
"""

RELEASED_FROM_HELP = ("read the authors' released files from this local copy instead of the Hugging Face Hub (no "
                      "network): the folder where their scripts/download.sh unzipped datasets.zip, ft_ti_db.zip and "
                      "suffix.zip, or a folder holding those zips")
"""The help of ``--released-from``, the same in every command that takes it."""


def add_commands(add_command: AddCommand) -> None:
    command = add_command("released", "download and check the authors' released concepts, suffixes and subsets of a "
                                      "paper setting", EPILOG, run_released)
    command.add_argument("setting", metavar="SETTING", choices=released_settings(),
                         help=f"a paper setting: {', '.join(released_settings())}")
    add_released_flags(command)
    add_released_from_flag(command)
    command.add_argument("--root", help="folder holding the datasets in torchvision's layouts: also match the "
                                        "concepts to its classes and map the lists onto its images")
    command.add_argument("--cache-dir", help="where the archives are extracted, under released/ (default: "
                                             "$DIFFII_DATASETS_CACHE or ~/.cache/diffii-datasets)")
    command.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_released_flags(command: argparse.ArgumentParser) -> None:
    """``--revision`` and ``--force-download``, shared with the commands that take ``--released``."""
    command.add_argument("--revision", help=f"branch, tag or commit of {REPO_ID} (default: main)")
    command.add_argument("--force-download", action="store_true",
                         help="download the archives again even when the Hugging Face cache has them")


def add_released_from_flag(command: argparse.ArgumentParser) -> None:
    """``--released-from PATH``, spelled and explained the same in every command that takes it."""
    command.add_argument("--released-from", metavar="PATH", help=RELEASED_FROM_HELP)


def check_released_from(args: argparse.Namespace) -> None:
    """``--released-from`` must exist; ``--revision`` and ``--force-download`` (the Hub download's) are refused
    with it."""
    if args.released_from is None:
        return
    given = [flag for flag, value in (("--revision", args.revision), ("--force-download", args.force_download))
             if value]
    if given:
        raise CommandError(f"{given[0]} applies to the download from the Hugging Face Hub; --released-from reads "
                           f"a local copy instead: drop {given[0]}")
    if not Path(args.released_from).expanduser().exists():
        raise CommandError(f"--released-from {args.released_from}: no such folder (it should be where the authors' "
                           "scripts/download.sh unzipped their archives, or hold the zips)")


def run_released(args: argparse.Namespace) -> int:
    from diffii_datasets.released import fetch_released, load_released
    from diffii_datasets.released.lists import read_image_list

    check_released_from(args)
    options = dict(revision=args.revision, cache_dir=args.cache_dir, force_download=args.force_download,
                   progress=not args.quiet, released_from=args.released_from)
    if args.root is None:
        files = fetch_released(args.setting, **options)
    else:
        if not Path(args.root).expanduser().is_dir():
            raise CommandError(f"--root {args.root}: no such directory")
        released = load_released(args.setting, Path(args.root).expanduser(), **options)
        files = released.files
    print(f"{args.setting}: the authors' released artifacts ({files.origin})")
    for role, path in files.files.items():
        source = files.sources[role]
        print(f"  {role}: {source}" + ("" if source == str(path) else f" -> {path}"))
    if args.root is None:
        for role in ("train_list", "test_list"):
            listed = read_image_list(files.files[role])
            print(f"  {role}: {len(listed)} images in {len({image.category for image in listed})} classes")
        print("pass --root to match them to a dataset")
        return 0
    concepts, splits = released.concepts, released.splits
    print(f"concepts: {len(concepts.class_names)} classes (metaclass {concepts.metaclass!r}), "
          f"{concepts.tokens_per_class} vector(s) of {concepts.embedding_dim} per class, "
          f"LoRA rank {concepts.lora_rank}")
    suffixes = released.suffixes.suffixes([], splits.metaclass)
    print(f"suffixes: {len(suffixes)}, e.g. {concepts.prompt(0, suffixes[0])!r}")
    print(f"training subset: {len(splits.train)} images of {Path(args.root).expanduser()}; "
          f"test list: {len(splits.test)} images")
    return 0
