"""Resumable concept-learning checkpoints in a ``work_dir``: the tensors, then the JSON that describes them.

``concepts-checkpoint.json`` describes the newest checkpoint: the run it belongs to
(a fingerprint of every input that changes the trajectory), the recipe it learns
with, the step, the tensor file, the file's SHA-256 and a checksum of the JSON
itself, so a resume never picks up another run's checkpoint or a damaged one, and
refusing one of another recipe names the knobs that differ.
``concepts-checkpoint-previous.json`` describes the one before, whose tensor file is
kept until the newest is durable. A resume that finds the newest damaged (a flipped
byte, a truncated or missing file) falls back to the previous one, or to step 0, and
says why; the damaged files are then removed (:func:`tidy_checkpoints`), as are the
leftovers of an interrupted write (a temporary file of a killed process, a tensor
file nothing describes). :func:`checkpoint_problems` finds all of these without
changing anything, for a store's verify. Deleting ``concepts-checkpoint.json`` starts
the run over. Importing this module loads no torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets._io import (
    FileFormatError,
    atomic_write,
    fingerprint,
    json_bytes,
    process_gone,
    read_json,
    sha256_bytes,
    temp_owner,
)
from diffii_datasets.diffusion.concepts.config import TRAJECTORY_FREE_KNOBS, recipe_differences
from diffii_datasets.diffusion.concepts.writing import writing

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT_FILE",
    "CLASS_RUN_DIR",
    "PREVIOUS_FILE",
    "Checkpoint",
    "checkpoint_problems",
    "read_checkpoint",
    "steps_done",
    "tidy_checkpoints",
    "write_checkpoint",
]

CHECKPOINT_FILE = "concepts-checkpoint.json"
PREVIOUS_FILE = "concepts-checkpoint-previous.json"
CLASS_RUN_DIR = "class-{:05d}"
"""With ``separate_classes``, class ``i``'s run keeps its checkpoints in ``<work_dir>/class-{i:05d}``."""
_TENSOR_NAME = re.compile(r"concepts-checkpoint-\d{8}\.safetensors")
_TENSOR_GLOB = "concepts-checkpoint-*.safetensors"
_TEMP_GLOB = ".concepts-checkpoint*.tmp-*"
_CLASS_RUN_GLOB = "class-*"
_FORMAT = "diffii-concepts-checkpoint"
_VERSION = 2  # 1 (0.2): no checksum, no previous checkpoint; still read, to name how its recipe differs


@dataclass
class Checkpoint:
    """A checkpoint as read back: its tensor file, the step, the tensors, the grad-scaler state and its JSON."""

    path: Path
    step: int
    tensors: dict[str, torch.Tensor]
    scaler: dict[str, Any] | None
    state: dict[str, Any]


class _Damaged(Exception):
    """A checkpoint a resume cannot use; the message says why."""


def write_checkpoint(work_dir: Path, run_id: str, recipe: dict[str, Any], step: int,
                     tensors: dict[str, torch.Tensor], scaler: dict[str, Any] | None,
                     previous: dict[str, Any] | None) -> dict[str, Any]:
    """Write the checkpoint of ``step``; returns its JSON, to pass as ``previous`` to the next write.

    The tensors first, then ``previous`` (the JSON of the last good checkpoint, or
    ``None``) as the previous checkpoint, then the new JSON, each atomically; only then
    do tensor files neither describes go. A full disk raises
    :class:`~diffii_datasets.diffusion.concepts.writing.ConceptWriteError` naming the
    file, and leaves the last good checkpoint as it was.
    """
    import safetensors.torch

    work_dir.mkdir(parents=True, exist_ok=True)
    name = f"concepts-checkpoint-{step:08d}.safetensors"
    payload = safetensors.torch.save(tensors)
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
    state["checksum"] = _checksum(state)
    needed = len(payload) + 2 * len(json_bytes(state))
    with writing(work_dir / name, needed):
        atomic_write(work_dir / name, payload)
    if previous is not None and previous.get("tensors") != name:
        _write_state(work_dir / PREVIOUS_FILE, previous)
    else:
        (work_dir / PREVIOUS_FILE).unlink(missing_ok=True)
    _write_state(work_dir / CHECKPOINT_FILE, state)
    for path in _unnamed_tensor_files(work_dir, [state, previous]):
        path.unlink(missing_ok=True)
    return state


