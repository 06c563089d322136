"""Backbones by name: any torchvision classification model, or ``timm:<name>``, with a new head for the classes.

Pretrained weights are looked for in their cache *before* anything is downloaded, so
an offline machine gets an error that names the weights, the file and how to get it
(:class:`WeightsNotAvailable`) instead of a stack trace from the download.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from diffii_datasets import _checks

__all__ = ["WeightsNotAvailable", "build_model", "torchvision_weights_file"]

TIMM_PREFIX = "timm:"


class WeightsNotAvailable(OSError):
    """Pretrained weights that are neither cached nor downloadable here."""


def build_model(name: str, num_classes: int, weights: str | None = None, *, image_size: int | None = None,
                download: bool = True) -> Any:
    """``name`` with ``weights`` (None: random initialisation) and a fresh ``num_classes``-way linear head.

    ``name`` is a torchvision model (``resnet50``, ``vit_b_16``, ``convnext_tiny`` ...) with
    a torchvision weights name (``IMAGENET1K_V1``, ``IMAGENET1K_SWAG_E2E_V1``, ``DEFAULT``),
    or ``timm:<name>`` with ``weights="pretrained"`` for timm's default weights. The head
    replaced is the model's last linear layer (``fc`` of a ResNet, ``heads.head`` of a
    ViT), as the authors replace it. ``image_size`` sizes a randomly initialised torchvision
    ViT (its position embeddings; pretrained ones come with their size). ``download=False``
    refuses to fetch weights that are not cached.
    """
    name = _checks.check_one_line(name, "model", expected="a torchvision model name or timm:<name>")
    num_classes = _checks.check_int(num_classes, "num_classes", minimum=2)
    if weights is not None:
        weights = _checks.check_one_line(weights, "weights", expected="a weights name or None")
    if image_size is not None:
        _checks.check_int(image_size, "image_size", minimum=1)
    _checks.check_bool(download, "download")
    if name.startswith(TIMM_PREFIX):
        return _timm_model(name[len(TIMM_PREFIX):], num_classes, weights, download)
    return _torchvision_model(name, num_classes, weights, image_size, download)


def _torchvision_model(name: str, num_classes: int, weights: str | None, image_size: int | None,
                       download: bool) -> Any:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(f"model must be a torchvision classification model ({', '.join(known[:8])}, ...) or "
                         f"timm:<name>, got {name!r}")
    if weights is None:
        sized = {"image_size": image_size} if image_size is not None and name.startswith("vit_") else {}
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **sized)
    enum = torchvision.models.get_model_weights(name)
    try:
        resolved = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(f"weights must be one of {', '.join(w.name for w in enum)}, DEFAULT or None for {name}, "
                         f"got {weights!r}") from None
    path = torchvision_weights_file(resolved)
    if not path.is_file():
        hint = (f"Download {resolved.url} into {path.parent} (or run torchvision.models.get_model({name!r}, "
                f"weights={resolved.name!r}) where the network is reachable; TORCH_HOME moves the cache), or "
                "use weights=None (--weights none) for random initialisation")
        if not download:
            raise WeightsNotAvailable(f"{type(resolved).__name__}.{resolved.name} is not in the torch hub cache "
                                      f"({path}) and downloads are off. {hint}.")
        try:
            import torch

            torch.hub.load_state_dict_from_url(resolved.url, progress=True, check_hash=True)
        except Exception as error:  # any download failure: name the weights instead of a stack trace
            raise WeightsNotAvailable(f"{type(resolved).__name__}.{resolved.name} is not in the torch hub cache "
                                      f"({path}) and could not be downloaded ({type(error).__name__}: {error}). "
                                      f"{hint}.") from None
    model = torchvision.models.get_model(name, weights=resolved)
    return _replace_head(model, num_classes, name)


def torchvision_weights_file(weights: Any) -> Path:
    """Where torch hub keeps the file of torchvision ``weights`` (``$TORCH_HOME/hub/checkpoints/<file>``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _replace_head(model: Any, num_classes: int, name: str) -> Any:
    from torch import nn

    linears = [(path, module) for path, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"model {name} has no final linear layer to replace with a {num_classes}-way head")
    path, last = linears[-1]
    parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
    head = nn.Linear(last.in_features, num_classes, bias=last.bias is not None)
    setattr(parent, path.rpartition(".")[2], head)
    return model


def _timm_model(name: str, num_classes: int, weights: str | None, download: bool) -> Any:
    try:
        import timm
    except ImportError:
        raise ImportError(f"model timm:{name} needs timm: pip install timm") from None
    if not timm.is_model(name):
        raise ValueError(f"model must be a timm model name after 'timm:' (timm.list_models()), got {name!r}")
    if weights not in (None, "pretrained"):
        raise ValueError(f"weights of a timm model must be 'pretrained' or None, got {weights!r} "
                         "(choose a weight tag in the name: timm:resnet50.a1_in1k)")
    if weights is None:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    repo = _timm_hub_repo(name)
    if not _timm_cached(repo):
        hint = (f"Download it where the Hub is reachable (`hf download {repo}`; HF_HOME moves the cache) or use "
                "weights=None (--weights none)")
        if not download:
            raise WeightsNotAvailable(f"the pretrained weights of timm:{name} ({repo} on the Hugging Face Hub) are "
                                      f"not in the local cache and downloads are off. {hint}.")
        try:
            return timm.create_model(name, pretrained=True, num_classes=num_classes)
        except Exception as error:  # any download failure: name the weights instead of a stack trace
            raise WeightsNotAvailable(f"the pretrained weights of timm:{name} ({repo}) could not be downloaded "
                                      f"({type(error).__name__}: {error}). {hint}.") from None
    return timm.create_model(name, pretrained=True, num_classes=num_classes)


def _timm_hub_repo(name: str) -> str:
    from timm.models import get_pretrained_cfg

    config = get_pretrained_cfg(name)
    repo = getattr(config, "hf_hub_id", None) if config is not None else None
    if not repo:
        raise ValueError(f"timm:{name} has no pretrained weights on the Hugging Face Hub; use weights=None")
    return repo


def _timm_cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, filename), str)
               for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))
