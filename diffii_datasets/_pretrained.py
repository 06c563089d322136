"""Pretrained models from a Hub id or a local directory, with errors that say how to get what is missing.

Every model the package loads (the Stable Diffusion pipeline, the captioner, the
summarising language model, the quality metrics' networks, classifier backbones
on the Hub) goes through :func:`from_pretrained`, so offline mode is honoured the
same way everywhere and a missing model is named with the command that fetches it.
Only the functions import torch or the Hub libraries, and only when called.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from diffii_datasets import _checks

__all__ = ["default_device", "from_pretrained", "local_or_hub"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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
    try:
        return loader.from_pretrained(model, **kwargs)
    except OSError as error:
        local_copy = "or pass the path of a local copy (a directory saved with save_pretrained)"
        hint = f" ({hint})" if hint else ""
        if offline:
            raise OSError(f"{role} model {model!r} is not in the local Hugging Face cache and downloads are "
                          f"disabled (HF_HUB_OFFLINE=1 or local_files_only=True){hint}. Download it once where the "
                          f"Hub is reachable, e.g. `hf download {model}`, {local_copy}.") from error
        raise OSError(f"could not load the {role} model {model!r} from the Hugging Face Hub ({error}){hint}. Check "
                      f"the id and your access to it, download it with `hf download {model}`, {local_copy}."
                      ) from error
