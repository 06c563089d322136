"""Pretrained models from a Hub id or a local directory, with errors that say how to get what is missing.

Every model the package loads (the Stable Diffusion pipeline, the captioner, the
summarising language model, the quality metrics' networks, classifier backbones
on the Hub) goes through :func:`from_pretrained`, so offline mode is honoured the
same way everywhere and a missing model is named with the command that fetches it.
Only the functions import torch or the Hub libraries, and only when called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from diffii_datasets import _checks

__all__ = ["HubUnreachableError", "default_device", "from_pretrained", "local_or_hub", "network_error"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_NETWORK_LIBRARIES = ("httpx", "httpcore", "requests", "urllib3", "aiohttp")
"""Top-level modules (by prefix: ``httpx2`` too) whose transport errors mean that a host could not be reached."""
_NETWORK_FAILURES = {"TransportError", "NetworkError", "TimeoutException", "ConnectionError", "Timeout",
                     "ConnectTimeout", "ProxyError", "NewConnectionError", "MaxRetryError", "ClientConnectionError"}
"""Class names (anywhere in an error's class hierarchy) of those libraries' failures to connect; not HTTP statuses."""
_STACKTRACE_SENTENCE = re.compile(r"\s*[^.(]*\b(?:stack ?trace|traceback)\b[^.]*\.?", re.IGNORECASE)


class HubUnreachableError(OSError):
    """A model that is not cached could not be fetched: the Hub is unreachable or offline mode is on.

    The message names the model, ``HF_HUB_OFFLINE`` and the ``hf download`` command that fetches it.
    """


def network_error(error: BaseException | None) -> BaseException | None:
    """The failure to reach a host behind ``error`` (itself or what it was raised from), or None.

    A transport error of the HTTP libraries (no connection, DNS, timeout, proxy),
    ``huggingface_hub``'s ``OfflineModeIsEnabled``, or ``socket.gaierror``; an HTTP status
    (404, 401) is an answer, not a network failure.
    """
    import socket

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        kind = type(error)
        names = {cls.__name__ for cls in kind.__mro__}
        if (kind.__module__.split(".")[0].startswith(_NETWORK_LIBRARIES) and names & _NETWORK_FAILURES) \
                or "OfflineModeIsEnabled" in names or isinstance(error, socket.gaierror):
            return error
        error = error.__cause__ or error.__context__
    return None


def local_or_hub(model: str | os.PathLike, name: str = "model") -> str:
    """A model id as given, or the absolute path when it names a local directory (so cache keys are stable)."""
    if not isinstance(model, (str, os.PathLike)):
        _checks.fail(TypeError, name, "a Hub id or a local directory", model)
    model = _checks.check_str(os.fspath(model), name, expected="a Hub id or a local directory")
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def default_device(device: Any) -> Any:
    """``device`` as a ``torch.device``; CUDA when available if it is None."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def from_pretrained(loader: Any, model: str, role: str, *, hint: str = "", **kwargs: Any) -> Any:
    """``loader.from_pretrained(model, **kwargs)``; a model that is not there says how to get it.

    ``role`` names the model in errors ("captioner", "Stable Diffusion"), ``hint``
    adds a sentence to them. A Hub id that is not cached while downloads are
    disabled (``HF_HUB_OFFLINE=1``) fails without touching the network, with an
    ``OSError`` naming the id and the ``hf download`` command that fetches it.
    """
    from huggingface_hub import constants

    path = Path(model).expanduser()
    if path.is_dir():
        return loader.from_pretrained(str(path), **kwargs)
    if not _HUB_ID.match(model) or path.exists():
        raise FileNotFoundError(f"{role} model {model!r} is neither an existing directory nor a Hub id like "
                                "'namespace/name'; pass a directory saved with save_pretrained or a Hub id")
    offline = bool(constants.HF_HUB_OFFLINE or kwargs.get("local_files_only"))
    if constants.HF_HUB_OFFLINE:
        kwargs.setdefault("local_files_only", True)  # no attempt to reach the Hub (and no library warning about it)
    try:
        with _hub_notice_held() as held:
            loaded = loader.from_pretrained(model, **kwargs)
        for record in held:  # loaded from the cache after all: the notice stands
            logging.getLogger(record.name).handle(record)
        return loaded
    except OSError as error:
        local_copy = "or pass the path of a local copy (a directory saved with save_pretrained)"
        hint = f" ({hint})" if hint else ""
        if offline:
            raise HubUnreachableError(
                f"{role} model {model!r} is not in the local Hugging Face cache and downloads are disabled "
                f"(HF_HUB_OFFLINE=1 or local_files_only=True){hint}. Download it once where the Hub is reachable, "
                f"e.g. `hf download {model}`, {local_copy}.") from error
        unreachable = network_error(error)
        if unreachable is not None:
            raise HubUnreachableError(
                f"cannot download the {role} model {model!r}: the Hugging Face Hub is unreachable "
                f"({type(unreachable).__name__}: {unreachable}) and the model is not in the local cache{hint}. "
                f"Download it once where the Hub is reachable (`hf download {model}`), {local_copy}; with "
                "HF_HUB_OFFLINE=1 set, the local cache is used without trying the network.") from error
        said = _STACKTRACE_SENTENCE.sub("", str(error)).strip()  # the libraries point at a traceback not shown
        raise OSError(f"could not load the {role} model {model!r} from the Hugging Face Hub ({said}){hint}. Check "
                      f"the id and your access to it, download it with `hf download {model}`, {local_copy}."
                      ) from error


@contextlib.contextmanager
def _hub_notice_held() -> Iterator[list[logging.LogRecord]]:
    """diffusers' "Couldn't connect to the Hub ... Will try to load from local cache" held back during a load: when
    the load fails, the error says it all in one message; when it succeeds, the caller logs the notice."""
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Couldn't connect to the Hub"):
            held.append(record)
            return False
        return True

    logger = logging.getLogger("diffusers.pipelines.pipeline_utils")
    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)
