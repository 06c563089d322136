"""Reading any map-style base dataset: its class names, its ``(image, label)`` items, its targets, its keys.

One place for what every consumer of a dataset (the wrapper, the samplers, the Hub
export, the classifier) needs to know about it, whatever it is: a torchvision
dataset, an ``ImageFolder``, a ``Subset`` chain, or a Hugging Face ``Dataset``.

Base images are never all held at once: :func:`scan_dataset` fingerprints them one
at a time and hands out :class:`ImagesByClass`, which reads a class's items again
when asked (checking each is the image that was fingerprinted), so generation holds
one class at a time.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint

__all__ = ["ChainedImages", "ClassImages", "Columns", "DatasetScan", "ImagesByClass", "check_columns",
           "check_deterministic_source", "check_same_item", "class_names", "dataset_sample_keys", "dataset_targets",
           "find_classes", "parse_item", "read_base_item", "read_item", "scan_dataset"]

logger = logging.getLogger(__name__)


class Columns(NamedTuple):
    """The keys of a mapping item that hold the image and the label (Hugging Face rows).

    ``image`` and ``label`` by default; ``Columns("img", "fine_label")`` for CIFAR-100's rows.
    """

    image: str = "image"
    label: str = "label"


DEFAULT_COLUMNS = Columns()


def _features(dataset: Any) -> Mapping[str, Any] | None:
    """The Hugging Face ``features`` of ``dataset`` or of a dataset it wraps (``.dataset``), if any."""
    while dataset is not None:
        features = getattr(dataset, "features", None)
        if isinstance(features, Mapping):
            return features
        dataset = getattr(dataset, "dataset", None)
    return None


def _describe_columns(features: Mapping[str, Any]) -> str:
    def kind(feature: Any) -> str:
        names = getattr(feature, "names", None)
        if names is not None:
            return f"{type(feature).__name__} of {len(names)} classes"
        dtype = getattr(feature, "dtype", None)
        return f"{type(feature).__name__}({dtype!r})" if type(feature).__name__ == "Value" else type(feature).__name__

    return ", ".join(f"{column!r} ({kind(feature)})" for column, feature in features.items())


def find_classes(dataset: Any, label_column: str = DEFAULT_COLUMNS.label) -> list[str] | None:
    """Class names from ``dataset.classes``, the Hugging Face ``ClassLabel`` of ``label_column``, or a wrapped dataset.

    Looks through wrappers that keep the wrapped dataset as ``.dataset``
    (``torch.utils.data.Subset`` and friends); ``None`` when nothing names the classes.
    """
    while dataset is not None:
        classes = getattr(dataset, "classes", None)
        if classes is not None:
            return [str(name) for name in classes]
        features = getattr(dataset, "features", None)
        label = features.get(label_column) if isinstance(features, Mapping) else None
        if label is not None and hasattr(label, "names"):
            return list(label.names)
        dataset = getattr(dataset, "dataset", None)
    return None


def class_names(dataset: Any, label_column: str = DEFAULT_COLUMNS.label) -> list[str]:
    """:func:`find_classes`, or a ``TypeError`` saying what the dataset lacks."""
    names = find_classes(dataset, label_column)
    if names is None:
        features = _features(dataset)
        has = f"its columns are {_describe_columns(features)}" if features is not None else "it has neither"
        raise TypeError(f"dataset must name its classes (a `classes` list, as torchvision datasets have, or a "
                        f"ClassLabel column {label_column!r}); {has}")
    return names


def check_columns(dataset: Any, columns: Columns = DEFAULT_COLUMNS, name: str = "base_dataset") -> None:
    """A dataset with Hugging Face ``features`` has the image and label columns; the error lists the ones it has."""
    features = _features(dataset)
    if features is None:
        return
    missing = [f"{role}_column={column!r}" for role, column in zip(columns._fields, columns) if column not in features]
    if missing:
        raise ValueError(f"{name} has no column for {' and '.join(missing)}: its columns are "
                         f"{_describe_columns(features)}; name the image and label columns with image_column= "
                         "and label_column=")


def parse_item(item: Any, index: int, *, name: str = "base_dataset",
               columns: Columns = DEFAULT_COLUMNS) -> tuple[Any, int]:
    """``(image, int label)`` from a ``(image, label)`` pair or a mapping with the ``columns`` keys."""
    if isinstance(item, Mapping):
        missing = [f"{role}_column={column!r}" for role, column in zip(columns._fields, columns) if column not in item]
        if missing:
            raise ValueError(f"{name}[{index}] has no key for {' and '.join(missing)}: its keys are "
                             f"{', '.join(repr(key) for key in item)}; name the image and label columns with "
                             "image_column= and label_column=")
        image, label = item[columns.image], item[columns.label]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        image, label = item
    else:
        _checks.fail(TypeError, f"{name}[{index}]", f"an (image, label) pair or a mapping with {columns.image!r} "
                                                    f"and {columns.label!r} keys", item)
    if hasattr(label, "ndim") and getattr(label, "ndim") == 0 and hasattr(label, "item"):
        label = label.item()  # a 0-d tensor or numpy scalar
    label = _checks.check_int(label, f"the label of {name}[{index}]", expected="an int or a 0-d integer tensor")
    return image, label


def dataset_targets(dataset: Any, columns: Columns = DEFAULT_COLUMNS) -> list[int]:
    """One int class index per item.

    Read from ``targets`` when the dataset has it, from the label column of a
    Hugging Face dataset, composed through ``Subset`` indices, and as a last resort
    by reading every item's label, which decodes every image: slow, hence logged.
    """
    from torch.utils.data import Subset

    if hasattr(dataset, "targets"):
        return [int(target) for target in dataset.targets]
    if isinstance(dataset, Subset):
        base = dataset_targets(dataset.dataset, columns)
        return [base[i] for i in dataset.indices]
    column_names = getattr(dataset, "column_names", None)
    if isinstance(column_names, list) and columns.label in column_names:
        return [int(label) for label in dataset[columns.label]]  # a Hugging Face column, no image decoded
    logger.info("%s has no `targets`; reading the label of each of its %d items", type(dataset).__name__, len(dataset))
    return [parse_item(dataset[i], i, name="dataset", columns=columns)[1] for i in range(len(dataset))]


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


class ClassImages(Sequence[Any]):
    """The images of one class of a base dataset, read on access as RGB PIL images; nothing is kept.

    Each read is checked against the digest the scan took of that item, so a dataset
    whose items change between reads is an error, never a silently different image.
    """

    def __init__(self, dataset: Any, indices: list[int], digests: list[str] | None, name: str,
                 columns: Columns = DEFAULT_COLUMNS) -> None:
        self._dataset, self._indices, self._digests, self._name = dataset, indices, digests, name
        self._columns = columns

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def item_names(self) -> list[str]:
        """How errors about these images name them: ``base_dataset[i]``, the items the user gave."""
        return [f"{self._name}[{index}]" for index in self._indices]

    @overload
    def __getitem__(self, position: int) -> Any: ...

    @overload
    def __getitem__(self, position: slice) -> list[Any]: ...

    def __getitem__(self, position: int | slice) -> Any:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        index = self._indices[position]
        image, _ = read_item(self._dataset, index, self._name, self._columns)
        if self._digests is not None:
            check_same_item(image, self._digests[index], index, self._name)
        return image


class ImagesByClass(Sequence[ClassImages]):
    """A base dataset's images grouped by class (``images_by_class[c][j]``), read lazily, one item at a time."""

    def __init__(self, dataset: Any, targets: Sequence[int], num_classes: int, digests: list[str] | None,
                 name: str, columns: Columns = DEFAULT_COLUMNS) -> None:
        indices: list[list[int]] = [[] for _ in range(num_classes)]
        for index, label in enumerate(targets):
            indices[label].append(index)
        self._classes = [ClassImages(dataset, class_indices, digests, name, columns) for class_indices in indices]

    def __len__(self) -> int:
        return len(self._classes)

    def __getitem__(self, class_index: int) -> ClassImages:  # type: ignore[override]
        return self._classes[class_index]


