"""Diff-Mix's soft label rule, for training code: the rule lives with the methods that make mixed images
(:mod:`diffii_datasets.methods.soft_labels`, where a method owns its label); this module re-exports it.
Pure Python.
"""

from __future__ import annotations

from diffii_datasets.methods.soft_labels import DIFFMIX_GAMMA, DIFFMIX_SCRIPT_GAMMA, diffmix_soft_label

__all__ = ["DIFFMIX_GAMMA", "DIFFMIX_SCRIPT_GAMMA", "diffmix_soft_label"]
