"""The published image pipelines, from PIL image to normalised tensor.

Few-shot (``train_classifier.py`` lines 310-323): train ``Resize((r, r))``,
``RandomCrop(s, padding=8)``, horizontal flip; eval ``Resize((r, r))``, ``CenterCrop(s)``.
Long tail (``train_classifier_imb.py`` lines 400-412): train ``RandomResizedCrop(s)``,
flip, ``ColorJitter(0.4, 0.4, 0.4, 0)``; eval ``Resize(r)`` (short side), ``CenterCrop(s)``.
Both normalise with the ImageNet mean and std.
"""

from __future__ import annotations

from typing import Any

from diffii_datasets.classify.recipes import Recipe

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "eval_transform", "train_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(recipe: Recipe) -> Any:
    """The training pipeline of ``recipe.transforms`` at ``recipe.image_size`` (resizing to ``recipe.resize``)."""
    from torchvision import transforms as T

    size, resize = recipe.image_size, recipe.resize
    if recipe.transforms == "few-shot":
        steps = [T.Resize((resize, resize)), T.RandomCrop(size, padding=8), T.RandomHorizontalFlip()]
    else:
        steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                 T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def eval_transform(recipe: Recipe) -> Any:
    """The evaluation pipeline of ``recipe.transforms``: resize, then a centre crop of ``recipe.image_size``."""
    from torchvision import transforms as T

    resize = (recipe.resize, recipe.resize) if recipe.transforms == "few-shot" else recipe.resize
    return T.Compose([T.Resize(resize), T.CenterCrop(recipe.image_size), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