class ChainedImages(Sequence[Any]):
    """Every image of a per-class sequence, class after class, read on access (what captioning iterates)."""

    def __init__(self, images_by_class: Sequence[Sequence[Any]]) -> None:
        self._parts = images_by_class
        self._offsets = [0]
        for part in images_by_class:
            self._offsets.append(self._offsets[-1] + len(part))

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, position: int) -> Any:  # type: ignore[override]
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"image {position} out of range for {len(self)} images")
        part = bisect.bisect_right(self._offsets, position) - 1
        return self._parts[part][position - self._offsets[part]]


@dataclass
class DatasetScan:
    """A base dataset read once: each item's label, the images by class (read lazily), and a content fingerprint.

    ``images_by_class[c][j]`` reads the ``j``-th item of class ``c`` from the dataset
    again when asked (and checks it is the image that was fingerprinted), so holding a
    scan costs no image memory.
    """

    targets: list[int]
    images_by_class: ImagesByClass
    fingerprint: str


def read_base_item(dataset: Any, index: int, name: str = "base_dataset") -> Any:
    """``dataset[index]``; a file it cannot read (truncated, not an image, gone) is an ``OSError`` naming the item.

    Image readers say what is wrong with a file ("image file is truncated") but not which
    item it is; this adds ``name[index]`` and, when the dataset lists its files, the file.
    """
    try:
        return dataset[index]
    except (OSError, SyntaxError) as error:  # PIL raises SyntaxError for some broken files
        file = _item_file(dataset, index)
        where = f"{name}[{index}]" + (f" ({file})" if file is not None else "")
        message = f"{where} cannot be read: {error or type(error).__name__}"
        kind = type(error) if isinstance(error, OSError) else OSError
        try:
            named = kind(message)
        except Exception:  # noqa: BLE001 - an OSError subclass with arguments of its own
            named = OSError(message)
        raise named from error


