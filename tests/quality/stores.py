"""Images and stores for the quality tests, made without any diffusion."""

import numpy as np
import torch
from PIL import Image

from diffii_datasets import DiffIIConfig
from diffii_datasets.store import StoreHeader, SyntheticRecord, SyntheticStore
from diffii_datasets.testing import tiny_image_dataset

SUFFIXES = ("perched on a branch", "in the snow", "flying over water")


def class_images(num_classes=3, per_class=4, size=40, seed=0):
    """``(class names, real images per class)`` of the procedural tiny dataset."""
    dataset = tiny_image_dataset(num_classes, per_class, size=size, seed=seed)
    return dataset.classes, [[dataset.draw(i) for i in range(len(dataset)) if dataset.targets[i] == c]
                             for c in range(num_classes)]


def shifted(image, offset):
    """``image`` rolled by ``offset`` pixels: another image of the same kind."""
    return Image.fromarray(np.roll(np.asarray(image), offset, axis=(0, 1)))


def write_store(path, real, synthetic, names, *, noise_class=None, uncommitted=()):
    """A store of ``real`` and ``synthetic`` images per class with made-up provenance.

    Synthetic image ``k`` has ``lam = 0.5 * k`` and suffix ``SUFFIXES[k % 3]``; the images of
    ``noise_class`` are noise-started (no lam, no source pair).
    """
    header = StoreHeader(config=DiffIIConfig(resolution=32, expansion_rate=2.0), classes=tuple(names),
                         metaclass="shape", dataset="hand-made", model="hand-made", concepts="learned:none",
                         real_counts=tuple(len(r) for r in real), expected_counts=tuple(len(s) for s in synthetic))
    store = SyntheticStore.create(path, header)
    for c, (real_images, synthetic_images) in enumerate(zip(real, synthetic)):
        if c in uncommitted:
            continue
        with store.writing(c) as writer:
            for k, image in enumerate(real_images):
                writer.add_real(k, image)
            writer.write_inversions(torch.zeros(len(real_images), 4, 4, 4))
            for k, image in enumerate(synthetic_images):
                noise = c == noise_class
                writer.add(image, SyntheticRecord(k, c, source_indices=() if noise else (0, 1),
                                                  lam=None if noise else 0.5 * k, suffix=SUFFIXES[k % 3], seed=7))
    return SyntheticStore.open(path)
