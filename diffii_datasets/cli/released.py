"""``diffii-datasets released``: fetch a paper setting's released artifacts and say what was found.

Downloads (or takes from the Hub cache) the archives of ``Luka-Wang/Diff-II`` the setting
needs, extracts them once under ``--cache-dir``, and prints the files; with ``--root`` it
also reads them as ``generate --released`` would (concepts matched to the dataset's classes,
the lists mapped onto its images), so a problem shows before any GPU time is spent.
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

The artifacts are the authors' (the Hugging Face dataset repository {REPO_ID}):
learned concepts (ft_ti_db.zip), suffix lists (suffix.zip) and training and test
lists (datasets.zip, of which only the lists are extracted: the images are read from
--root). Downloads go through the Hugging Face cache ($HF_HUB_CACHE) and honour
HF_HUB_OFFLINE; archives are extracted under --cache-dir/released/<commit>/.
"""


def add_commands(add_command: AddCommand) -> None:
    command = add_command("released", "download and check the authors' released concepts, suffixes and subsets of a "
                                      "paper setting", EPILOG, run_released)
    command.add_argument("setting", metavar="SETTING", choices=released_settings(),
                         help=f"a paper setting: {', '.join(released_settings())}")
    add_released_flags(command)
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


def run_released(args: argparse.Namespace) -> int:
    from diffii_datasets.released import fetch_released, load_released
    from diffii_datasets.released.lists import read_image_list

    options = dict(revision=args.revision, cache_dir=args.cache_dir, force_download=args.force_download,
                   progress=not args.quiet)
    if args.root is None:
        files = fetch_released(args.setting, **options)
    else:
        if not Path(args.root).expanduser().is_dir():
            raise CommandError(f"--root {args.root}: no such directory")
        released = load_released(args.setting, Path(args.root).expanduser(), **options)
        files = released.files
    print(f"{args.setting}: the authors' released artifacts ({REPO_ID} at commit {files.commit})")
    for role, path in files.files.items():
        print(f"  {role}: {files.sources[role]} -> {path}")
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
