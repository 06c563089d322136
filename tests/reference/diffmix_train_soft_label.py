"""Port of Diff-Mix's soft label of a synthetic image (``dataset/base.py``, ``HugFewShotDataset.get_syn_item``).

Source: github.com/Zhicaiwww/Diff-Mix at commit a81337b (read-only mirror), ``dataset/base.py``
lines 224-237 (with ``soft_scaler`` 1, its default at line 117, and ``gamma`` from ``--gamma``).

Edits from the original: the label arithmetic of ``get_syn_item`` is lifted out of the method into
a function of ``(src_label, tar_label, strength, gamma, num_classes, soft_scaler)``: the metadata
row lookup (``self.meta_df.iloc[idx]``, ``self.class2label[...]``) and the image path are dropped;
the arithmetic lines are unchanged.
"""

import math

import torch


def get_syn_label(src_label, tar_label, strength, gamma, num_classes, soft_scaler=1):
    onehot_label = torch.zeros(num_classes)
    onehot_label[src_label] += soft_scaler * (
        1 - math.pow(strength, gamma)
    )
    onehot_label[tar_label] += soft_scaler * math.pow(strength, gamma)
    return onehot_label