def _item_file(dataset: Any, index: int) -> str | None:
    """The file of item ``index`` of an ``ImageFolder``-style dataset (``samples``), if it lists one."""
    samples = getattr(dataset, "samples", None)
    try:
        return str(samples[index][0]) if isinstance(samples, list) else None
    except (IndexError, TypeError, KeyError):
        return None


def read_item(dataset: Any, index: int, name: str = "base_dataset",
              columns: Columns = DEFAULT_COLUMNS) -> tuple[Any, int]:
    """Item ``index`` of ``dataset`` as ``(RGB PIL image, label)``; errors name the item."""
    from diffii_datasets.images import to_pil_rgb

    image, label = parse_item(read_base_item(dataset, index, name), index, name=name, columns=columns)
    return to_pil_rgb(image, name=f"{name}[{index}] image"), label


def check_same_item(image: Any, digest: str, index: int, name: str = "base_dataset") -> None:
    """``image`` (item ``index`` read again) must be the image whose digest the scan took."""
    from diffii_datasets.hashing import image_digest

    if image_digest(image) != digest:
        raise ValueError(f"{name}[{index}] changed between two reads: {name}'s items are not deterministic "
                         "(a random transform on it?). Diff-II fingerprints and generates from the base images, "
                         f"so they must read the same every time: move the transform from {name} onto the wrapper "
                         "(DiffIIAugmented(..., transform=...))")


