"""Category concepts (paper Sec. 3.1): per-class placeholder tokens plus one LoRA shared by all classes.

Names load lazily: ``ConceptConfig``, ``checkpoint_problems`` and ``ConceptWriteError`` come without torch.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.diffusion.concepts.config": ("ConceptConfig", "LORA_TARGET_MODULES", "RECIPE_DA_FUSION"),
    "diffii_datasets.diffusion.concepts.concept_set": ("ConceptSet", "class_token"),
    "diffii_datasets.diffusion.concepts.checkpoint": ("checkpoint_problems",),
    "diffii_datasets.diffusion.concepts.writing": ("ConceptWriteError",),
    "diffii_datasets.diffusion.concepts.training": ("learn_concepts",),
    "diffii_datasets.diffusion.concepts.released_format": ("import_released_concepts",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
