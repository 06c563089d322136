"""The networks behind the quality measures: CLIP (transformers) and LPIPS (the ``lpips`` package).

CLIP loads from the Hub or a local directory through
:func:`~diffii_datasets._pretrained.from_pretrained`, like every pretrained model
of the package. LPIPS ships its calibrated linear layers inside the ``lpips``
package, but its backbone (AlexNet, VGG-16 or SqueezeNet) is torchvision's
ImageNet checkpoint, which torchvision downloads into the torch hub cache; with
downloads disabled (``HF_HUB_OFFLINE=1``, the package's offline switch) a
missing checkpoint is named with the command that fetches it, before anything
touches the network.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffii_datasets import _checks
from diffii_datasets.quality.settings import LPIPS_NETS, QualitySettings

__all__ = ["LPIPS_BACKBONE_WEIGHTS", "QualityModels", "load_lpips", "load_quality_models", "lpips_backbone_file"]

LPIPS_BACKBONE_WEIGHTS = {
    "alex": "AlexNet_Weights.IMAGENET1K_V1",
    "vgg": "VGG16_Weights.IMAGENET1K_V1",
    "squeeze": "SqueezeNet1_1_Weights.IMAGENET1K_V1",
}
"""The torchvision checkpoint ``lpips`` loads for each backbone (``pretrained=True`` means these)."""


@dataclass
class QualityModels:
    """Loaded metric networks, in eval mode on ``device``.

    ``names`` says what they are (recorded in reports); ``random_weights`` marks
    networks with random weights (the offline test models), whose numbers mean nothing.
    """

    clip: Any
    clip_processor: Any
    lpips: Any
    device: Any
    names: dict[str, str] = field(default_factory=dict)
    random_weights: bool = False

    def describe(self) -> dict[str, Any]:
        return {**self.names, "random_weights": self.random_weights}


def _weights_enum(net: str) -> Any:
    import torchvision.models

    enum, member = LPIPS_BACKBONE_WEIGHTS[net].split(".")
    return getattr(getattr(torchvision.models, enum), member)


def lpips_backbone_file(net: str) -> Path:
    """Where torchvision keeps the backbone checkpoint of LPIPS ``net`` (``$TORCH_HOME/hub/checkpoints/...``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_weights_enum(net).url)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _missing_backbone(net: str) -> str | None:
    """Why LPIPS ``net`` cannot load offline, or None when its checkpoint is cached or downloads are allowed."""
    path = lpips_backbone_file(net)
    if path.is_file() or not _offline():
        return None
    weights = LPIPS_BACKBONE_WEIGHTS[net]
    return (f"LPIPS ({net}) needs torchvision's ImageNet backbone weights {weights} ({path.name}), which are not "
            f"in the torch hub cache {path.parent} and downloads are disabled (HF_HUB_OFFLINE=1). Fetch them once "
            f"where the network is reachable: python -c \"import torchvision; "
            f"torchvision.models.{weights}.get_state_dict()\" (or copy {path.name} there; TORCH_HOME moves the cache)")


def load_lpips(net: str = "alex", *, device: Any = None) -> Any:
    """``lpips.LPIPS(net=net)`` with its calibrated linear layers and torchvision's ImageNet backbone, in eval mode."""
    import lpips

    from diffii_datasets._pretrained import default_device

    _checks.check_choice(net, "net", LPIPS_NETS)
    problem = _missing_backbone(net)
    if problem is not None:
        raise OSError(problem)
    if not lpips_backbone_file(net).is_file():
        try:
            _weights_enum(net).get_state_dict(progress=True)  # downloads into the torch hub cache
        except (OSError, RuntimeError) as error:
            raise OSError(f"could not download LPIPS ({net}) backbone weights {LPIPS_BACKBONE_WEIGHTS[net]} from "
                          f"{_weights_enum(net).url} ({error}); download them where the network is reachable "
                          f"and copy {lpips_backbone_file(net).name} into {lpips_backbone_file(net).parent}"
                          ) from error
    with warnings.catch_warnings():  # lpips 0.1.4 asks torchvision for `pretrained=True`, which it deprecates
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=False, verbose=False)
    return model.eval().to(default_device(device))


def load_quality_models(settings: QualitySettings | None = None, *, device: Any = None) -> QualityModels:
    """The CLIP model and processor of ``settings.clip_model`` and LPIPS ``settings.lpips_net`` on ``device``.

    ``device`` defaults to CUDA when available. When weights are missing and cannot
    be downloaded, one ``OSError`` names every missing model and how to get it.
    """
    from transformers import CLIPModel, CLIPProcessor

    from diffii_datasets._pretrained import default_device, from_pretrained

    settings = settings or QualitySettings()
    device = default_device(device)
    problems = []
    lpips_problem = _missing_backbone(settings.lpips_net)
    if lpips_problem is not None:
        problems.append(lpips_problem)
    hint = "the quality measures' CLIP score, image similarities and KID features"
    try:
        clip = from_pretrained(CLIPModel, settings.clip_model, "CLIP", hint=hint)
        processor = from_pretrained(CLIPProcessor, settings.clip_model, "CLIP processor", hint=hint)
    except OSError as error:
        problems.append(str(error))
    if problems:
        raise OSError("the quality measures cannot load their models: " + "; ".join(problems))
    lpips_model = load_lpips(settings.lpips_net, device=device)
    return QualityModels(
        clip=clip.eval().to(device),
        clip_processor=processor,
        lpips=lpips_model,
        device=device,
        names={"clip": settings.clip_model,
               "lpips": f"lpips v0.1 {settings.lpips_net} ({LPIPS_BACKBONE_WEIGHTS[settings.lpips_net]})"},
    )
