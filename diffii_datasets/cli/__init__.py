"""The ``diffii-datasets`` command line (also ``python -m diffii_datasets``).

One module per command group, each adding its subcommands in ``add_commands``;
a new group is one file here and one line in :data:`COMMAND_GROUPS`. Building
the parser loads no torch (command modules import their heavy dependencies in
the function that runs the command), so ``--help`` and ``--version`` are fast.
Errors the user can fix are printed as one line on stderr with exit status 1;
usage errors exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence

from diffii_datasets import __version__
from diffii_datasets.cli._common import CommandError

__all__ = ["COMMAND_GROUPS", "CommandError", "build_parser", "main"]

COMMAND_GROUPS = (
    "diffii_datasets.cli.demo",
    "diffii_datasets.cli.generate",
    "diffii_datasets.cli.store",
    "diffii_datasets.cli.hub",
    "diffii_datasets.cli.train",
    "diffii_datasets.cli.report",
    "diffii_datasets.cli.released",
)
"""The modules whose ``add_commands(add_command)`` adds subcommands, in the order ``--help`` lists them."""

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK") if "WORLD_SIZE" in os.environ else None
    prefix = f"[rank {rank}] " if rank is not None else ""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"{prefix}%(levelname)s %(name)s: %(message)s")
    from diffii_datasets.distributed import SharedFilesystemError
    from diffii_datasets.store import StoreMismatchError

    try:
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