def read_checkpoint(work_dir: Path, run_id: str, recipe: dict[str, Any]) -> tuple[Checkpoint | None, list[str]]:
    """The checkpoint of run ``run_id`` to resume from, and why newer ones were passed over (``[]`` when none were).

    No ``concepts-checkpoint.json``: ``(None, [])``, learning starts over. A damaged
    newest checkpoint gives the previous one (or ``None`` when that is damaged too or
    absent), with a line per damaged one. A checkpoint of another run is refused
    (``ValueError``); when its recipe differs from ``recipe`` the error names the knobs.
    """
    newest = work_dir / CHECKPOINT_FILE
    if not newest.exists():
        return None, []
    passed_over = []
    for path in (newest, work_dir / PREVIOUS_FILE):
        if path != newest and not path.exists():
            break
        try:
            state = _read_state(path)
            if state["run"] != run_id:
                raise ValueError(f"{path} belongs to a different concept-learning run "
                                 f"({_how_it_differs(state, recipe)}); use another work_dir or delete {newest}")
            return _read_tensors(work_dir, state), passed_over
        except _Damaged as damage:
            passed_over.append(f"{path} (step {_step_of(path)}): {damage}")
    return None, passed_over


def tidy_checkpoints(work_dir: Path, kept: Checkpoint | None) -> list[str]:
    """After every rank has read the checkpoints: make ``kept`` the newest, remove the rest and leftovers.

    ``kept`` is what :func:`read_checkpoint` returned (``None``: learning starts over, so
    every checkpoint file goes). Removes damaged or superseded checkpoint files, tensor
    files nothing describes, and temporary files of writers that are gone; returns a
    line for each thing it changed.
    """
    done = []
    newest, previous = work_dir / CHECKPOINT_FILE, work_dir / PREVIOUS_FILE
    keep: list[dict[str, Any] | None] = []
    if kept is None:
        for path in (newest, previous):
            if path.exists():
                path.unlink()
                done.append(f"removed {path}")
    else:
        keep.append(kept.state)
        if _state_or_none(newest) != kept.state:  # the newest was damaged: the one resumed from takes its place
            _write_state(newest, kept.state)
            done.append(f"{newest} now describes step {kept.step}")
            previous.unlink(missing_ok=True)
        elif previous.exists():
            state, problem = _verified(work_dir, previous)
            if problem is None:
                keep.append(state)
            else:
                previous.unlink()
                done.append(f"removed {previous} ({problem})")
    for path in _unnamed_tensor_files(work_dir, keep):
        path.unlink(missing_ok=True)
        done.append(f"removed {path}, which no checkpoint describes")
    for path in _dead_temp_files(work_dir):
        path.unlink(missing_ok=True)
        done.append(f"removed {path}, left by a killed write")
    return done


def checkpoint_problems(work_dir: str | Path) -> list[str]:
    """What a resume from ``work_dir`` would reject or clean up, a line each; ``[]`` when all is well.

    Covers the newest and the previous checkpoint (unreadable, edited or damaged JSON, a
    missing or corrupt tensor file), tensor files no checkpoint describes, and
    temporary files of killed writes, in ``work_dir`` and in the per-class run folders
    of ``separate_classes``. Changes nothing; the run that next learns there discards
    or removes each of them (a damaged newest checkpoint costs the steps since the
    previous one). Another run's checkpoint is not a problem here: learning refuses it.
    """
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return []
    problems = []
    for folder in [work_dir, *sorted(p for p in work_dir.glob(_CLASS_RUN_GLOB) if p.is_dir())]:
        problems += _folder_problems(folder)
    return problems


def steps_done(work_dir: str | Path) -> int:
    """Optimizer steps the newest checkpoints in ``work_dir`` reached, summed over the per-class runs of
    ``separate_classes``; 0 without any. Reads the JSON only (a plan's estimate, not a check: a damaged checkpoint
    counts as what it claims)."""
    work_dir = Path(work_dir)
    total = 0
    for folder in [work_dir, *sorted(work_dir.glob(_CLASS_RUN_GLOB))]:
        try:
            state = read_json(folder / CHECKPOINT_FILE, missing_ok=True)
        except (FileFormatError, OSError):
            continue
        step = state.get("step") if isinstance(state, dict) else None
        total += step if isinstance(step, int) and step > 0 else 0
    return total


def _folder_problems(work_dir: Path) -> list[str]:
    newest, previous = work_dir / CHECKPOINT_FILE, work_dir / PREVIOUS_FILE
    problems, described = [], []
    previous_state, previous_problem = _verified(work_dir, previous) if previous.exists() else (None, None)
    if newest.exists():
        state, problem = _verified(work_dir, newest)
        described += [state, previous_state]
        if problem is not None:
            fallback = (f"the previous one (step {previous_state['step']})"
                        if previous_state is not None and previous_problem is None else "step 0")
            problems.append(f"{newest}: {problem}; the next run discards it and resumes from {fallback}")
        if previous_problem is not None:
            problems.append(f"{previous}: {previous_problem}; the next run removes it")
    elif previous.exists():
        problems.append(f"{previous}: left without {CHECKPOINT_FILE} (deleted to start over?); "
                        "the next run removes it")
    for path in _unnamed_tensor_files(work_dir, described):
        problems.append(f"{path}: a tensor file no checkpoint describes (left by an interrupted write); "
                        "the next run removes it")
    for path in _dead_temp_files(work_dir):
        problems.append(f"{path}: a temporary file left by a killed write; the next run removes it")
    return problems


