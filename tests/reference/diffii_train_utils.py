"""Port of Diff-II's ``utils.py`` (CutMix, mixup_data) with the ``cutmix`` package functions it imports.

Sources, read-only mirrors:
- github.com/scuwyh2000/Diff-II ``utils.py`` at commit 8c0fa1a (lines 1-8 imports, 53-117);
- github.com/ildoonet/cutmix ``cutmix/utils.py`` at commit b7fab1d (``onehot``, ``rand_bbox``),
  which Diff-II imports as ``from cutmix.utils import onehot, rand_bbox``.

Edits from the originals (nothing else changed; the draws still come from the module's ``np.random``,
``random`` and ``torch.randperm``, which the side-by-side tests replace with recorded draws):
1. ``from cutmix.utils import onehot, rand_bbox`` is replaced by those two functions, copied below; the
   import ``from cutmix.cutmix import CutMix`` (shadowed by the class of the same name) is dropped.
2. In ``rand_bbox``, ``np.int(...)`` is ``int(...)``: ``np.int`` was an alias of ``int`` removed in NumPy 1.24.
3. ``calculate_confusion_matrix`` and ``calculate_accuracy`` (unused by the trainer) are left out.
4. Spacing only, for flake8: ``rand_example= ...`` and ``x[index,:]`` gain a space, trailing blanks and the blank
   lines around ``mixup_data`` are trimmed; no token changed.
"""

import random

import numpy as np
import torch
from torch.utils.data.dataset import Dataset


# -- cutmix/utils.py (ildoonet/cutmix) --------------------------------------------------------------------------------

def onehot(size, target):
    vec = torch.zeros(size, dtype=torch.float32)
    vec[target] = 1.
    return vec


def rand_bbox(size, lam):
    if len(size) == 4:
        W = size[2]
        H = size[3]
    elif len(size) == 3:
        W = size[1]
        H = size[2]
    else:
        raise Exception

    cut_rat = np.sqrt(1. - lam)
    cut_w = int(W * cut_rat)  # edit 2: np.int
    cut_h = int(H * cut_rat)  # edit 2: np.int

    # uniform
    cx = np.random.randint(W)
    cy = np.random.randint(H)

    bbx1 = np.clip(cx - cut_w // 2, 0, W)
    bby1 = np.clip(cy - cut_h // 2, 0, H)
    bbx2 = np.clip(cx + cut_w // 2, 0, W)
    bby2 = np.clip(cy + cut_h // 2, 0, H)

    return bbx1, bby1, bbx2, bby2


# -- utils.py (Diff-II) -----------------------------------------------------------------------------------------------

def is_vector_label(x):
    if isinstance(x, np.ndarray):
        return x.size > 1
    elif isinstance(x, torch.Tensor):
        return x.size().numel() > 1
    elif isinstance(x, int):
        return False
    else:
        raise TypeError(f"Unknown type {type(x)}")


class CutMix(Dataset):
    def __init__(self, dataset, num_class, num_mix=1, beta=1., prob=1.0):
        self.dataset = dataset
        self.num_class = num_class
        self.num_mix = num_mix
        self.beta = beta
        self.prob = prob

    def __getitem__(self, index):
        example = self.dataset[index]
        img, lb = example[0], example[1]
        lb_onehot = lb if is_vector_label(lb) else onehot(self.num_class, lb)

        for _ in range(self.num_mix):
            r = np.random.rand(1)
            if self.beta <= 0 or r > self.prob:
                continue

            # generate mixed sample
            lam = np.random.beta(self.beta, self.beta)
            rand_index = random.choice(range(len(self)))

            rand_example = self.dataset[rand_index]
            img2, lb2 = rand_example[0], rand_example[1]
            lb2_onehot = lb2 if is_vector_label(lb2) else onehot(self.num_class, lb2)
            bbx1, bby1, bbx2, bby2 = rand_bbox(img.size(), lam)
            img[:, bbx1:bbx2, bby1:bby2] = img2[:, bbx1:bbx2, bby1:bby2]
            lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (img.size()[-1] * img.size()[-2]))
            lb_onehot = lb_onehot * lam + lb2_onehot * (1. - lam)

        return img, lb_onehot

    def __len__(self):
        return len(self.dataset)


def mixup_data(x, y, alpha=1, num_classes=200):

    '''Compute the mixup data. Return mixed inputs, pairs of targets, and lambda'''
    if alpha > 0.:
        lam = np.random.beta(alpha, alpha)
    else:
        lam = 1.
    batch_size = x.size()[0]
    index = torch.randperm(batch_size).to(x.device)

    mixed_x = lam * x + (1 - lam) * x[index, :]
    if is_vector_label(y):
        mixed_y = lam * y + (1 - lam) * y[index]
    else:
        mixed_y = onehot(y, num_classes) * lam + onehot(y[index], num_classes) * (1 - lam)
    return mixed_x, mixed_y
