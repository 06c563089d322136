"""The small, fast Diff-II setup shared by the wrapper tests and their worker processes."""

from diffii_datasets import DiffIIAugmented, DiffIIConfig
from diffii_datasets.testing import tiny_image_dataset

FAST_CONFIG = DiffIIConfig(
    resolution=32,
    expansion_rate=2.0,
    inversion_steps=4,
    denoising_steps=4,  # 751, 501, 251, 1: the first step reaches the suffix threshold at split 0.3
    batch_size=4,
    concept_train_steps=3,
    concept_batch_size=2,
    concept_checkpoint_steps=2,
    concept_resolution=32,  # the tiny pipeline's size, as resolution
    suffixes="builtin",
    seed=0,
)


def make_dataset(num_classes=3, per_class=(3, 2, 1), **kwargs):
    return tiny_image_dataset(num_classes=num_classes, per_class=list(per_class), size=32, seed=0, **kwargs)


def make_wrapper(dataset, cache_dir, config=FAST_CONFIG, **kwargs):
    kwargs.setdefault("progress", False)
    return DiffIIAugmented(dataset, "shape", config=config, cache_dir=cache_dir, **kwargs)