def _checksum(state: dict[str, Any]) -> str:
    return fingerprint({key: value for key, value in state.items() if key != "checksum"})


def _write_state(path: Path, state: dict[str, Any]) -> None:
    data = json_bytes(state)
    with writing(path, len(data)):
        atomic_write(path, data)


def _read_state(path: Path) -> dict[str, Any]:
    """The checkpoint JSON in ``path``, checked; :class:`_Damaged` saying what is wrong with it."""
    try:
        state = read_json(path, canonical=True)
    except FileFormatError as error:
        raise _Damaged(error.problem) from error
    except OSError as error:
        raise _Damaged(f"unreadable ({error})") from error
    version = state.get("version")
    if state.get("format") != _FORMAT or version not in (1, _VERSION):
        raise _Damaged(f"not a concept-learning checkpoint (format {state.get('format')!r} version {version!r})")
    if version == _VERSION and state.get("checksum") != _checksum(state):
        raise _Damaged("its checksum does not match its content (edited or damaged)")
    step, name, digest = state.get("step"), state.get("tensors"), state.get("sha256")
    if not (isinstance(step, int) and step > 0 and isinstance(name, str) and _TENSOR_NAME.fullmatch(name)
            and isinstance(digest, str) and isinstance(state.get("run"), str)):
        raise _Damaged("a field is missing or has the wrong type")
    return state


def _read_tensors(work_dir: Path, state: dict[str, Any]) -> Checkpoint:
    import safetensors
    import safetensors.torch

    path = work_dir / state["tensors"]
    payload = _tensor_bytes(path, state)
    try:
        tensors = dict(safetensors.torch.load(payload))
    except (safetensors.SafetensorError, ValueError) as error:
        raise _Damaged(f"its tensor file {path.name} cannot be read ({error})") from error
    return Checkpoint(path, state["step"], tensors, state.get("grad_scaler"), state)


def _tensor_bytes(path: Path, state: dict[str, Any]) -> bytes:
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise _Damaged(f"its tensor file {path.name} is missing") from None
    except OSError as error:
        raise _Damaged(f"its tensor file {path.name} cannot be read ({error})") from error
    if sha256_bytes(payload) != state["sha256"]:
        raise _Damaged(f"its tensor file {path.name} is corrupt or truncated (SHA-256 differs)")
    return payload


def _verified(work_dir: Path, path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(state, problem)`` of a checkpoint JSON: ``problem`` is ``None`` when it and its tensor file are usable;
    ``state`` is ``None`` when the JSON itself is unusable."""
    try:
        state = _read_state(path)
    except _Damaged as damage:
        return None, str(damage)
    try:
        _tensor_bytes(work_dir / state["tensors"], state)
    except _Damaged as damage:
        return state, str(damage)
    return state, None


def _state_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return _read_state(path)
    except _Damaged:
        return None


def _step_of(path: Path) -> str:
    """The step a checkpoint JSON claims, for messages about a damaged one ("?" when unreadable)."""
    try:
        step = read_json(path).get("step")
    except (FileFormatError, OSError):
        return "?"
    return str(step) if isinstance(step, int) else "?"


def _unnamed_tensor_files(work_dir: Path, states: list[dict[str, Any] | None]) -> Iterator[Path]:
    named = {state["tensors"] for state in states if state is not None}
    return (path for path in sorted(work_dir.glob(_TENSOR_GLOB)) if path.name not in named)


def _dead_temp_files(work_dir: Path) -> Iterator[Path]:
    """Temporary files of checkpoint writes whose process is gone (a live writer's are left alone)."""
    for path in sorted(work_dir.glob(_TEMP_GLOB)):
        owner = temp_owner(path.name)
        if owner is None or process_gone(owner):
            yield path


def _how_it_differs(state: dict[str, Any], recipe: dict[str, Any]) -> str:
    if not isinstance(state.get("recipe"), dict):
        return "written before checkpoints recorded their recipe"
    changed = [line for line in recipe_differences(state["recipe"], recipe)
               if line.split(":", 1)[0] not in TRAJECTORY_FREE_KNOBS]
    return "another recipe: " + ", ".join(changed) if changed else "other images, classes or base model"
