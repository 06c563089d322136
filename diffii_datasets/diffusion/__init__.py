"""All diffusion work: concepts, inversion, interpolation, suffixes, denoising, generation.

Importable without any dataset or Hub code: arrows point down from the dataset
layer (``diffii_datasets.augmented``, ``hf``, ``cli``) into this package, never back.
Names load lazily, so ``import diffii_datasets.diffusion.interpolation`` or reading
a config loads neither diffusers nor transformers.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.diffusion.prompts": ("build_prompt", "check_prompt_length", "normalize_suffix"),
    "diffii_datasets.diffusion.config": ("AUTOCAST_DTYPES", "INTERPOLATION_METHODS", "GenerationConfig"),
    "diffii_datasets.diffusion.concepts": (
        "ConceptConfig", "ConceptSet", "class_token", "import_released_concepts", "learn_concepts",
    ),
    "diffii_datasets.diffusion.suffixes": (
        "BUILTIN_LISTS", "DEFAULT_CAPTIONER", "DEFAULT_SUMMARISER", "BuiltinSuffixes", "CaptionedSuffixes",
        "SuffixParseError", "SuffixProvider", "UserSuffixes", "suffix_provider",
    ),
    "diffii_datasets.diffusion.interpolation": (
        "circle_interpolate", "interpolate", "linear_interpolate", "random_circle_interpolate", "random_interpolate",
        "spherical_extrapolate", "spherical_interpolate",
    ),
    "diffii_datasets.diffusion.inversion": ("ddim_invert",),
    "diffii_datasets.diffusion.denoise": ("decode_latents", "denoising_timesteps", "suffix_steps", "two_stage_denoise"),
    "diffii_datasets.diffusion.pipeline": ("PromptEncoder", "load_pipeline", "pipeline_resolution"),
    "diffii_datasets.diffusion.img2img": ("edit_images",),
    "diffii_datasets.diffusion.text2image": ("generate_images",),
    "diffii_datasets.diffusion.generator": (
        "SyntheticSample", "class_seed", "generate_class", "invert_class", "num_synthetic",
    ),
}
_MOVED = {"BUILTIN_FAMILIES": "diffii_datasets.diffusion.suffixes.builtin_lists:BUILTIN_LISTS"}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, _MOVED)
