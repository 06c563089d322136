"""``diffii-datasets export`` and ``push``: a store as a Hugging Face dataset (through :mod:`diffii_datasets.hf`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffii_datasets.cli._common import AddCommand, CommandError, open_store
from diffii_datasets.settings.base import FAMILIES, list_settings

EPILOG_EXPORT = """examples:
  diffii-datasets export stores/3f9c2a... hub-folder/ --config-name cub-5shot
  diffii-datasets export stores/3f9c2a... hub-folder/ --config-name cub-5shot --test-root data/
  diffii-datasets export stores/7d01e4... hub-folder/ --config-name cub-7shot --card cub

The folder loads with datasets.load_dataset("hub-folder", "cub-5shot") and can be
uploaded as it is; push does both steps in one.
"""

EPILOG_PUSH = """examples:
  diffii-datasets push stores/3f9c2a... --repo-id me/diffii-cub --config-name cub-5shot --dry-run   # offline
  hf auth login   # once; or export HF_TOKEN=...
  diffii-datasets push stores/3f9c2a... --repo-id me/diffii-cub --config-name cub-5shot --test-root data/
  diffii-datasets push stores/9b2f7c... --repo-id me/diffii-cub --config-name cub-10shot --private

Each config is one folder of the repository; pushing another config keeps the others.
--dry-run checks a push without a network or a token: it writes the files the push would
upload to a temporary folder and prints them (paths and sizes), the repository, the config
name, the commit message and the card (README.md); the one difference is that a real push
merges the repository's current card (its other configs) into this one.
"""


def add_commands(add_command: AddCommand) -> None:
    export = add_command("export", "write a store as a Hugging Face dataset folder (Parquet shards and a card)",
                         EPILOG_EXPORT, run_export)
    export.add_argument("store", help="a complete store directory (printed by generate)")
    export.add_argument("folder", help="the folder to write (configs exported into one folder accumulate)")
    _add_hub_arguments(export)
    export.add_argument("--repo-id", help="the repository the card's loading example names (namespace/name)")

    push = add_command("push", "upload a store to the Hugging Face Hub as one config of a dataset repository",
                       EPILOG_PUSH, run_push)
    push.add_argument("store", help="a complete store directory (printed by generate)")
    push.add_argument("--repo-id", required=True, help="the dataset repository, e.g. me/diffii-cub")
    _add_hub_arguments(push)
    push.add_argument("--private", action="store_true", help="create the repository as private (if it is new)")
    push.add_argument("--token", help="Hub token (default: $HF_TOKEN or the one saved by `hf auth login`; "
                                      "prefer those: a token on the command line ends up in shell history)")
    push.add_argument("--commit-message", help="message of the Hub commit")
    push.add_argument("--dry-run", action="store_true",
                      help="print what would be uploaded (files, card, repository, config name) without a network "
                           "or a token, and upload nothing")


def _add_hub_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config-name", required=True,
                         help="the dataset config, normally the paper setting the store was made for (cub-5shot ...); "
                              "another name gets the generic card, which claims no licence, unless --card is given")
    command.add_argument("--card", help=f"card template: a family ({', '.join(FAMILIES)}), 'generic' or a template "
                                        "file (default: the setting's family, or generic)")
    command.add_argument("--test-root", help="include the setting's real test split, read from this data root")
    command.add_argument("--download", action="store_true",
                         help="download a missing test split where torchvision can (with --test-root)")


def _check_hub_arguments(args: argparse.Namespace) -> None:
    """The names and folders a command line gives, checked before the Hub and data libraries load."""
    from diffii_datasets.hf.names import check_config_name, check_repo_id

    for flag, value, check in (("--config-name", args.config_name, check_config_name),
                               ("--repo-id", args.repo_id, check_repo_id)):
        if value is not None:
            try:
                check(value)
            except ValueError as error:
                raise CommandError(f"{flag}: {error}") from None
    if args.test_root is None:
        if args.download:
            raise CommandError("--download applies to --test-root (a missing test split): add --test-root DIR or "
                               "drop --download")
        return
    settings = [setting.name for setting in list_settings()]
    if args.config_name not in settings:
        raise CommandError(f"--test-root needs --config-name to be one of the paper's settings "
                           f"({', '.join(settings)}), got {args.config_name!r}")
    if not Path(args.test_root).expanduser().is_dir():
        raise CommandError(f"--test-root {args.test_root}: no such directory (it should hold the datasets in "
                           "torchvision's layouts)")


def _test_split(args: argparse.Namespace) -> Any:
    """The real test split of ``--config-name``'s setting under ``--test-root``, or ``None``."""
    if args.test_root is None:
        return None
    from diffii_datasets.settings.loading import load_setting

    try:
        return load_setting(args.config_name, Path(args.test_root).expanduser(), download=args.download).test
    except (RuntimeError, OSError, ValueError) as error:
        raise CommandError(f"--test-root {args.test_root}: cannot load the test split of {args.config_name}: "
                           f"{error}") from None


def run_export(args: argparse.Namespace) -> int:
    _check_hub_arguments(args)  # before torch loads
    store = open_store(args.store)

    from diffii_datasets.hf import export_to_folder

    files = export_to_folder(store, args.folder, args.config_name, test_dataset=_test_split(args), card=args.card,
                             repo_id=args.repo_id)
    print(f"exported {args.config_name}: {len(files)} files in {Path(args.folder).resolve()}")
    for path in files:
        print(f"  {path}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    _check_hub_arguments(args)  # before torch loads
    store = open_store(args.store)
    if args.dry_run:
        return _dry_run(args, store)

    from diffii_datasets.hf import push_to_hub

    url = push_to_hub(store, args.repo_id, args.config_name, private=args.private, token=args.token,
                      test_dataset=_test_split(args), card=args.card, commit_message=args.commit_message)
    print(f"pushed {args.config_name} to {args.repo_id}: {url}")
    return 0


def _dry_run(args: argparse.Namespace, store: Any) -> int:
    """``push --dry-run``: the files a push would upload, written to a temporary folder, listed, then removed."""
    import tempfile

    from diffii_datasets.hf import preview_push

    with tempfile.TemporaryDirectory(prefix="diffii-push-dry-run-") as folder:
        files = preview_push(store, args.repo_id, args.config_name, folder, test_dataset=_test_split(args),
                             card=args.card)
        print(f"dry run: nothing uploaded, no network used. A push would upload to the dataset repository "
              f"{args.repo_id} (created{' private' if args.private else ''} if it does not exist), config "
              f"{args.config_name}, in one commit {args.commit_message or f'Add Diff-II config {args.config_name}'!r}:")
        for path in sorted(files):
            print(f"  {path.relative_to(folder)}  ({path.stat().st_size:,} bytes)")
        print(f"replacing data/{args.config_name}/ there and keeping the repository's other configs, whose entries "
              "a push merges into this card (README.md):")
        print((Path(folder) / "README.md").read_text(encoding="utf-8"))
    return 0
