"""The ``diffii-datasets`` command line (also ``python -m diffii_datasets``).

One module per command group, each adding its subcommands in ``add_commands``;
a new group is one file here and one line in :data:`COMMAND_GROUPS`. Building
the parser loads no torch (command modules import their heavy dependencies in
the function that runs the command), so ``--help`` and ``--version`` are fast.
Errors the user can fix are printed as one line on stderr with exit status 1;
usage errors exit with 2, as argparse does (a mistyped flag or choice gets a suggestion,
and an abbreviated flag is refused). Ctrl-C prints one line and exits with 130; a Hub that
cannot be reached is one line naming ``HF_HUB_OFFLINE``. Warnings, this package's and the
libraries', are one line each in one format (``diffii-datasets generate: warning: ...``).
The libraries underneath log only their warnings (errors only for the known-noisy
loggers, and with ``--quiet``) unless ``-v``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

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
    "diffii_datasets.cli.compare",
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
    (re.compile(r"\bworkers=(\d+)"), r"--workers \1"),
)


class _Parser(argparse.ArgumentParser):
    """argparse with whole flags only (no abbreviations) and a suggestion for a mistyped flag or choice."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        argv = list(sys.argv[1:] if args is None else args)
        self._check_flags(argv)  # first: argparse would read the value of an unknown flag as SETTING
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            self._command_parser(argv).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _check_flags(self, argv: list[str]) -> None:
        """Refuse a ``--flag`` the command does not have (an abbreviated one too), suggesting the closest."""
        command = self._command_parser(argv)
        options = {flag for action in command._actions for flag in action.option_strings}
        seen_command = command is self
        for token in argv:
            if token == "--":
                return
            if not seen_command:  # the top level's own flags come before the command
                seen_command = token == command.prog.rsplit(" ", 1)[-1]
                continue
            name = token.split("=", 1)[0]
            if name.startswith("--") and name not in options:
                close = difflib.get_close_matches(name, sorted(options), n=1)
                command.error(f"unrecognized arguments: {token}" + (f" (did you mean {close[0]}?)" if close else ""))

    def _command_parser(self, argv: Sequence[str]) -> argparse.ArgumentParser:
        """The parser of the subcommand ``argv`` names (its first word that is one), else this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return next((action.choices[token] for token in argv if token in action.choices), self)
        return self

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        choice = _INVALID_CHOICE.search(message)
        if choice:
            names = [name.strip().strip("'") for name in choice.group(2).split(",")]
            close = difflib.get_close_matches(choice.group(1), names, n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        # One line, as every other error: the whole usage of a command with forty flags would bury it.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffii-datasets",
        description="Diff-II diffusion augmentation for data-scarce image classification.",
    )
    parser.add_argument("--version", action="version", version=f"diffii-datasets {__version__}")
    verbose = "log progress at INFO level, and show tracebacks of errors"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose)
    # -v also after the subcommand; SUPPRESS keeps the top-level value when it is not repeated there.
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_command(name: str, help: str, epilog: str,
                    run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common],
                                 allow_abbrev=False)
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


def configure_logging(verbose: bool, quiet: bool, prefix: str = "", head: str = "diffii-datasets") -> None:
    """This package at INFO with ``verbose``, else WARNING; the libraries below quiet unless ``verbose``.

    Every logged warning (any library's) reads as the command's own: ``<head>: warning: <message>``.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(_OneFormat(prefix, head))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
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


class _OneFormat(logging.Formatter):
    """Warnings and errors of any logger as the command's own lines; INFO and DEBUG (``-v``) with the logger's name."""

    def __init__(self, prefix: str, head: str) -> None:
        super().__init__()
        self.prefix, self.head = prefix, head

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"{self.head}: {'error' if record.levelno >= logging.ERROR else 'warning'}: {message}"
        return f"{self.prefix}{record.levelname} {record.name}: {message}"


def _show_warning(head: str, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    print(f"{head}: warning: {cli_wording(str(message))}", file=file or sys.stderr)


INTERRUPTED = "interrupted; rerun the same command to resume"
"""What Ctrl-C prints (exit status 130): every command either resumes where it stopped or is quick to redo."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK") if "WORLD_SIZE" in os.environ else None
    prefix = f"[rank {rank}] " if rank is not None else ""
    head = f"{prefix}diffii-datasets {args.command}"
    configure_logging(args.verbose, getattr(args, "quiet", False), prefix, head)
    try:
        with warnings.catch_warnings():
            if not args.verbose:  # one line each, as errors are: a library line number means nothing here
                warnings.showwarning = functools.partial(_show_warning, head)
            return args.run(args)
    except KeyboardInterrupt:
        print(f"{head}: {INTERRUPTED}", file=sys.stderr)
        return 130
    except Exception as error:
        line = _error_line(error, args.command)
        if line is None or args.verbose:
            raise
        print(f"{head}: error: {line}", file=sys.stderr)
        return 1


def _error_line(error: Exception, command: str) -> str | None:
    """The one line an error is reported as, or None for a bug (its traceback is shown)."""
    from diffii_datasets._pretrained import HubUnreachableError, network_error

    if isinstance(error, (CommandError, HubUnreachableError)) or _is_own(error):
        return cli_wording(str(error))
    cause = network_error(error)
    if cause is not None:
        return _network_line(cause, command)
    if isinstance(error, (ValueError, OSError, RuntimeError)):  # bad data, files or setup, reported by the library
        return f"{cli_wording(str(error))} (rerun with -v for the traceback)"
    return None


def _is_own(error: Exception) -> bool:
    """Errors of the store and of a launch, worded for the user already (loaded modules: a raised error's is)."""
    kinds = [getattr(sys.modules.get(module), name, None) for module, name in (
        ("diffii_datasets.distributed", "SharedFilesystemError"),
        ("diffii_datasets.store.header", "StoreMismatchError"))]
    return isinstance(error, tuple(kind for kind in kinds if kind is not None))


def _network_line(cause: BaseException, command: str) -> str:
    """A Hub that could not be reached, and what to do: go online, or work offline with what is cached."""
    offline_check = "; to check a push without a network: push ... --dry-run" if command == "push" else ""
    if type(cause).__name__ == "OfflineModeIsEnabled":
        return (f"{command} needs the Hugging Face Hub here, but HF_HUB_OFFLINE=1 is set: unset HF_HUB_OFFLINE to go "
                f"online{offline_check}")
    return (f"cannot reach the Hugging Face Hub ({type(cause).__name__}: {cause}): check the network (or a proxy) and "
            f"rerun; to work from the local cache, set HF_HUB_OFFLINE=1 (download a model once with `hf download "
            f"<model id>`){offline_check}")
