"""What every dataset file here shares: the layout check that names a missing file, root and key handling.

torchvision reads these datasets already; what the paper's settings need on top is
the common label interface (``targets`` everywhere), a stable per-item key for
order-independent sampling (``sample_keys``: the image path relative to the
dataset's folder) and, before torchvision opens anything, a layout check that
names the missing file instead of torchvision's generic "Dataset not found".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DOWNLOAD_HINT", "check_layout", "expand_root", "relative_keys"]

DOWNLOAD_HINT = "You can use download=True to download it"


def check_layout(base: Path, required: Sequence[str], name: str, not_found_hint: str = DOWNLOAD_HINT) -> None:
    """Raise the torchvision-style error when ``base`` is absent, and name missing files when it is partial."""
    if not base.is_dir():
        raise RuntimeError(f"Dataset not found at {base}. {not_found_hint}")
    missing = [path for path in required if not (base / path).exists()]
    if missing:
        raise FileNotFoundError(f"{base} is not a complete {name} layout: missing {', '.join(missing)}")


def expand_root(root: str | Path) -> Path:
    """The root as torchvision's ``VisionDataset`` resolves it (``~`` expanded in strings only)."""
    return Path(os.path.expanduser(root)) if isinstance(root, str) else Path(root)


def relative_keys(paths: Sequence[str | Path], base: Path) -> list[str]:
    return [Path(path).relative_to(base).as_posix() for path in paths]
