"""Telling that a base dataset did not change without reading its images: its files' paths, sizes and times.

A torchvision-style dataset lists the file of each item (``samples``/``imgs`` of an
``ImageFolder``, ``_samples`` of ``StanfordCars``, ``_image_files`` of ``Flowers102``,
``FGVCAircraft`` and this package's ``CUB200``, ``_images`` of ``OxfordIIITPet``),
through ``Subset`` and ``ConcatDataset`` chains, and its labels as ``targets``. While
every file keeps its path, size and modification time (and Pillow its version), the
images decode to the same pixels, so the digests of an earlier scan still hold (the
cache keeps them: :mod:`diffii_datasets.store.scans`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffii_datasets._io import fingerprint

__all__ = ["file_signature"]

_PAIR_LISTS = ("samples", "_samples", "imgs")  # [(path, label), ...]
_PATH_LISTS = ("_image_files", "_images")  # [path, ...]
_VERSION = 1


def file_signature(dataset: Any) -> str | None:
    """A key of every item's file (path, size, mtime) and label, or ``None`` when the dataset cannot list them."""
    from torch.utils.data import ConcatDataset, Subset

    sources = _sources(dataset, ConcatDataset, Subset)
    targets = _targets(dataset, Subset)
    if sources is None or targets is None or _has_target_transform(dataset):
        return None
    files, description = sources
    if len(files) != len(targets):
        return None
    try:
        stats = [os.stat(path) for path in files]
    except OSError:
        return None
    import PIL

    return fingerprint({"version": _VERSION, "pillow": PIL.__version__, "dataset": description,
                        "items": [[str(path), stat.st_size, stat.st_mtime_ns, int(label)]
                                  for path, stat, label in zip(files, stats, targets)]})


def _sources(dataset: Any, concat: type, subset: type) -> tuple[list[Path], Any] | None:
    """``(one file per item, a description of how items are read)``, or ``None``."""
    if isinstance(dataset, subset):
        inner = _sources(dataset.dataset, concat, subset)
        if inner is None:
            return None
        return [inner[0][i] for i in dataset.indices], ["subset", inner[1]]
    if isinstance(dataset, concat):
        parts = [_sources(part, concat, subset) for part in dataset.datasets]
        if any(part is None for part in parts):
            return None
        return [path for part in parts for path in part[0]], ["concat", [part[1] for part in parts]]
    loader = getattr(dataset, "loader", None)
    description = [f"{type(dataset).__module__}.{type(dataset).__qualname__}",
                   getattr(loader, "__qualname__", None) if loader is not None else None]
    for name in _PAIR_LISTS + _PATH_LISTS:
        listed = getattr(dataset, name, None)
        if isinstance(listed, list) and len(listed) == len(dataset):
            files = _resolved([item[0] for item in listed] if name in _PAIR_LISTS else listed, dataset)
            return None if files is None else (files, description)
    return None


def _resolved(paths: Sequence[Any], dataset: Any) -> list[Path] | None:
    """Absolute paths; relative ones under the dataset's image folder (``CUB200``) or ``root``."""
    paths = [Path(path) for path in paths]
    if not paths or all(path.is_absolute() for path in paths):
        return paths
    bases = [Path(base) / "images" for base in (getattr(dataset, "_base", None),) if base is not None]
    bases += [Path(root) for root in (getattr(dataset, "root", None),) if isinstance(root, (str, os.PathLike))]
    for base in bases:
        if (base / paths[0]).is_file():
            return [base / path for path in paths]
    return None


def _targets(dataset: Any, subset: type) -> list[int] | None:
    """The labels, when the dataset has them without reading its items (``targets``, through ``Subset``)."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(target) for target in targets]
    if isinstance(dataset, subset):
        inner = _targets(dataset.dataset, subset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    return None


def _has_target_transform(dataset: Any) -> bool:
    """A label transform makes ``targets`` differ from the labels the items carry."""
    while dataset is not None:
        if getattr(dataset, "target_transform", None) is not None:
            return True
        parts = getattr(dataset, "datasets", None)
        if isinstance(parts, (list, tuple)) and any(_has_target_transform(part) for part in parts):
            return True
        dataset = getattr(dataset, "dataset", None)
    return False
