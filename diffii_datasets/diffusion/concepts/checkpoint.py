"""Resumable concept-learning checkpoints in a ``work_dir``: the tensors, then the JSON that points at them.

``concepts-checkpoint.json`` names the run it belongs to (a fingerprint of every
input that changes the trajectory), the recipe it learns with, the step, the
tensor file and its SHA-256, so a resume never picks up another run's or a
damaged checkpoint, and refusing one of another recipe names the knobs that
differ. Only the newest tensor file is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from diffii_datasets._io import FileFormatError, atomic_write, read_json, sha256_bytes, write_json
from diffii_datasets.diffusion.concepts.config import TRAJECTORY_FREE_KNOBS, recipe_differences

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FILE = "concepts-checkpoint.json"
_FORMAT = "diffii-concepts-checkpoint"
_VERSION = 1


@dataclass
class Checkpoint:
    """A checkpoint as read back: its tensor file, the step it reached, the tensors and the grad-scaler state."""

    path: Path
    step: int
    tensors: dict[str, torch.Tensor]
    scaler: dict[str, Any] | None


def write_checkpoint(work_dir: Path, run_id: str, recipe: dict[str, Any], step: int,
                     tensors: dict[str, torch.Tensor], scaler: dict[str, Any] | None) -> None:
    """Tensors first, then the JSON that points at them (each written atomically); older tensor files go."""
    work_dir.mkdir(parents=True, exist_ok=True)
    name = f"concepts-checkpoint-{step:08d}.safetensors"
    payload = safetensors.torch.save(tensors)
    atomic_write(work_dir / name, payload)
    state = {
        "format": _FORMAT,
        "version": _VERSION,
        "run": run_id,
        "recipe": recipe,
        "step": step,
        "tensors": name,
        "sha256": sha256_bytes(payload),
        "grad_scaler": scaler,
    }
    write_json(work_dir / CHECKPOINT_FILE, state)
    for old in work_dir.glob("concepts-checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_checkpoint(work_dir: Path, run_id: str, recipe: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint of run ``run_id`` in ``work_dir``, ``None`` without one; ``ValueError`` saying what to delete.

    A checkpoint of another run is refused; when its recipe differs from ``recipe``
    the error names the knobs (a checkpoint from before recipes were recorded says so).
    """
    path = work_dir / CHECKPOINT_FILE
    invalid = "is not a valid concept-learning checkpoint ({}); delete it to start over"
    try:
        state = read_json(path, missing_ok=True)
    except FileFormatError as error:
        raise FileFormatError(path, invalid.format(error.problem)) from error
    if state is None:
        return None
    try:
        if state.get("format") != _FORMAT or state.get("version") != _VERSION:
            raise ValueError(f"format {state.get('format')!r} version {state.get('version')!r}")
        step, tensor_name, digest = int(state["step"]), str(state["tensors"]), state["sha256"]
    except (ValueError, KeyError, TypeError) as error:
        raise FileFormatError(path, invalid.format(error)) from error
    if state.get("run") != run_id:
        raise ValueError(f"{path} belongs to a different concept-learning run ({_how_it_differs(state, recipe)}); "
                         "use another work_dir or delete the checkpoint")
    tensor_path = work_dir / tensor_name
    payload = tensor_path.read_bytes() if tensor_path.is_file() else b""
    if sha256_bytes(payload) != digest:
        raise ValueError(f"checkpoint tensors {tensor_path} are missing or corrupt; delete {path} to start over")
    return Checkpoint(tensor_path, step, dict(safetensors.torch.load(payload)), state.get("grad_scaler"))


def _how_it_differs(state: dict[str, Any], recipe: dict[str, Any]) -> str:
    if not isinstance(state.get("recipe"), dict):
        return "written before checkpoints recorded their recipe"
    changed = [line for line in recipe_differences(state["recipe"], recipe)
               if line.split(":", 1)[0] not in TRAJECTORY_FREE_KNOBS]
    return "another recipe: " + ", ".join(changed) if changed else "other images, classes or base model"
