"""All diffusion work: concepts, inversion, interpolation, suffixes, denoising, generation.

Importable without any dataset or Hub code: arrows point down from the dataset
layer (``diffii_datasets.augmented``, ``hf``, ``cli``) into this package, never back.
"""

from diffii_datasets.diffusion.concept_import import import_released_concepts
from diffii_datasets.diffusion.concepts import ConceptConfig, ConceptSet, class_token, learn_concepts
from diffii_datasets.diffusion.denoise import decode_latents, denoising_timesteps, suffix_steps, two_stage_denoise
from diffii_datasets.diffusion.generator import (
    INTERPOLATIONS,
    GenerationConfig,
    SyntheticSample,
    class_seed,
    generate_class,
    invert_class,
    num_synthetic,
)
from diffii_datasets.diffusion.interpolation import (
    circle_interpolate,
    interpolate,
    linear_interpolate,
    random_circle_interpolate,
    random_interpolate,
    spherical_extrapolate,
    spherical_interpolate,
)
from diffii_datasets.diffusion.inversion import ddim_invert
from diffii_datasets.diffusion.pipeline import PromptEncoder, load_pipeline, pipeline_resolution
from diffii_datasets.diffusion.prompts import build_prompt, normalize_suffix
from diffii_datasets.diffusion.suffixes import (
    BUILTIN_FAMILIES,
    DEFAULT_CAPTIONER,
    DEFAULT_SUMMARISER,
    BuiltinSuffixes,
    CaptionedSuffixes,
    SuffixParseError,
    SuffixProvider,
    UserSuffixes,
    check_prompt_length,
    suffix_provider,
)

__all__ = ["build_prompt", "normalize_suffix",
           "ConceptConfig", "ConceptSet", "class_token", "import_released_concepts", "learn_concepts",
           "BUILTIN_FAMILIES", "DEFAULT_CAPTIONER", "DEFAULT_SUMMARISER", "BuiltinSuffixes", "CaptionedSuffixes",
           "SuffixParseError", "SuffixProvider", "UserSuffixes", "check_prompt_length", "suffix_provider",
           "circle_interpolate", "interpolate", "linear_interpolate", "random_circle_interpolate",
           "random_interpolate", "spherical_extrapolate", "spherical_interpolate",
           "ddim_invert", "decode_latents", "denoising_timesteps", "suffix_steps", "two_stage_denoise",
           "PromptEncoder", "load_pipeline", "pipeline_resolution",
           "INTERPOLATIONS", "GenerationConfig", "SyntheticSample", "class_seed", "generate_class", "invert_class",
           "num_synthetic"]
