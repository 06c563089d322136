"""BatchNorm over groups of a batch: the statistics each GPU's share of a data-parallel batch gives.

The authors train on 8 GPUs (``torchrun --nproc_per_node=8``, ``DistributedDataParallel``,
plain BatchNorm): each GPU normalises its 32 images (16 on the long tail) with their own
mean and variance, and DDP broadcasts rank 0's buffers at every forward, so the running
statistics the model keeps are the ones rank 0's images update. One process with the
whole batch normalises over all 256 (128) images instead: calmer statistics, a slightly
different training. :func:`group_batch_norm` gives a model the authors' behaviour: in
training, a batch is cut into consecutive groups of ``group_size`` images, each
normalised with its own statistics, and the running statistics are updated from the first
group alone. The gradient is then the one DDP averages over the groups' GPUs. In
evaluation the layers are plain BatchNorm, and every parameter and buffer keeps its name,
so the weights load into the unchanged model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GroupBatchNorm", "group_batch_norm"]

_PLAIN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class GroupBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A BatchNorm layer that normalises each group of ``group_size`` items of a training batch on its own."""

    def __init__(self, plain: nn.modules.batchnorm._BatchNorm, group_size: int) -> None:
        super().__init__(plain.num_features, plain.eps, plain.momentum, plain.affine, plain.track_running_stats)
        self.group_size = group_size
        self.plain_type = type(plain)
        for name, value in list(plain.named_parameters(recurse=False)) + list(plain.named_buffers(recurse=False)):
            setattr(self, name, value)  # the same parameters and buffers: the optimiser and state dict see no change
        self.train(plain.training)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        self.plain_type._check_input_dim(self, input)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or input.shape[0] <= self.group_size:
            return super().forward(input)
        first, *rest = input.split(self.group_size)
        normalised = [super().forward(first)]  # updates the running statistics, as rank 0's layer does
        normalised += [F.batch_norm(group, None, None, self.weight, self.bias, True, 0.0, self.eps) for group in rest]
        return torch.cat(normalised)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}"


def group_batch_norm(model: nn.Module, group_size: int) -> int:
    """Replace every ``BatchNorm1d/2d/3d`` in ``model`` by a :class:`GroupBatchNorm`; the number replaced."""
    replaced = 0
    for name, child in model.named_children():
        if type(child) in _PLAIN:
            setattr(model, name, GroupBatchNorm(child, group_size))
            replaced += 1
        else:
            replaced += group_batch_norm(child, group_size)
    return replaced
