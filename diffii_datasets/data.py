"""Reading any map-style base dataset: its class names, its ``(image, label)`` items, its targets, its keys.

One place for what every consumer of a dataset (the wrapper, the samplers, the Hub
export, the classifier) needs to know about it, whatever it is: a torchvision
dataset, an ``ImageFolder``, a ``Subset`` chain, or a Hugging Face ``Dataset``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint

__all__ = ["DatasetScan", "class_names", "dataset_sample_keys", "dataset_targets", "find_classes", "parse_item",
           "scan_dataset"]

logger = logging.getLogger(__name__)


def find_classes(dataset: Any) -> list[str] | None:
    """Class names from ``dataset.classes``, a Hugging Face ``ClassLabel`` feature, or a wrapped dataset.

    Looks through wrappers that keep the wrapped dataset as ``.dataset``
    (``torch.utils.data.Subset`` and friends); ``None`` when nothing names the classes.
    """
    while dataset is not None:
        classes = getattr(dataset, "classes", None)
        if classes is not None:
            return [str(name) for name in classes]
        features = getattr(dataset, "features", None)
        label = features.get("label") if isinstance(features, Mapping) else None
        if label is not None and hasattr(label, "names"):
            return list(label.names)
        dataset = getattr(dataset, "dataset", None)
    return None


def class_names(dataset: Any) -> list[str]:
    """:func:`find_classes`, or a ``TypeError`` saying what the dataset lacks."""
    names = find_classes(dataset)
    if names is None:
        raise TypeError(f"dataset must name its classes (a `classes` list, as torchvision datasets have, or a "
                        f"ClassLabel 'label' feature); {type(dataset).__name__} has neither")
    return names


def parse_item(item: Any, index: int, *, name: str = "base_dataset") -> tuple[Any, int]:
    """``(image, int label)`` from a ``(image, label)`` pair or an ``{"image", "label"}`` mapping."""
    if isinstance(item, Mapping) and "image" in item and "label" in item:
        image, label = item["image"], item["label"]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        image, label = item
    else:
        _checks.fail(TypeError, f"{name}[{index}]", "an (image, label) pair or a mapping with 'image' and 'label' "
                                                    "keys", item)
    if hasattr(label, "ndim") and getattr(label, "ndim") == 0 and hasattr(label, "item"):
        label = label.item()  # a 0-d tensor or numpy scalar
    label = _checks.check_int(label, f"the label of {name}[{index}]", expected="an int or a 0-d integer tensor")
    return image, label


def dataset_targets(dataset: Any) -> list[int]:
    """One int class index per item.

    Read from ``targets`` when the dataset has it, composed through ``Subset``
    indices otherwise, and as a last resort by reading every item's label
    (``dataset[i][1]``), which decodes every image: slow, hence logged.
    """
    from torch.utils.data import Subset

    if hasattr(dataset, "targets"):
        return [int(target) for target in dataset.targets]
    if isinstance(dataset, Subset):
        base = dataset_targets(dataset.dataset)
        return [base[i] for i in dataset.indices]
    logger.info("%s has no `targets`; reading the label of each of its %d items", type(dataset).__name__, len(dataset))
    return [parse_item(dataset[i], i, name="dataset")[1] for i in range(len(dataset))]


def dataset_sample_keys(dataset: Any) -> list[str] | None:
    """One stable, order-independent key per item, or ``None`` when the dataset offers none.

    ``sample_keys`` (this package's datasets) first; for an ``ImageFolder``-style
    dataset the image path relative to its ``root``; composed through ``Subset``.
    """
    from torch.utils.data import Subset

    keys = getattr(dataset, "sample_keys", None)
    if keys is not None:
        return list(keys)
    samples = getattr(dataset, "samples", None)
    root = getattr(dataset, "root", None)
    if samples is not None and root is not None and len(samples) == len(dataset):
        return [os.path.relpath(path, root).replace(os.sep, "/") for path, _ in samples]
    if isinstance(dataset, Subset):
        base = dataset_sample_keys(dataset.dataset)
        return None if base is None else [base[i] for i in dataset.indices]
    return None


@dataclass
class DatasetScan:
    """A base dataset read once: each item's label, the images grouped by class, and a content fingerprint."""

    targets: list[int]
    images_by_class: list[list[Any]]
    fingerprint: str


def scan_dataset(dataset: Any, classes: list[str], *, name: str = "base_dataset") -> DatasetScan:
    """Read every item of ``dataset`` (RGB PIL images) and fingerprint its pixels and labels."""
    from diffii_datasets.hashing import image_digest
    from diffii_datasets.images import to_pil_rgb

    if len(dataset) == 0:
        raise ValueError(f"{name} is empty: Diff-II needs at least one image")
    images_by_class: list[list[Any]] = [[] for _ in classes]
    targets, digests = [], []
    for index in range(len(dataset)):
        image, label = parse_item(dataset[index], index, name=name)
        if not 0 <= label < len(classes):
            raise ValueError(f"{name}[{index}] has label {label}, outside the {len(classes)} classes "
                             f"(expected 0..{len(classes) - 1})")
        image = to_pil_rgb(image, name=f"{name}[{index}] image")
        images_by_class[label].append(image)
        targets.append(label)
        digests.append([image_digest(image), label])
    return DatasetScan(targets, images_by_class, fingerprint({"classes": classes, "items": digests}))
