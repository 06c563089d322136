"""The ``diffii-datasets`` command line (also ``python -m diffii_datasets``).

One module per command group, each adding its subcommands in ``add_commands``;
a new group is one file here and one line in :data:`COMMAND_GROUPS`. Building
the parser loads no torch (command modules import their heavy dependencies in
the function that runs the command), so ``--help`` and ``--version`` are fast.
Errors the user can fix are printed as one line on stderr with exit status 1;
usage errors exit with 2, as argparse does. The libraries underneath log only their
warnings (errors only for the known-noisy loggers, and with ``--quiet``) unless ``-v``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from diffii_datasets import __version__
from diffii_datasets.cli._common import CommandError

__all__ = ["COMMAND_GROUPS", "CommandError", "build_parser", "main"]

COMMAND_GROUPS = (
    "diffii_datasets.cli.demo",
    "diffii_datasets.cli.generate",
    "diffii_datasets.cli.plan",
    "diffii_datasets.cli.store",
    "diffii_datasets.cli.hub",
    "diffii_datasets.cli.train",
    "diffii_datasets.cli.report",
    "diffii_datasets.cli.released",
)
"""The modules whose ``add_commands(add_command)`` adds subcommands, in the order ``--help`` lists them."""

THIRD_PARTY_LOGGERS = {"diffusers": "DIFFUSERS_VERBOSITY", "transformers": "TRANSFORMERS_VERBOSITY",
                       "huggingface_hub": "HF_HUB_VERBOSITY", "datasets": "DATASETS_VERBOSITY"}
"""The libraries whose logging the command line keeps at WARNING (ERROR with ``--quiet``) unless ``-v``,
with the environment variable each reads its level from when it is first imported (one set by the user wins)."""

NOISY_LOGGERS = ("diffusers.loaders",)
"""Loggers kept at ERROR unless ``-v``: they tell every run about their own internals (which adapter keys a
loader did not find), nothing a user of this command can act on. (Not ``transformers.modeling_utils``: at
ERROR, transformers 5 checks a tensor-parallel plan and warns that no layer was sharded.)"""

# Library wording that a command-line user should read as a flag.
_CLI_WORDING = (
    (re.compile(r"\bdownload=True\b"), "--download"),
    (re.compile(r"(?<![\w/.-])cache_dir(?![\w/.-])"), "--cache-dir"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffii-datasets",
        description="Diff-II diffusion augmentation for data-scarce image classification.",
    )
    parser.add_argument("--version", action="version", version=f"diffii-datasets {__version__}")
    verbose = "log progress at INFO level, and show tracebacks of errors"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose)
    # -v also after the subcommand; SUPPRESS keeps the top-level value when it is not repeated there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_command(name: str, help: str, epilog: str,
                    run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
        command.set_defaults(run=run)
        return command

    for group in COMMAND_GROUPS:
        importlib.import_module(group).add_commands(add_command)
    return parser


def cli_wording(message: str) -> str:
    """A library message as a command-line user should read it (``download=True`` is ``--download``)."""
    for pattern, flag in _CLI_WORDING:
        message = pattern.sub(flag, message)
    return message


def configure_logging(verbose: bool, quiet: bool, prefix: str = "") -> None:
    """This package at INFO with ``verbose``, else WARNING; the libraries below quiet unless ``verbose``."""
    logging.basicConfig(level=logging.WARNING, format=f"{prefix}%(levelname)s %(name)s: %(message)s")
    logging.getLogger("diffii_datasets").setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        return
    level = "error" if quiet else "warning"
    for library, variable in THIRD_PARTY_LOGGERS.items():
        if variable in os.environ:  # the user's own choice
            continue
        os.environ[variable] = level  # read when the library is first imported
        if library in sys.modules:
            logging.getLogger(library).setLevel(level.upper())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if quiet:  # download bars of the Hub and of datasets
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def _show_warning(head: str, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    print(f"{head}: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK") if "WORLD_SIZE" in os.environ else None
    prefix = f"[rank {rank}] " if rank is not None else ""
    configure_logging(args.verbose, getattr(args, "quiet", False), prefix)
    from diffii_datasets.distributed import SharedFilesystemError
    from diffii_datasets.store import StoreMismatchError

    try:
        with warnings.catch_warnings():
            if not args.verbose:  # one line each, as errors are: a library line number means nothing here
                warnings.showwarning = functools.partial(_show_warning, f"{prefix}diffii-datasets {args.command}")
            return args.run(args)
    except (CommandError, SharedFilesystemError, StoreMismatchError) as error:
        if args.verbose:
            raise
        print(f"{prefix}diffii-datasets {args.command}: error: {cli_wording(str(error))}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as error:  # bad data, files or setup, reported by the library
        if args.verbose:
            raise
        print(f"{prefix}diffii-datasets {args.command}: error: {cli_wording(str(error))} "
              "(rerun with -v for the traceback)", file=sys.stderr)
        return 1
