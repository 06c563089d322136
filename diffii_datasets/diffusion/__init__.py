"""All diffusion work: concepts, inversion, interpolation, suffixes, denoising, generation.

Importable without any dataset or Hub code: arrows point down from the dataset
layer (``diffii_datasets.augmented``, ``hf``, ``cli``) into this package, never back.
Names load lazily, so ``import diffii_datasets.diffusion.interpolation`` or reading
a config loads neither diffusers nor transformers.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "build_prompt": "diffii_datasets.diffusion.prompts",
    "check_prompt_length": "diffii_datasets.diffusion.prompts",
    "normalize_suffix": "diffii_datasets.diffusion.prompts",
    "AUTOCAST_DTYPES": "diffii_datasets.diffusion.config",
    "INTERPOLATION_METHODS": "diffii_datasets.diffusion.config",
    "GenerationConfig": "diffii_datasets.diffusion.config",
    "ConceptConfig": "diffii_datasets.diffusion.concepts",
    "ConceptSet": "diffii_datasets.diffusion.concepts",
    "class_token": "diffii_datasets.diffusion.concepts",
    "import_released_concepts": "diffii_datasets.diffusion.concepts",
    "learn_concepts": "diffii_datasets.diffusion.concepts",
    "BUILTIN_FAMILIES": "diffii_datasets.diffusion.suffixes",
    "DEFAULT_CAPTIONER": "diffii_datasets.diffusion.suffixes",
    "DEFAULT_SUMMARISER": "diffii_datasets.diffusion.suffixes",
    "BuiltinSuffixes": "diffii_datasets.diffusion.suffixes",
    "CaptionedSuffixes": "diffii_datasets.diffusion.suffixes",
    "SuffixParseError": "diffii_datasets.diffusion.suffixes",
    "SuffixProvider": "diffii_datasets.diffusion.suffixes",
    "UserSuffixes": "diffii_datasets.diffusion.suffixes",
    "suffix_provider": "diffii_datasets.diffusion.suffixes",
    "circle_interpolate": "diffii_datasets.diffusion.interpolation",
    "interpolate": "diffii_datasets.diffusion.interpolation",
    "linear_interpolate": "diffii_datasets.diffusion.interpolation",
    "random_circle_interpolate": "diffii_datasets.diffusion.interpolation",
    "random_interpolate": "diffii_datasets.diffusion.interpolation",
    "spherical_extrapolate": "diffii_datasets.diffusion.interpolation",
    "spherical_interpolate": "diffii_datasets.diffusion.interpolation",
    "ddim_invert": "diffii_datasets.diffusion.inversion",
    "decode_latents": "diffii_datasets.diffusion.denoise",
    "denoising_timesteps": "diffii_datasets.diffusion.denoise",
    "suffix_steps": "diffii_datasets.diffusion.denoise",
    "two_stage_denoise": "diffii_datasets.diffusion.denoise",
    "PromptEncoder": "diffii_datasets.diffusion.pipeline",
    "load_pipeline": "diffii_datasets.diffusion.pipeline",
    "pipeline_resolution": "diffii_datasets.diffusion.pipeline",
    "SyntheticSample": "diffii_datasets.diffusion.generator",
    "class_seed": "diffii_datasets.diffusion.generator",
    "generate_class": "diffii_datasets.diffusion.generator",
    "invert_class": "diffii_datasets.diffusion.generator",
    "num_synthetic": "diffii_datasets.diffusion.generator",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
