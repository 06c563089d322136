"""Category concepts (paper Sec. 3.1): per-class placeholder tokens plus one LoRA shared by all classes.

Names load lazily: ``ConceptConfig`` comes without torch.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "ConceptConfig": "diffii_datasets.diffusion.concepts.config",
    "LORA_TARGET_MODULES": "diffii_datasets.diffusion.concepts.config",
    "ConceptSet": "diffii_datasets.diffusion.concepts.concept_set",
    "class_token": "diffii_datasets.diffusion.concepts.concept_set",
    "learn_concepts": "diffii_datasets.diffusion.concepts.training",
    "import_released_concepts": "diffii_datasets.diffusion.concepts.released_format",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
