"""Subsets and concatenations that keep the torchvision label interface.

``torch.utils.data.Subset`` and ``ConcatDataset`` drop ``classes``,
``class_to_idx`` and ``targets``, which every consumer of a benchmark (the
augmentation wrapper, the concept learner, a classifier's sampler) needs.
:class:`LabeledSubset` and :class:`LabeledConcat` are the real torch classes with
those attributes added, plus ``sample_keys``: one stable string per item (the
image path relative to the dataset's folder) that the samplers sort by, so that
a draw does not depend on the order in which items happen to be listed on disk.

:mod:`diffii_datasets.base_dataset` reads the same information from any map-style dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import ConcatDataset, Dataset, Subset

from diffii_datasets.base_dataset import class_names, dataset_sample_keys, dataset_targets

__all__ = ["LabeledConcat", "LabeledSubset"]


class LabeledSubset(Subset):
    """A ``torch.utils.data.Subset`` that keeps ``classes``, ``class_to_idx`` and ``targets``.

    ``targets`` and ``sample_keys`` are those of the selected items, in subset
    order; ``classes`` are all of the parent's classes, so labels keep their
    meaning even when a class ends up with no item. Taking a subset of a subset
    (this class or a plain ``Subset``, not other subclasses) composes the indices
    onto the innermost dataset, so nesting costs nothing at ``__getitem__`` time.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        indices = [int(i) for i in indices]
        while type(dataset) in (Subset, LabeledSubset):
            indices = [int(dataset.indices[i]) for i in indices]
            dataset = dataset.dataset
        if any(not 0 <= i < len(dataset) for i in indices):
            raise IndexError(f"indices must lie in [0, {len(dataset)}) for {type(dataset).__name__}")
        super().__init__(dataset, indices)
        self.classes = class_names(dataset)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        base_targets = dataset_targets(dataset)
        self.targets = [base_targets[i] for i in indices]
        base_keys = dataset_sample_keys(dataset)
        self.sample_keys = None if base_keys is None else [base_keys[i] for i in indices]

    def __repr__(self) -> str:
        return f"LabeledSubset({type(self.dataset).__name__}, {len(self)} of {len(self.dataset)} items)"


class LabeledConcat(ConcatDataset):
    """A ``torch.utils.data.ConcatDataset`` of datasets that share one class list.

    Used to pool the official splits of a dataset (Flower-LT pools all of
    Flowers-102); ``targets`` and ``sample_keys`` are concatenated in order.
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        datasets = list(datasets)
        if not datasets:
            raise ValueError("datasets must hold at least one dataset, got an empty sequence")
        classes = class_names(datasets[0])
        for part in datasets[1:]:
            if class_names(part) != classes:
                raise ValueError("datasets must all have the same `classes` in the same order to be concatenated")
        super().__init__(datasets)
        self.classes = classes
        self.class_to_idx = {name: i for i, name in enumerate(classes)}
        self.targets = [target for part in datasets for target in dataset_targets(part)]
        keys = [dataset_sample_keys(part) for part in datasets]
        self.sample_keys = None if any(k is None for k in keys) else [key for part in keys for key in part]
