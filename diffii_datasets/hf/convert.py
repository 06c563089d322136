"""A complete synthetic store as Hugging Face rows: ``train`` (real), ``synthetic`` and ``test``.

The store is read through :class:`~diffii_datasets.store.SyntheticStore` only, and
images go into the rows as the store's own file bytes (real images are lossless PNGs,
synthetic ones PNG or JPEG as generated), so nothing is re-encoded. The same row
generators feed :func:`to_dataset_dict`, the Hub export and :class:`DiffIIBuilder`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets

from diffii_datasets.base_dataset import find_classes, parse_item
from diffii_datasets.hf.features import diffii_features, neutral_provenance
from diffii_datasets.images import to_pil_rgb
from diffii_datasets.store import SyntheticStore
from diffii_datasets.store.record import PROVENANCE

__all__ = [
    "IncompleteStoreError",
    "check_test_dataset",
    "checked_store_dataset_dict",
    "open_store",
    "real_examples",
    "synthetic_examples",
    "test_examples",
    "to_dataset_dict",
]


class IncompleteStoreError(ValueError):
    """Raised when a store is asked for rows before every class is committed, or is damaged."""


def open_store(source: SyntheticStore | str | os.PathLike) -> SyntheticStore:
    """The complete, intact store ``source`` (a :class:`~diffii_datasets.SyntheticStore` or its directory).

    A store whose classes are not all committed, or whose files do not match their
    checksums, is refused with the classes concerned. Nothing is generated here: a
    wrapper's store is ``DiffIIAugmented(...).store``.
    """
    if isinstance(source, (str, os.PathLike)):
        store = SyntheticStore.open(source)
    elif isinstance(source, SyntheticStore):
        store = source
    else:
        raise TypeError(f"source must be a SyntheticStore or a store directory (DiffIIAugmented(...).store), "
                        f"got {type(source).__name__}")
    header = store.header
    classes = list(range(header.num_classes))
    missing = [c for c in classes if not store.is_committed(c)]
    if missing:
        names = ", ".join(f"{c} ({header.classes[c]})" for c in missing)
        raise IncompleteStoreError(f"the store at {store.path} is not complete: {len(missing)} of {len(classes)} "
                                   f"classes are not generated yet: {names}. Finish it first (prepare() resumes).")
    problems = store.verify(classes)
    if problems:
        listed = "; ".join(f"class {p.class_index} {p.file}: {p.reason}" for p in problems)
        raise IncompleteStoreError(f"the store at {store.path} is damaged: {listed}. "
                                   "Run DiffIIAugmented(...).prepare() again to regenerate those classes.")
    if store.manifest() is None:
        raise IncompleteStoreError(f"the store at {store.path} has every class but no manifest.json; "
                                   "run DiffIIAugmented(...).prepare() once more to finalise it")
    return store


def _image(data: bytes, path: str) -> dict[str, Any]:
    return {"bytes": data, "path": path}


def real_examples(store: SyntheticStore) -> Iterator[dict[str, Any]]:
    """The store's real images, class by class, each class in the order ``source_indices`` refer to."""
    for class_index in range(store.header.num_classes):
        for path in store.real_images(class_index):
            name = f"{class_index:05d}/real/{path.name}"
            yield {"image": _image(store.read_file(path), name), "label": class_index, **neutral_provenance()}


def synthetic_examples(store: SyntheticStore) -> Iterator[dict[str, Any]]:
    """The store's synthetic images with their provenance, class by class, in generation order."""
    for class_index in range(store.header.num_classes):
        for record in store.records(class_index):
            data = store.read_file(store.image_path(class_index, record.file))
            provenance = record.to_dict()
            yield {"image": _image(data, f"{class_index:05d}/{record.file}"), "label": class_index,
                   "is_synthetic": True, **{field: provenance[field] for field in PROVENANCE}}


def check_test_dataset(dataset: Any, class_names: Sequence[str]) -> None:
    """Refuse a test set that is not a map-style dataset or names other classes than the store."""
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"test_dataset must be a map-style dataset, got {type(dataset).__name__}")
    names = find_classes(dataset)
    if names is not None and list(names) != list(class_names):
        raise ValueError(f"test_dataset has classes {list(names)[:5]}... ({len(names)}), but the store was made "
                         f"for {list(class_names)[:5]}... ({len(class_names)}); they must be the same, in order")


def test_examples(dataset: Any, class_names: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Rows of a real evaluation dataset (``(image, label)`` items), images stored as lossless PNG."""
    check_test_dataset(dataset, class_names)
    for index in range(len(dataset)):
        image, label = parse_item(dataset[index], index)
        if not 0 <= label < len(class_names):
            raise ValueError(f"test_dataset[{index}] has label {label}, outside the {len(class_names)} classes")
        buffer = io.BytesIO()
        to_pil_rgb(image, name=f"test_dataset[{index}] image").save(buffer, format="PNG")
        yield {"image": _image(buffer.getvalue(), f"test/{index:06d}.png"), "label": label, **neutral_provenance()}


def _store_split(store_path: str, manifest_sha256: str, split: str) -> Iterator[dict[str, Any]]:
    # The manifest digest is an argument only so that datasets' cache key changes with the store's content.
    store = SyntheticStore.open(store_path)
    yield from real_examples(store) if split == "train" else synthetic_examples(store)


def to_dataset_dict(
    source: Any,
    test_dataset: Any = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """A complete store as a ``DatasetDict``: ``train`` (real), ``synthetic`` and, given ``test_dataset``, ``test``.

    Args:
        source: a :class:`~diffii_datasets.SyntheticStore` or a store directory (see :func:`open_store`).
        test_dataset: the real evaluation set (``(image, label)`` items with the store's classes).
        cache_dir: where ``datasets`` writes its Arrow files (default: its own cache). The
            cache key of the store splits is the store's manifest, so a regenerated store
            is never served from a stale cache.
    """
    return checked_store_dataset_dict(open_store(source), test_dataset, cache_dir=cache_dir)


def checked_store_dataset_dict(store: SyntheticStore, test_dataset: Any = None, *,
                               cache_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """:func:`to_dataset_dict` of a store that :func:`open_store` has already checked (checksums are read once)."""
    names = list(store.header.classes)
    features = diffii_features(names)
    manifest_sha256 = store.manifest_digest()
    if test_dataset is not None:
        check_test_dataset(test_dataset, names)
    cache = str(cache_dir) if cache_dir is not None else None
    splits = {}
    for split in ("train", "synthetic"):
        splits[split] = datasets.Dataset.from_generator(
            _store_split, features=features, cache_dir=cache, split=datasets.NamedSplit(split),
            gen_kwargs={"store_path": str(Path(store.path).resolve()), "manifest_sha256": manifest_sha256,
                        "split": split},
        )
    if test_dataset is not None:
        splits["test"] = datasets.Dataset.from_generator(
            test_examples, features=features, cache_dir=cache, split=datasets.NamedSplit("test"),
            gen_kwargs={"dataset": test_dataset, "class_names": tuple(names)},
        )
    return datasets.DatasetDict(splits)
