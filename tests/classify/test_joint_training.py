"""The joint-training set through the trainer's loader: replacement rate p, long-tail 1/(n_c + 1), p = 0."""

import numpy as np
import pytest
from torchvision.transforms import ToTensor

from diffii_datasets.classify import Recipe, joint_training_set, train
from diffii_datasets.classify.data import Transformed, epoch_loader
from diffii_datasets.distributed import World
from tests.classify.fixtures import decode, tiny_recipe, write_store


def served(dataset, recipe, epochs):
    """``(label, replaced-by class or None)`` of every item the trainer's loader serves over ``epochs``."""
    items = []
    view = Transformed(dataset, ToTensor(), "train_set")
    for epoch in epochs:
        for images, labels in epoch_loader(view, recipe, World(), epoch, workers=0):
            for image, label in zip(images, labels):
                items.append((int(label), decode(image[:, 0, 0].numpy())))
    return items


def test_replacement_rate_is_p_within_sampling_error(tmp_path):
    store = write_store(tmp_path / "store", [200, 200, 200])
    recipe = Recipe(synthetic_probability=0.5, batch_size=64)
    items = served(joint_training_set(store, recipe), recipe, [0])
    assert len(items) == 600
    rate = np.mean([source is not None for _, source in items])
    assert abs(rate - 0.5) < 4 * np.sqrt(0.25 / 600)  # four standard errors
    assert all(source == label for label, source in items if source is not None)  # own class in few-shot


def test_replacement_draws_change_with_the_epoch_and_the_seed(tmp_path):
    store = write_store(tmp_path / "store", [30, 30])
    recipe = Recipe(synthetic_probability=0.5, batch_size=60)

    def replaced(recipe, epoch):
        dataset = Transformed(joint_training_set(store, recipe), ToTensor(), "train_set")
        dataset.set_epoch(epoch)
        return [decode(dataset[i][0][:, 0, 0].numpy()) is not None for i in range(len(dataset))]

    assert replaced(recipe, 0) == replaced(recipe, 0)
    assert replaced(recipe, 0) != replaced(recipe, 1)
    assert replaced(recipe, 0) != replaced(recipe.replace(seed=1), 0)


def test_long_tail_replacement_follows_one_over_n_plus_one(tmp_path):
    counts = [120, 30, 6]
    store = write_store(tmp_path / "store", counts)
    recipe = Recipe(synthetic_probability=0.5, class_balanced=True, batch_size=52)
    items = served(joint_training_set(store, recipe), recipe, range(10))
    replacing = [source for _, source in items if source is not None]
    expected = np.array([1 / (n + 1) for n in counts])
    expected /= expected.sum()
    observed = np.bincount(replacing, minlength=3)
    chi_square = (((observed - expected * len(replacing)) ** 2) / (expected * len(replacing))).sum()
    assert chi_square < 13.8  # 2 degrees of freedom, p = 0.001
    assert abs(len(replacing) / len(items) - 0.5) < 4 * np.sqrt(0.25 / len(items))
    assert all(source == label for label, source in items if source is not None)  # the label is the drawn class


def test_p_zero_is_the_original_set(tmp_path):
    store = write_store(tmp_path / "store", [20, 20])
    recipe = Recipe(synthetic_probability=0.0, batch_size=8)
    items = served(joint_training_set(store, recipe), recipe, [0, 1])
    assert len(items) == 80 and all(source is None for _, source in items)


def test_train_refuses_a_joint_set_that_disagrees_with_the_recipe(tmp_path):
    store = write_store(tmp_path / "store", [4, 4])
    dataset = joint_training_set(store, Recipe(synthetic_probability=0.5))
    with pytest.raises(ValueError, match="train_set.synthetic_probability is 0.5 but recipe.synthetic_probability"):
        train(dataset, dataset, tiny_recipe(synthetic_probability=0.2), workers=0, progress=False)
    with pytest.raises(ValueError, match="train_set.class_balanced is False but recipe.class_balanced is True"):
        train(dataset, dataset, tiny_recipe(synthetic_probability=0.5, class_balanced=True), workers=0,
              progress=False)


def test_an_incomplete_store_is_refused_with_its_missing_classes(tmp_path):
    store = write_store(tmp_path / "store", [3, 3, 3], committed=1)
    with pytest.raises(ValueError, match=r"is incomplete \(classes not generated yet: \[1, 2\]\)"):
        joint_training_set(store, Recipe())
