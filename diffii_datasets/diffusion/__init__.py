"""All diffusion work: concepts, inversion, interpolation, suffixes, denoising, generation.

Importable without any dataset or Hub code: arrows point down from the dataset
layer (``diffii_datasets.augmented``, ``hf``, ``cli``) into this package, never back.
"""

from diffii_datasets.diffusion.prompts import build_prompt, normalize_suffix

__all__ = ["build_prompt", "normalize_suffix"]
