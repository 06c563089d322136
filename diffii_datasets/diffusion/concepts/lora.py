"""The shared UNet LoRA of a concept set: its state-dict layout, and whether it fits a UNet.

Concept sets hold the LoRA in PEFT's key layout without adapter name
(``<module>.lora_A.weight`` / ``<module>.lora_B.weight``). These checks run when
a set is built (from training, files or the released format), before learning
(the target modules exist) and before applying (every module exists with
matching shapes), so nothing is ever dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from diffii_datasets import _checks
from diffii_datasets.diffusion.concepts.config import LORA_TARGET_MODULES

__all__ = ["LORA_SUFFIXES", "check_lora_fits_unet", "check_lora_state_dict", "check_lora_targets", "linear_modules"]

LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")
"""The two weights of each LoRA module, in PEFT's layout (down ``[rank, in]``, up ``[out, rank]``)."""


def check_lora_state_dict(state_dict: Any, name: str) -> dict[str, torch.Tensor]:
    """PEFT-layout LoRA keys in A/B pairs with one rank; returned as fp32 CPU copies in key order.

    An empty mapping is no LoRA (concepts learned with ``lora_rank=0``, tokens only).
    """
    if not isinstance(state_dict, Mapping):
        _checks.fail(TypeError, name, "a mapping of LoRA tensors (empty: no LoRA)", state_dict)
    bad = [k for k in state_dict if not isinstance(k, str) or not k.endswith(LORA_SUFFIXES)]
    if bad:
        raise ValueError(f"{name} has keys that are not PEFT LoRA weights ('<module>.lora_A.weight' / "
                         f"'<module>.lora_B.weight'): {bad[:4]}")
    modules = {k.rsplit(".lora_", 1)[0] for k in state_dict}
    unpaired = [m for m in sorted(modules) if any(f"{m}{s}" not in state_dict for s in LORA_SUFFIXES)]
    if unpaired:
        raise ValueError(f"{name} has LoRA modules without both lora_A and lora_B: {unpaired[:4]}")
    ranks = set()
    for module in modules:
        down, up = state_dict[f"{module}.lora_A.weight"], state_dict[f"{module}.lora_B.weight"]
        if down.ndim != 2 or up.ndim != 2 or down.shape[0] != up.shape[1]:
            raise ValueError(f"{name}: {module} has lora_A {tuple(down.shape)} and lora_B {tuple(up.shape)}, "
                             "expected [rank, in] and [out, rank]")
        ranks.add(down.shape[0])
    if len(ranks) > 1:
        raise ValueError(f"{name} mixes LoRA ranks {sorted(ranks)}")
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in sorted(state_dict.items())}


def linear_modules(unet: nn.Module) -> dict[str, nn.Linear]:
    """Named ``nn.Linear`` modules, looking through LoRA wrappers to their base layer."""
    found = {}
    for name, module in unet.named_modules():
        base = module.get_base_layer() if hasattr(module, "get_base_layer") else module
        if isinstance(base, nn.Linear) and ".lora_" not in name and ".base_layer" not in name:
            found[name] = base
    return found


def check_lora_targets(unet: nn.Module, targets: Sequence[str]) -> None:
    """Every target module name (a full name or its last parts) must match a linear layer of ``unet``."""
    names = list(linear_modules(unet))
    unmatched = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if unmatched:
        raise ValueError(f"LoRA target modules {unmatched} match no linear layer of the UNet "
                         f"(expected names like {list(LORA_TARGET_MODULES)})")


def check_lora_fits_unet(state_dict: Mapping[str, torch.Tensor], unet: nn.Module) -> None:
    """Every LoRA module must exist in the UNet with matching shapes: nothing may be dropped silently."""
    linears = linear_modules(unet)
    missing, mismatched = [], []
    for key in state_dict:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")]
        layer = linears.get(module)
        if layer is None:
            missing.append(module)
            continue
        down, up = state_dict[key], state_dict[f"{module}.lora_B.weight"]
        if down.shape[1] != layer.in_features or up.shape[0] != layer.out_features:
            mismatched.append(f"{module} (LoRA {down.shape[1]}->{up.shape[0]}, layer "
                              f"{layer.in_features}->{layer.out_features})")
    if missing:
        raise ValueError(f"LoRA targets {len(missing)} modules the UNet does not have, e.g. {missing[:3]}: "
                         "these concepts were learned for another UNet")
    if mismatched:
        raise ValueError(f"LoRA shapes do not match the UNet: {mismatched[:3]}")
