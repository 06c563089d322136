"""Import the concepts released with Diff-Mix / Diff-II into a :class:`ConceptSet`.

The released files predate diffusers' PEFT integration:

- ``learned_embeds-steps-*.bin``: a torch-saved dict with ``learned_embeds_dict``
  (``{"<class_i>": fp32 tensor[dim]}``), ``name2placeholder`` (``{class name: "<class_i>"}``)
  and ``placeholder2name``;
- ``pytorch_lora_weights.safetensors``: the old attention-processor layout, keys like
  ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight``.
  Current diffusers loads *nothing* from such a file (it only logs a warning), so the
  keys are converted to the PEFT layout with diffusers' own helper first.

Released class indices need not match the caller's: classes are matched by name
(after replacing ``/`` and ``_`` with spaces, ignoring case) and renumbered in the
caller's order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from diffii_datasets.diffusion.concepts.concept_set import (
    ConceptSet,
    check_class_names,
    check_metaclass,
    load_safetensors,
)

__all__ = ["import_released_concepts", "released_name_key"]

_RELEASED_LORA_KEY = re.compile(r"^.+\.processor\.(?:to_q|to_k|to_v|to_out)_lora\.(?:down|up)\.weight$")


def import_released_concepts(
    embeds_path: str | os.PathLike,
    lora_path: str | os.PathLike,
    class_names: Sequence[str],
    metaclass: str,
) -> ConceptSet:
    """Read released token embeddings and LoRA and return them as a :class:`ConceptSet` for ``class_names``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt or
    truncated file, an unexpected layout, or class names the embedding file does not
    know (all of them are listed). The embedding width is checked against the text
    encoder when the set is applied, before anything is loaded.
    """
    names = check_class_names(class_names)
    check_metaclass(metaclass)
    embeds_path, lora_path = Path(embeds_path), Path(lora_path)
    vectors = _read_released_embeddings(embeds_path, names)
    lora = _read_released_lora(lora_path)
    try:
        return ConceptSet(names, metaclass, vectors, lora)
    except ValueError as error:
        raise ValueError(f"released LoRA {lora_path}: {error}") from error


def released_name_key(name: str) -> str:
    """How a released class name is matched: ``/`` and ``_`` read as spaces (as Diff-II's scripts do), case ignored."""
    return " ".join(name.replace("/", " ").replace("_", " ").split()).casefold()


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"released concept file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, disallowed global: all mean "not a usable file"
        raise ValueError(f"{path} could not be read as a torch-saved file (corrupt, truncated or not a "
                         f"weights-only checkpoint): {error}") from error


def _read_released_embeddings(path: Path, names: list[str]) -> torch.Tensor:
    """``[num_classes, vectors, dim]`` in the caller's class order."""
    data = _torch_load(path)
    if not isinstance(data, dict) or not {"learned_embeds_dict", "name2placeholder"} <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not a released embedding file: expected a dict with 'learned_embeds_dict' and "
                         f"'name2placeholder', got {found}")
    embeds, name2placeholder = data["learned_embeds_dict"], data["name2placeholder"]
    if not isinstance(embeds, dict) or not all(isinstance(v, torch.Tensor) for v in embeds.values()):
        raise ValueError(f"{path}: 'learned_embeds_dict' must map placeholder tokens to tensors")
    if not isinstance(name2placeholder, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in name2placeholder.items()):
        raise ValueError(f"{path}: 'name2placeholder' must map class names to placeholder tokens")

    lookup: dict[str, str] = {}
    for released_name, placeholder in name2placeholder.items():
        key = released_name_key(released_name)
        if lookup.get(key, placeholder) != placeholder:
            raise ValueError(f"{path}: class names that differ only by '/', '_', spaces or case map to different "
                             f"tokens: {released_name!r}")
        lookup[key] = placeholder
    unknown = [name for name in names if released_name_key(name) not in lookup]
    if unknown:
        known = list(name2placeholder)[:5]
        raise ValueError(f"{path} has no concept for {len(unknown)} class name(s): {unknown} "
                         f"(matched after replacing '/' and '_' with spaces, ignoring case; the file has "
                         f"{len(name2placeholder)} classes, e.g. {known})")

    vectors = []
    for name in names:
        placeholder = lookup[released_name_key(name)]
        if placeholder not in embeds:
            raise ValueError(f"{path}: class {name!r} maps to {placeholder!r}, which 'learned_embeds_dict' lacks")
        vector = embeds[placeholder]
        if not vector.is_floating_point() or vector.ndim not in (1, 2) or vector.numel() == 0:
            raise ValueError(f"{path}: embedding {placeholder!r} must be a float tensor [dim] or [vectors, dim], "
                             f"got {vector.dtype} {tuple(vector.shape)}")
        vectors.append(vector.reshape(-1, vector.shape[-1]).float())
    shapes = {tuple(v.shape) for v in vectors}
    if len(shapes) != 1:
        raise ValueError(f"{path}: embeddings have different shapes {sorted(shapes)}")
    return torch.stack(vectors)


def _read_released_lora(path: Path) -> dict[str, torch.Tensor]:
    """The old attention-processor LoRA, converted to PEFT keys by diffusers' ``convert_unet_state_dict_to_peft``."""
    from diffusers.utils import convert_unet_state_dict_to_peft

    if not path.is_file():
        raise FileNotFoundError(f"released LoRA file {path} does not exist")
    state_dict = load_safetensors(path) if path.suffix == ".safetensors" else _torch_load(path)
    if not isinstance(state_dict, dict) or not state_dict or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise ValueError(f"{path} must hold a non-empty dict of LoRA tensors")
    state_dict = {key.removeprefix("unet."): value for key, value in state_dict.items()}
    unexpected = [key for key in state_dict if not _RELEASED_LORA_KEY.match(key)]
    if unexpected:
        raise ValueError(f"{path} is not in the released attention-processor LoRA layout "
                         f"('<block>.processor.to_q_lora.down.weight', ...); unexpected keys: {unexpected[:4]}")
    return convert_unet_state_dict_to_peft(state_dict)
