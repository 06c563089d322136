"""Tiny data, a saved tiny model and fast flags for running the command line in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT
from tests.helpers.fakedata import write_cub

# Fake CUB-200 with uneven classes: 5-shot keeps 2, 2 and 1 images (expected 4, 4 and 2 synthetic).
CLASSES = {
    "001.Black_footed_Albatross": (2, 1),
    "002.Laysan_Albatross": (2, 1),
    "003.Sooty_Albatross": (1, 1),
}
CLASS_NAMES = ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
EXPECTED_COUNTS = [4, 4, 2]

SAMPLE_DIR = ROOT / "diffii_datasets" / "data" / "sample"
"""The bundled sample: 3 classes x 4 images in the ImageFolder layout (your own images, as --image-folder takes)."""
OWN_FLAGS = ["--image-folder", str(SAMPLE_DIR), "--metaclass", "shape", "--model", "tiny", "--device", "cpu",
             "--concept-train-steps", "2", "--inversion-steps", "3", "--denoising-steps", "2", "--expansion-rate", "1"]
"""generate's flags for the sample as your own images, with the offline tiny model and a few steps."""

FAST_FLAGS = [
    "--resolution", "32", "--expansion-rate", "2", "--inversion-steps", "4", "--denoising-steps", "3",
    "--batch-size", "4", "--concept-train-steps", "3", "--concept-batch-size", "2",
    "--concept-checkpoint-steps", "2", "--concept-resolution", "32", "--suffixes", "builtin", "--seed", "0",
]


def make_inputs(directory: Path) -> tuple[Path, Path]:
    """Write the fake CUB root and the tiny pipeline's directory under ``directory``."""
    from diffii_datasets.testing import tiny_pipeline

    root, model = directory / "data", directory / "model"
    write_cub(root, CLASSES)
    tiny_pipeline(seed=0).save_pretrained(model)
    return root, model


def generate_args(root: Path, model: Path, cache: Path, *extra: str) -> list[str]:
    return ["generate", "cub-5shot", "--root", str(root), "--cache-dir", str(cache), "--model", str(model),
            "--device", "cpu", "--quiet", *FAST_FLAGS, *extra]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: offline, one thread per process (two cores are shared)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT)}
    # Launcher variables, and the library log levels an in-process cli.main() of an earlier test has set.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DIFFUSERS_VERBOSITY",
                 "TRANSFORMERS_VERBOSITY", "HF_HUB_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS",
                 "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffii_datasets", *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(**env))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(nproc: int, *command: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=nproc <command>`` on loopback (gloo), as a user would launch it."""
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
                "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    return subprocess.run([*launcher, *command], capture_output=True, text=True, timeout=timeout,
                          env=child_env(**env))


def store_files(store_path: Path) -> dict[str, bytes]:
    """Every file of a store that defines its content (locks and scratch excluded)."""
    root = Path(store_path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in ("locks", "work")}


def store_path_from(stdout: str) -> Path:
    """The store directory that ``generate`` printed last."""
    lines = [line for line in stdout.splitlines() if line.startswith("store: ")]
    assert lines, stdout
    return Path(lines[-1].removeprefix("store: ").split(" (")[0])
