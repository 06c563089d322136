"""Soft targets: the authors' loss on both kinds of target, Diff-Mix's soft label, training on probability vectors."""

import math

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from diffii_datasets.classify import train
from diffii_datasets.classify.loss import smoothed_cross_entropy
from diffii_datasets.classify.soft_labels import DIFFMIX_GAMMA, DIFFMIX_SCRIPT_GAMMA, diffmix_soft_label
from diffii_datasets.classify.trainer import WEIGHTS_FILE
from tests.classify.fixtures import tiny_recipe
from tests.classify.train_worker import datasets
from tests.reference.diffmix_train_losses import LabelSmoothingLoss
from tests.reference.diffmix_train_soft_label import get_syn_label


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("classes, smoothing", [(200, 0.1), (37, 0.1), (3, 0.3), (5, 0.0)])
def test_the_loss_is_the_authors_on_hard_and_soft_targets(classes, smoothing):
    generator = torch.Generator().manual_seed(classes)
    logits = torch.randn(16, classes, generator=generator) * 3
    hard = torch.randint(classes, (16,), generator=generator)
    soft = torch.rand(16, classes, generator=generator).softmax(dim=1)
    theirs = LabelSmoothingLoss(classes, smoothing)
    assert torch.equal(smoothed_cross_entropy(logits, hard, smoothing), theirs(logits, hard))
    assert torch.equal(smoothed_cross_entropy(logits, soft, smoothing), theirs(logits, soft))


def test_on_one_hot_targets_the_soft_branch_adds_s_over_c_minus_1_of_the_true_class_cross_entropy():
    classes, smoothing = 37, 0.1
    logits = torch.randn(8, classes, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8)
    one_hot = torch.nn.functional.one_hot(labels, classes).float()
    hard, soft = smoothed_cross_entropy(logits, labels, smoothing), smoothed_cross_entropy(logits, one_hot, smoothing)
    true_class = torch.nn.functional.cross_entropy(logits, labels)
    assert soft > hard
    assert (soft - hard).item() == pytest.approx(smoothing / (classes - 1) * true_class.item(), abs=2e-6)  # float32
    assert torch.equal(smoothed_cross_entropy(logits, labels, 0.0), smoothed_cross_entropy(logits, one_hot, 0.0))


@pytest.mark.parametrize("gamma", [DIFFMIX_GAMMA, DIFFMIX_SCRIPT_GAMMA, 0.5, 0.0])
def test_diffmix_soft_label_is_base_py_s(gamma):
    assert (DIFFMIX_GAMMA, DIFFMIX_SCRIPT_GAMMA) == (1.0, 0.8)
    for source, target in ((0, 3), (4, 1), (2, 2)):
        for strength in (0.0, 0.1, 0.5, 0.7, 0.9, 1.0):
            ours = diffmix_soft_label(source, target, strength, gamma, 5)
            theirs = get_syn_label(source, target, strength, gamma, 5)
            assert torch.equal(torch.tensor(ours, dtype=torch.float32), theirs), (source, target, strength)
            assert math.fsum(ours) == pytest.approx(1.0, abs=1e-12)
    label = diffmix_soft_label(1, 4, 0.7, 0.8, 5)
    assert label[4] == pytest.approx(0.7 ** 0.8) and label[1] == pytest.approx(1 - 0.7 ** 0.8)
    assert label[4] == pytest.approx(0.752, abs=5e-4)


def test_diffmix_soft_label_refuses_what_it_cannot_mean():
    with pytest.raises(ValueError, match="strength"):
        diffmix_soft_label(0, 1, 1.5, 1.0, 3)
    with pytest.raises(ValueError, match="target"):
        diffmix_soft_label(0, 3, 0.5, 1.0, 3)
    with pytest.raises(TypeError, match="source"):
        diffmix_soft_label(0.0, 1, 0.5, 1.0, 3)
    with pytest.raises(ValueError, match="gamma"):
        diffmix_soft_label(0, 1, 0.5, -1.0, 3)


