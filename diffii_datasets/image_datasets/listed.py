"""A subset named by a list of images (class and file name), found in one of this package's datasets.

This is how a subset fixed elsewhere (the authors' released few-shot and long-tail lists,
:mod:`diffii_datasets.released`) becomes the same :class:`LabeledSubset` the samplers return:
concept learning, generation and the classifier then read the same images from the user's
copy of the dataset, with its class names and labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset

from diffii_datasets.base_dataset import dataset_sample_keys, dataset_targets
from diffii_datasets.image_datasets.labeled import LabeledConcat, LabeledSubset

__all__ = ["listed_subset"]

_AMBIGUOUS = -1
_SHOWN = 10


def listed_subset(parts: Sequence[Dataset], wanted: Sequence[tuple[int, str, str]], *, source: str,
                  where: str) -> LabeledSubset:
    """The items of ``parts`` that ``wanted`` names, each as ``(class index, file name, path as listed)``.

    An item is found by its class and the file name of its ``sample_keys`` entry, in the first
    part that has one (a training list lists ``[train split, test split]``, so the training
    split wins when both hold the name). Items come ordered by class, then key, as the samplers
    order them. A listed image that is not there is a ``FileNotFoundError`` naming it (``source``
    names the list, ``where`` the data searched); one that matches two items of a part is a
    ``ValueError``.
    """
    parts = list(parts)
    if not parts or not wanted:
        raise ValueError(f"{source}: parts and wanted must both be non-empty")
    pool = parts[0] if len(parts) == 1 else LabeledConcat(parts)
    found_at: dict[tuple[int, str], int] = {}
    offset = 0
    for part in parts:
        keys = dataset_sample_keys(part)
        if keys is None:
            raise ValueError(f"{type(part).__name__} has no sample_keys: listed images cannot be found in it")
        in_part: dict[tuple[int, str], int] = {}
        for index, (key, target) in enumerate(zip(keys, dataset_targets(part))):
            name = (int(target), key.rsplit("/", 1)[-1])
            in_part[name] = _AMBIGUOUS if name in in_part else offset + index
        for name, index in in_part.items():
            found_at.setdefault(name, index)
        offset += len(part)

    indices, missing = [], []
    for class_index, file_name, listed in wanted:
        index = found_at.get((class_index, file_name))
        if index is None:
            missing.append(listed)
        elif index == _AMBIGUOUS:
            raise ValueError(f"{source}: {listed} matches several images of class {class_index} named {file_name!r} "
                             f"in {where}")
        else:
            indices.append(index)
    if missing:
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise FileNotFoundError(f"{len(missing)} of the {len(wanted)} images listed in {source} are not in {where} "
                                f"(looked up by class and file name): {', '.join(missing[:_SHOWN])}{more}")
    keys, targets = dataset_sample_keys(pool), dataset_targets(pool)
    indices.sort(key=lambda i: (targets[i], keys[i]))
    return LabeledSubset(pool, indices)
