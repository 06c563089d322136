"""ImageSets: what is compared, from two datasets or by hand, checked on construction."""

import numpy as np
import pytest
from torch.utils.data import Dataset

from diffii_datasets.quality import ImageSets, QualitySettings, evaluate
from diffii_datasets.testing import tiny_image_dataset


class Pairs(Dataset):
    """A map-style dataset of ``(image, label)`` items with ``targets``."""

    def __init__(self, items):
        self.items, self.targets = items, [label for _, label in items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_from_datasets_groups_images_by_class_and_reads_them_lazily(metric_models):
    real = tiny_image_dataset(2, 3, size=32)
    synthetic = Pairs([(real.draw(i).rotate(90), real.targets[i]) for i in reversed(range(len(real)))])
    sets = ImageSets.from_datasets(real, synthetic, "shape")
    assert sets.class_names == real.classes and sets.class_indices == [0, 1]
    assert [len(images) for images in sets.real] == [3, 3] == [len(images) for images in sets.synthetic]
    assert np.array_equal(np.asarray(sets.real[1][2]), np.asarray(real.draw(5)))
    assert np.array_equal(np.asarray(sets.synthetic[0][0]), np.asarray(real.draw(2).rotate(90)))
    report = evaluate(sets, metric_models, QualitySettings(lpips_size=32, kid_subsets=2), progress=False)
    assert report.source["kind"] == "datasets" and report.overall.synthetic_count == 6
    assert report.overall.provenance is None and report.classes[0].noise_started_share is None


def test_from_datasets_refuses_labels_outside_the_real_classes():
    real = tiny_image_dataset(2, 1, size=32)
    with pytest.raises(ValueError, match="synthetic has labels \\[2\\] outside the 2 classes"):
        ImageSets.from_datasets(real, Pairs([(real.draw(0), 2)]), "shape")


def test_image_sets_need_one_entry_per_class():
    with pytest.raises(ValueError, match="len\\(synthetic\\) must be 2 \\(one entry per class\\), got 1"):
        ImageSets(["a", "b"], "shape", [[], []], [[]])
    with pytest.raises(ValueError, match="records must hold one record per synthetic image"):
        ImageSets(["a"], "shape", [[]], [["x.png"]], records=[[]])
