"""The learning rate, step by step, against the authors' loop: CosineAnnealingLR inside pytorch_warmup's dampening."""

import pytest
import torch

from diffii_datasets.classify.schedule import lr_factor, published_total_steps, warmup_cosine, warmup_steps


class AuthorsLinearWarmup:
    """pytorch_warmup 0.1's ``LinearWarmup`` as the authors drive it (``with warmup.dampening(): cosine.step()``).

    On construction it remembers the undampened rates and dampens by ``min(1, (0 + 1) / W)``;
    each ``dampening`` block restores them, lets the cosine step, remembers the new
    undampened rates and dampens with the next step's factor.
    """

    def __init__(self, optimizer, warmup_period):
        self.optimizer, self.period, self.last_step = optimizer, warmup_period, -1
        self.lrs = [group["lr"] for group in optimizer.param_groups]
        self.dampen()

    def dampen(self):
        self.last_step += 1
        for group in self.optimizer.param_groups:
            group["lr"] *= min(1.0, (self.last_step + 1) / self.period)

    def step_inside(self, scheduler):
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            group["lr"] = lr
        scheduler.step()
        self.lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.dampen()


def optimizer(lr):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


@pytest.mark.parametrize("epochs, items, batch, lr", [(128, 1000, 256, 0.05), (100, 500, 32, 1e-3), (3, 10, 4, 0.1)])
def test_schedule_matches_the_authors_step_by_step(epochs, items, batch, lr):
    total = published_total_steps(epochs, items, batch)
    assert total == max(epochs * items // batch, 1)
    ours_optimizer, theirs_optimizer = optimizer(lr), optimizer(lr)
    ours = warmup_cosine(ours_optimizer, total, 0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(theirs_optimizer, T_max=total)
    warmup = AuthorsLinearWarmup(theirs_optimizer, max(int(0.1 * total), 1))
    steps_per_epoch = -(-items // batch)  # the last partial batch runs too: a few steps past T
    for step in range(epochs * steps_per_epoch):
        ours_lr, theirs_lr = ours_optimizer.param_groups[0]["lr"], theirs_optimizer.param_groups[0]["lr"]
        assert ours_lr == pytest.approx(theirs_lr, rel=1e-9, abs=1e-12), f"step {step}"
        ours_optimizer.step()
        theirs_optimizer.step()
        ours.step()
        warmup.step_inside(cosine)


def test_warmup_is_linear_then_cosine_reaches_zero_at_t():
    total, warmup = 500, warmup_steps(500, 0.1)
    assert warmup == 50
    assert lr_factor(0, total, warmup) == pytest.approx(1 / 50)
    assert lr_factor(49, total, warmup) == pytest.approx((1 + torch.cos(torch.tensor(torch.pi * 49 / 500)).item()) / 2)
    assert lr_factor(total, total, warmup) == pytest.approx(0.0, abs=1e-12)
    assert warmup_steps(3, 0.1) == 1  # at least one step: no warm-up at all
