"""Flower-LT: a long-tailed subset of Oxford Flowers-102 (the paper's Table 2).

Flower-LT follows Diff-Mix, whose numbers the paper compares against: the official
Flowers-102 train and val splits hold only 10 images per class each, too few for a long
tail (with 20 images per class IF 20 and IF 100 would give the same 20-to-1 profile). So
all images are pooled and each class is split 50/50 with
:func:`~diffii_datasets.image_datasets.split_per_class`; the split uses the fixed seed
:data:`SPLIT_SEED`, so every run seed shares one test set, and the run seed only draws
the long tail.
"""

from pathlib import Path
from typing import Any

from diffii_datasets.settings.base import Family

SPLIT_SEED = 0
"""The seed of Flower-LT's fixed 50/50 split of every class."""


def pooled_halves(root: Path, transform: Any, test_transform: Any, target_transform: Any,
                  download: bool) -> tuple[Any, Any]:
    """The first half of every class of all Flowers-102 images pooled (the pool), and the second half (the test)."""
    from diffii_datasets.image_datasets import Flowers102, LabeledConcat, split_per_class

    def pooled(image_transform: Any, fetch: bool) -> LabeledConcat:
        return LabeledConcat([Flowers102(root, split, transform=image_transform, target_transform=target_transform,
                                         download=fetch and split == "train") for split in ("train", "val", "test")])

    train_half, _ = split_per_class(pooled(transform, download), 0.5, seed=SPLIT_SEED)
    _, test_half = split_per_class(pooled(test_transform, False), 0.5, seed=SPLIT_SEED)
    return train_half, test_half


FAMILY = Family(
    name="flower-lt",
    kind="long-tail",
    metaclass="flower",
    num_classes=102,
    train_split=f"Flowers-102, all splits pooled, first half of each class (fixed split seed {SPLIT_SEED})",
    test_split="Flowers-102, all splits pooled, second half of each class",
    published=(100, 20, 10),
    load_pools=pooled_halves,
    paper_column="Flower-LT",
    authors_name="flower",
    suffix_list="flower",
)
