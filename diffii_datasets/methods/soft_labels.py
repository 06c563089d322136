"""Diff-Mix's soft label of a synthetic image, as its trainer builds it (``dataset/base.py``, ``get_syn_item``).

An image made from a real image of class ``source`` with the prompt of class ``target`` at
translation strength ``x`` is labelled ``1 - x**gamma`` on ``source`` and ``x**gamma`` on
``target`` (the two add up on one class when ``source == target``: a one-hot label).
Diff-Mix's ``soft_scaler`` is 1 in every published run, so the label sums to 1.

``gamma`` is a training argument in Diff-Mix (``train_hub.py --gamma``): it changes no image,
so it is not a knob of a method's config (that would key a store on it) but an option of the
training that serves the images (:meth:`Method.soft_label <diffii_datasets.methods.Method.soft_label>`
takes it). :data:`DIFFMIX_GAMMA` is ``train_hub.py``'s default (lines 109-114),
:data:`DIFFMIX_SCRIPT_GAMMA` what ``scripts/classification.sh`` passes (its published
classification runs, and the README's command): the default here. Pure Python.
"""

from __future__ import annotations

import math

from diffii_datasets import _checks

__all__ = ["DEFAULT_GAMMA", "DIFFMIX_GAMMA", "DIFFMIX_SCRIPT_GAMMA", "check_gamma", "diffmix_soft_label"]

DIFFMIX_GAMMA = 1.0
"""``--gamma``'s default in Diff-Mix's ``downstream_tasks/train_hub.py``."""
DIFFMIX_SCRIPT_GAMMA = 0.8
"""The ``GAMMA`` of Diff-Mix's ``scripts/classification.sh``, its published classification runs."""
DEFAULT_GAMMA = DIFFMIX_SCRIPT_GAMMA
"""The gamma a mixing method's soft labels use when the training names none: the published runs'."""


def check_gamma(gamma: float, name: str = "gamma") -> float:
    """``gamma`` as a float >= 0."""
    return _checks.check_number(gamma, name, minimum=0)


def diffmix_soft_label(source: int, target: int, strength: float, gamma: float, num_classes: int) -> list[float]:
    """The probability vector Diff-Mix trains on for one synthetic image (see the module docstring).

    ``strength`` in [0, 1]; ``gamma`` >= 0. Example: ``strength=0.7, gamma=0.8`` gives the
    target class ``0.7 ** 0.8 = 0.752`` and the source ``0.248``.
    """
    num_classes = _checks.check_int(num_classes, "num_classes", minimum=1)
    source = _checks.check_int(source, "source", minimum=0, maximum=num_classes - 1)
    target = _checks.check_int(target, "target", minimum=0, maximum=num_classes - 1)
    strength = _checks.check_number(strength, "strength", minimum=0, maximum=1)
    gamma = check_gamma(gamma)
    weight = math.pow(strength, gamma)
    label = [0.0] * num_classes
    label[source] += 1 - weight
    label[target] += weight
    return label
