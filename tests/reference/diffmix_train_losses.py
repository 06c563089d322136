"""Port of Diff-Mix's ``LabelSmoothingLoss`` (``downstream_tasks/losses.py`` lines 105-123).

Source: github.com/Zhicaiwww/Diff-Mix at commit a81337b (read-only mirror). Diff-II's
``LabelSmoothing.py`` (github.com/scuwyh2000/Diff-II at 8c0fa1a) holds the same class, line for
line (only blank lines differ), so this port stands for both trainers' loss.

Edits from the original: none to the class; the module's other losses (focal, LDAM, balanced
softmax, the KL-divergence ``LabelSmoothing``) and its unused imports are left out.
"""

import torch
import torch.nn as nn


class LabelSmoothingLoss(nn.Module):
    def __init__(self, classes, smoothing=0.0, dim=-1):
        super(LabelSmoothingLoss, self).__init__()
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.cls = classes
        self.dim = dim

    def forward(self, pred, target):
        pred = pred.log_softmax(dim=self.dim)
        with torch.no_grad():
            # true_dist = pred.data.clone()
            true_dist = torch.zeros_like(pred)
            true_dist.fill_(self.smoothing / (self.cls - 1))
            if target.dim() == 1:
                true_dist.scatter_(1, target.data.unsqueeze(1), self.confidence)
            else:
                true_dist = true_dist + target * self.confidence
        return torch.mean(torch.sum(-true_dist * pred, dim=self.dim))
