"""The small setup the baseline tests share: a dataset of real images of several sizes, runs, and the authors' view.

Real images of several sizes, none the tiny pipeline's 32 px square, so the edits' resize to 32
px and back (and Real-Gen's resize to a drawn real image's size) are exercised.
"""

import numpy as np
from torch.utils.data import Dataset

from diffii_datasets import DiffIIAugmented
from diffii_datasets.methods import get_method
from diffii_datasets.testing import tiny_image_dataset

METACLASS = "shape"
SIZES = [(40, 28), (24, 36), (36, 24), (28, 40), (44, 30)]
PER_CLASS = [2, 2, 1]
TINY_CONCEPTS = {"concept_train_steps": 2, "concept_batch_size": 2, "concept_resolution": 32}
"""Concept learning sized for a test (the same knobs for every method, so methods share what they learn)."""


class SizedShapes(Dataset):
    """The tiny shapes, item ``i`` resized to ``SIZES[i]``: ``(PIL image, label)`` with ``classes``."""

    def __init__(self):
        self._base = tiny_image_dataset(num_classes=len(PER_CLASS), per_class=PER_CLASS, size=32, seed=0)
        self.classes = self._base.classes
        self.targets = self._base.targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self._base.draw(index).resize(SIZES[index]), self.targets[index]


class AuthorsView:
    """The dataset as the authors' samplers read it: ``label_to_indices``, images, labels and metadata by index."""

    def __init__(self, dataset, super_class=None):
        self.dataset = dataset
        self.label_to_indices = {c: [i for i, t in enumerate(dataset.targets) if t == c]
                                 for c in range(len(dataset.classes))}
        self.super_class = super_class

    def __len__(self):
        return len(self.dataset)

    def get_image_by_idx(self, idx):
        return self.dataset[idx][0]

    def get_label_by_idx(self, idx):
        return self.dataset.targets[idx]

    def get_metadata_by_idx(self, idx):
        metadata = {"name": self.dataset.classes[self.dataset.targets[idx]]}
        if self.super_class is not None:
            metadata["super_class"] = self.super_class
        return metadata

    def index_of(self, label, position):
        """The dataset index of real image ``position`` of class ``label``."""
        return self.label_to_indices[label][position]


def config_of(method, **knobs):
    """``method``'s config for the tiny pipeline: its published knobs but for size (32 px) and tiny concepts."""
    extra = dict(TINY_CONCEPTS) if get_method(method).concepts else {}
    return get_method(method).config_class(**{"resolution": 32, **extra, **knobs})


def prepare(method, dataset, pipe, cache_dir, **knobs):
    """The wrapper of ``method``'s store of ``dataset``, prepared (concat mode: every synthetic item served)."""
    return DiffIIAugmented(dataset, METACLASS, config=config_of(method, **knobs), pipeline=pipe, cache_dir=cache_dir,
                           mode="concat", progress=False).prepare()


def stored(augmented):
    """Every synthetic image of a prepared wrapper with its record, class by class: ``[(record, pixels)]``."""
    synthetic = augmented.synthetic
    return [(synthetic.record(i), np.asarray(synthetic[i][0])) for i in range(len(synthetic))]


class Scripted:
    """A stand-in for ``random`` / ``np.random`` that answers each draw with the value given for it, in order.

    ``choices``, ``sample`` and ``choice`` each check the population they are asked about, so a port that
    asks for another draw than the one scripted fails.
    """

    def __init__(self, *, choices=(), samples=(), choice=()):
        self._choices, self._samples, self._choice = list(choices), list(samples), list(choice)

    def choices(self, population, k):
        values = self._choices.pop(0)
        assert len(values) == k and all(v in population for v in values)
        return list(values)

    def sample(self, population, k):
        value = self._samples.pop(0)
        assert k == 1 and value in population
        return [value]

    def choice(self, n, p=None):
        value = self._choice.pop(0)
        assert 0 <= value < n and (p is None or p[value] > 0)
        return value

    def exhausted(self):
        return not (self._choices or self._samples or self._choice)
