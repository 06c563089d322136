"""BatchNorm over groups: each normalised alone, the gradient DDP averages over one GPU per group, the trainer knob."""

import copy

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.models import resnet18

from diffii_datasets.classify import train
from diffii_datasets.classify.batchnorm import GroupBatchNorm, group_batch_norm
from diffii_datasets.classify.trainer import WEIGHTS_FILE
from tests.classify.fixtures import tiny_recipe
from tests.classify.train_worker import datasets


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def test_each_group_is_normalised_alone_and_only_the_first_updates_the_running_statistics():
    x = torch.randn(12, 4, 5, 5, generator=torch.Generator().manual_seed(0)) * 3 + 1
    plain = nn.BatchNorm2d(4)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.uniform_(-1, 1)
    first_only = copy.deepcopy(plain)
    grouped = GroupBatchNorm(copy.deepcopy(plain), 4)
    expected = torch.cat([first_only(x[:4]), copy.deepcopy(plain)(x[4:8]), copy.deepcopy(plain)(x[8:])])
    assert torch.allclose(grouped(x), expected, atol=1e-6)
    assert not torch.allclose(grouped(x), copy.deepcopy(plain)(x), atol=1e-3)  # not the whole batch's statistics
    grouped.running_mean.copy_(first_only.running_mean)
    grouped.running_var.copy_(first_only.running_var)
    grouped.num_batches_tracked.copy_(first_only.num_batches_tracked)
    grouped(x)
    first_only(x[:4])
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(grouped, name), getattr(first_only, name)), name
    grouped.eval()
    first_only.eval()
    assert torch.equal(grouped(x), first_only(x))
    assert grouped(x[:1]).shape == (1, 4, 5, 5)  # evaluation takes any batch


def test_the_gradient_is_what_ddp_averages_over_one_gpu_per_group():
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    grouped = small_net()
    assert group_batch_norm(grouped, 4) == 1
    nn.functional.cross_entropy(grouped(x), y).backward()
    gradients = []
    for part in (slice(0, 4), slice(4, 8)):  # two "ranks", each with its own copy and half of the batch
        rank = small_net()
        nn.functional.cross_entropy(rank(x[part]), y[part]).backward()
        gradients.append([parameter.grad for parameter in rank.parameters()])
    for parameter, *per_rank in zip(grouped.parameters(), *gradients):
        assert torch.allclose(parameter.grad, sum(per_rank) / 2, atol=1e-6)


def test_the_weights_keep_their_names_and_load_into_the_plain_model():
    model = resnet18(num_classes=3)
    names = list(model.state_dict())
    parameters = [id(parameter) for parameter in model.parameters()]
    assert group_batch_norm(model, 2) == 20
    assert list(model.state_dict()) == names
    assert [id(parameter) for parameter in model.parameters()] == parameters  # an optimiser made before still works
    model(torch.randn(4, 3, 32, 32))
    resnet18(num_classes=3).load_state_dict(model.state_dict())
    assert group_batch_norm(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), 2) == 0


def test_the_recipe_knob(tmp_path):
    train_set, test_set = datasets()
    runs = {}
    for group in (None, 8, 4):  # the tiny recipe's batch is 8
        train(train_set, test_set, tiny_recipe(bn_group_size=group), output_dir=tmp_path / str(group), workers=0,
              progress=False)
        runs[group] = load_file(str(tmp_path / str(group) / WEIGHTS_FILE))
    assert all(torch.equal(runs[8][name], runs[None][name]) for name in runs[None])  # one group: the whole batch
    assert not all(torch.equal(runs[4][name], runs[None][name]) for name in runs[None])
    with pytest.raises(ValueError, match=r"bn_group_size \(3\) must divide the batch of each rank \(8 over 1"):
        train(train_set, test_set, tiny_recipe(bn_group_size=3), workers=0, progress=False)
