"""The prompts a class's placeholder tokens are learned in (``ConceptConfig.prompts``).

``"published"``: the one prompt of Diff-Mix's ``train_lora.py``, ``"a photo of a
<tokens> <metaclass>"``. ``"imagenet_templates_small"``: DA-Fusion's ``fine_tune.py``,
which formats one of these 27 templates, chosen at random for every image of every
step, with the placeholder alone (no metaclass). Pure Python.
"""

from __future__ import annotations

from diffii_datasets.diffusion.prompts import build_prompt

__all__ = ["IMAGENET_TEMPLATES_SMALL", "training_prompts"]

IMAGENET_TEMPLATES_SMALL = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)
"""DA-Fusion's ``imagenet_templates_small`` (``fine_tune.py``), in its order."""


def training_prompts(tokens: str, metaclass: str, prompts: str) -> list[str]:
    """Every prompt one class may be learned in, for its space-joined ``tokens``; a step draws one per image."""
    if prompts == "published":
        return [build_prompt(tokens, metaclass)]
    if prompts == "imagenet_templates_small":
        return [template.format(tokens) for template in IMAGENET_TEMPLATES_SMALL]
    raise ValueError(f"unknown prompt set {prompts!r}")