def check_deterministic_source(dataset: Any, name: str = "base_dataset") -> None:
    """Refuse a base dataset (or a dataset it wraps) with a ``transform``: its items could differ on every read."""
    path = name
    while dataset is not None:
        transform = getattr(dataset, "transform", None)
        if transform is not None:
            raise ValueError(f"{path}.transform is set ({_checks.describe(transform)}): Diff-II fingerprints and "
                             f"generates from the base images, so {name} must give the same image on every read. "
                             "Move the transform onto the wrapper: DiffIIAugmented(..., transform=...), and build "
                             f"{path} with transform=None")
        parts = getattr(dataset, "datasets", None)  # torch's ConcatDataset
        for number, part in enumerate(parts if isinstance(parts, (list, tuple)) else ()):
            check_deterministic_source(part, f"{path}.datasets[{number}]")
        dataset, path = getattr(dataset, "dataset", None), f"{path}.dataset"


def scan_dataset(dataset: Any, classes: list[str], *, name: str = "base_dataset",
                 cache_dir: str | os.PathLike | None = None, columns: Columns = DEFAULT_COLUMNS) -> DatasetScan:
    """Fingerprint every item of ``dataset`` (pixels and labels), one at a time, keeping no image.

    ``columns``: where the image and the label are in mapping items (Hugging Face rows).

    With ``cache_dir``, a dataset that can list its files (a torchvision-style dataset
    with ``samples``, ``_image_files``, ...; see :func:`~diffii_datasets.dataset_files.file_signature`)
    is fingerprinted once: while its files' paths, sizes and modification times stay the
    same, a later scan reads no image at all. A dataset with a ``transform`` is refused,
    and so is one whose first item reads differently twice.
    """
    from diffii_datasets.dataset_files import file_signature
    from diffii_datasets.store.scans import read_scan, write_scan
    from diffii_datasets.hashing import image_digest

    if len(dataset) == 0:
        raise ValueError(f"{name} is empty: Diff-II needs at least one image")
    check_deterministic_source(dataset, name)
    signature = file_signature(dataset) if cache_dir is not None else None
    items = read_scan(cache_dir, signature, len(dataset)) if signature is not None else None
    if items is None:
        items = []
        for index in range(len(dataset)):
            image, label = read_item(dataset, index, name, columns)
            _check_shape(image, f"{name}[{index}]")
            items.append([image_digest(image), label])
            if index == 0:  # a random transform shows on the first item read twice (and later on every read)
                check_same_item(read_item(dataset, 0, name, columns)[0], items[0][0], 0, name)
            _check_label(label, index, classes, name)
        if signature is not None:
            write_scan(cache_dir, signature, items)
    else:
        for index, (_, label) in enumerate(items):
            _check_label(label, index, classes, name)
    targets = [label for _, label in items]
    digests = [digest for digest, _ in items]
    return DatasetScan(targets, ImagesByClass(dataset, targets, len(classes), digests, name, columns),
                       fingerprint({"classes": classes, "items": items}))


EXTREME_ASPECT_RATIO = 20.0
"""Above this long side to short side, an image gets a warning when it is scanned (concept learning's default
``max_aspect_ratio`` refuses such images)."""


def _check_shape(image: Any, name: str) -> None:
    """Warn, naming the item, about an image so elongated that a square view of it shows little of it."""
    width, height = image.size
    ratio = max(width, height) / min(width, height)
    if ratio > EXTREME_ASPECT_RATIO:
        from diffii_datasets._warnings import warn_at_caller

        warn_at_caller(f"{name} is {width} x {height} pixels, an aspect ratio of {ratio:.3g}:1: inversion squashes "
                       "every image to a square (as the authors' code does) and concept learning refuses such images "
                       f"(above {EXTREME_ASPECT_RATIO:g}:1 by default), so its synthetic images would hardly show it. "
                       "Crop it to its subject")


def _check_label(label: int, index: int, classes: list[str], name: str) -> None:
    if not 0 <= label < len(classes):
        raise ValueError(f"{name}[{index}] has label {label}, outside the {len(classes)} classes "
                         f"(expected 0..{len(classes) - 1})")
