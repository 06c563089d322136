"""Mixup and CutMix against a port of the authors' functions fed the same draws; replay after a resume."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torchvision.transforms import ToTensor

from diffii_datasets.classify import trainer as trainer_module
from diffii_datasets.classify import train
from diffii_datasets.classify.data import Transformed, epoch_loader
from diffii_datasets.classify.mixing import CutMixed, cutmix_box, cutmix_generator, draw_mixup, mixup, mixup_generator
from diffii_datasets.classify.trainer import WEIGHTS_FILE
from diffii_datasets.distributed import World
from tests.classify.fixtures import tiny_recipe
from tests.classify.train_worker import datasets
from tests.reference import diffii_train_utils as authors

CLASSES = 5


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Draws:
    """The authors' calls to ``np.random``, ``random`` and ``torch.randperm``, answered from one NumPy generator."""

    def __init__(self, rng):
        self.rng = rng

    def rand(self, *shape):
        return self.rng.random(shape) if shape else self.rng.random()

    def beta(self, a, b):
        return self.rng.beta(a, b)

    def randint(self, high):
        return self.rng.integers(high)

    def choice(self, sequence):
        return sequence[int(self.rng.integers(len(sequence)))]

    def randperm(self, n):
        return torch.as_tensor(self.rng.permutation(n))


class TorchWith:
    """The torch module, but ``randperm`` answered by ``draws``."""

    def __init__(self, draws):
        self.randperm = draws.randperm

    def __getattr__(self, name):
        return getattr(torch, name)


def use_draws(monkeypatch, draws):
    monkeypatch.setattr(authors, "np", SimpleNamespace(random=draws, sqrt=np.sqrt, clip=np.clip, ndarray=np.ndarray))
    monkeypatch.setattr(authors, "random", SimpleNamespace(choice=draws.choice))
    monkeypatch.setattr(authors, "torch", TorchWith(draws))


class Items:
    """Fixed (image, target) items, handed out as copies (the authors' CutMix pastes into the image it gets)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image, target = self.items[index]
        return image.clone(), target.clone() if isinstance(target, torch.Tensor) else target


def items(count, soft, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, 8, 12, generator=generator)  # not square: rand_bbox's first axis is the rows
    if soft:
        targets = torch.rand(count, CLASSES, generator=generator).softmax(dim=1)
        return Items([(images[i], targets[i]) for i in range(count)])
    return Items([(images[i], i % CLASSES) for i in range(count)])


@pytest.mark.parametrize("soft", [False, True])
def test_cutmix_is_the_authors_given_the_same_draws(monkeypatch, soft):
    dataset, seed, epoch, probability = items(40, soft), 7, 3, 0.3
    ours = CutMixed(dataset, CLASSES, probability, seed)
    ours.set_epoch(epoch)
    theirs = authors.CutMix(dataset, num_class=CLASSES, prob=probability)
    mixed = 0
    for index in range(len(dataset)):
        use_draws(monkeypatch, Draws(cutmix_generator(seed, epoch, index)))
        their_image, their_target = theirs[index]
        image, target = ours[index]
        assert torch.equal(image, their_image) and torch.equal(target, their_target), index
        assert target.dtype == torch.float32 and target.shape == (CLASSES,)
        mixed += not torch.equal(image, dataset[index][0])
    assert 4 <= mixed <= 20  # about 30 % of 40 items (some boxes are empty or the item is its own partner)


def test_the_box_is_rand_bbox_s_at_the_edges(monkeypatch):
    for lam in (0.0, 1e-9, 0.25, 0.5, 0.999, 1.0):
        for row, column in ((0, 0), (7, 11), (3, 6), (0, 11)):
            centre = iter([row, column])
            use_draws(monkeypatch, Draws(SimpleNamespace(integers=lambda high: next(centre))))
            theirs = authors.rand_bbox(torch.Size([3, 8, 12]), lam)
            assert cutmix_box(8, 12, lam, row, column) == tuple(int(value) for value in theirs), (lam, row, column)


def test_mixup_is_the_authors_given_the_same_draws(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    probability, batches = 0.3, 30
    ours_rng, their_draws = mixup_generator(2020, 4, 1), Draws(mixup_generator(2020, 4, 1))
    use_draws(monkeypatch, their_draws)
    mixed = 0
    for _ in range(batches):
        images = torch.randn(6, 3, 8, 12, generator=generator)
        targets = torch.rand(6, CLASSES, generator=generator).softmax(dim=1)
        draw = draw_mixup(ours_rng, probability, len(images))
        ours = (images, targets) if draw is None else mixup(images, targets, *draw)
        if their_draws.rand() < probability:  # train_classifier.py line 428, then mixup_data (utils.py 102-117)
            theirs = authors.mixup_data(images, targets, alpha=1.0, num_classes=CLASSES)
        else:
            theirs = (images, targets)
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
        mixed += draw is not None
    assert 3 <= mixed <= 18


def test_cutmix_draws_do_not_depend_on_the_loader_workers():
    train_set, _ = datasets()
    recipe = tiny_recipe(cutmix=True, mixup_probability=0.5)
    # No random augmentation (those come from each worker's generator): only CutMix draws.
    mixed = CutMixed(Transformed(train_set, ToTensor(), "train_set"), 3, 0.5, recipe.seed)
    batches = {workers: [tuple(tensor.clone() for tensor in batch)
                         for batch in epoch_loader(mixed, recipe, World(), 1, workers)] for workers in (0, 2)}
    for (images, targets), (their_images, their_targets) in zip(batches[0], batches[2]):
        assert torch.equal(images, their_images) and torch.equal(targets, their_targets)
    targets = torch.cat([targets for _, targets in batches[0]])
    assert targets.shape == (24, 3) and torch.allclose(targets.sum(dim=1), torch.ones(24))
    assert (targets.max(dim=1).values < 1).any()  # some items were mixed


def test_a_run_with_mixup_and_cutmix_resumes_to_the_same_weights(tmp_path, monkeypatch, one_thread):
    train_set, test_set = datasets()
    recipe = tiny_recipe(epochs=3, mixup=True, cutmix=True, mixup_probability=0.5)
    reference = train(train_set, test_set, recipe, output_dir=tmp_path / "reference", workers=0, progress=False)

    original, calls = trainer_module.evaluate, []

    def evaluate_then_fail(*positional, **keywords):
        calls.append(1)
        if len(calls) == 2:  # during epoch 2, after epoch 1's checkpoint
            raise KeyboardInterrupt
        return original(*positional, **keywords)

    monkeypatch.setattr(trainer_module, "evaluate", evaluate_then_fail)
    with pytest.raises(KeyboardInterrupt):
        train(train_set, test_set, recipe, output_dir=tmp_path / "run", workers=0, progress=False)
    monkeypatch.setattr(trainer_module, "evaluate", original)
    resumed = train(train_set, test_set, recipe, output_dir=tmp_path / "run", workers=0, progress=False)

    ours, theirs = (load_file(str(tmp_path / name / WEIGHTS_FILE)) for name in ("run", "reference"))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in reference.history]
    plain = train(train_set, test_set, tiny_recipe(epochs=3), workers=0, progress=False)
    assert [r.train_loss for r in plain.history] != [r.train_loss for r in reference.history]