class Labelled(Dataset):
    """``base`` with each label replaced by ``label(index, class)``."""

    def __init__(self, base, label):
        self.base, self.label, self.classes = base, label, base.classes

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        image, target = self.base[index]
        return image, self.label(index, target)


def one_hot(index, target):
    return torch.nn.functional.one_hot(torch.tensor(target), 3).float()


def test_one_hot_vectors_train_exactly_like_class_indices_without_smoothing(tmp_path):
    train_set, test_set = datasets()
    recipe = tiny_recipe(label_smoothing=0.0)
    indices = train(train_set, test_set, recipe, output_dir=tmp_path / "indices", workers=0, progress=False)
    vectors = train(Labelled(train_set, one_hot), test_set, recipe, output_dir=tmp_path / "vectors", workers=0,
                    progress=False)
    ours, theirs = (load_file(str(tmp_path / name / WEIGHTS_FILE)) for name in ("vectors", "indices"))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)

    def figures(result):  # the same loss, and the accuracy from the target's argmax
        return [(r.train_loss, r.train_accuracy, r.lr, r.test_accuracy) for r in result.history]

    assert figures(vectors) == figures(indices)


def test_soft_labels_train_and_bad_ones_are_named(tmp_path):
    train_set, test_set = datasets()

    def soft(index, target):  # Diff-Mix's label of an image of class `target` made with the next class's prompt
        return torch.tensor(diffmix_soft_label(target, (target + 1) % 3, 0.3, DIFFMIX_SCRIPT_GAMMA, 3))

    result = train(Labelled(train_set, soft), test_set, tiny_recipe(), workers=0, progress=False)
    assert len(result.history) == 2 and 0 <= result.history[-1].train_accuracy <= 100
    assert train(Labelled(train_set, soft), test_set, tiny_recipe(mixup=True, cutmix=True), workers=0,
                 progress=False).history[-1].train_loss > 0

    def mixed_kinds(index, target):
        return target if index % 2 else one_hot(index, target)

    with pytest.raises(TypeError, match=r"several kinds in one batch .*every item's target as a float tensor \[C\]"):
        train(Labelled(train_set, mixed_kinds), test_set, tiny_recipe(), workers=0, progress=False)
    with pytest.raises(ValueError, match=r"train_set\[\d+\] must be a probability vector .* sums are 2"):
        train(Labelled(train_set, lambda index, target: 2 * one_hot(index, target)), test_set, tiny_recipe(),
              workers=0, progress=False)
    with pytest.raises(ValueError, match="soft targets of 4 classes, not its 3"):
        train(Labelled(train_set, lambda index, target: torch.full((4,), 0.25)), test_set, tiny_recipe(), workers=0,
              progress=False)
    with pytest.raises(TypeError, match="torch.int64 vector: a soft target must be a float tensor"):
        train(Labelled(train_set, lambda index, target: one_hot(index, target).long()), test_set, tiny_recipe(),
              workers=0, progress=False)


def test_tensor_items_with_soft_targets_are_checked_when_batched():
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8) % 3

    class Tensors(Dataset):
        classes = ["a", "b", "c"]

        def __init__(self, scale):
            self.scale = scale

        def __len__(self):
            return 8

        def __getitem__(self, index):
            return images[index], self.scale * torch.nn.functional.one_hot(labels[index], 3).float()

    test_set = [(images[i], int(labels[i])) for i in range(6)]
    result = train(Tensors(1.0), test_set, tiny_recipe(epochs=1), workers=0, progress=False, apply_transforms=False)
    assert len(result.history) == 1
    with pytest.raises(ValueError, match="a soft target of train_set must be a probability vector"):
        train(Tensors(0.5), test_set, tiny_recipe(epochs=1), workers=0, progress=False, apply_transforms=False)
