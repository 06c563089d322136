"""``GenerationConfig``: every knob of the generation engine, declared once, with the paper's defaults.

Pure Python (no torch), so ``DiffIIConfig`` and the command line can read the
declarations without loading the diffusion libraries.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffii_datasets._knobs import choice, image_side, knob, number, optional, positive_int, validate

__all__ = ["AUTOCAST_DTYPES", "INTERPOLATION_METHODS", "GenerationConfig"]

INTERPOLATION_METHODS = ("circle", "spherical", "extrapolate", "linear")
"""Eq. 5 (the method), Eq. 6, Eq. 7 and the linear baseline of the paper's ablation."""

AUTOCAST_DTYPES = ("bfloat16", "float16")
"""Names of the dtypes the UNet and VAE calls may be autocast to (``autocast_dtype``)."""


@dataclass(frozen=True)
class GenerationConfig:
    """Inversion, interpolation and two-stage denoising; defaults are the paper's 5-shot setting."""

    expansion_rate: float = knob(5.0, "synthetic images per real image (class i gets int(rate * n_i))",
                                 number(above=0))
    split_ratio: float = knob(0.3, "fraction of the denoising steps (the noisy end) that use the suffixed prompt; "
                                   "the paper: 0.3 for 5-shot, 0.1 for 10-shot, 1.0 for long-tail",
                              number(minimum=0, maximum=1))
    inversion_steps: int = knob(200, "DDIM inversion steps", positive_int)
    inversion_guidance_scale: float = knob(1.0, "classifier-free guidance of the inversion (1: none)",
                                           number(minimum=0))
    denoising_steps: int = knob(25, "DDIM denoising steps", positive_int)
    guidance_scale: float = knob(7.5, "classifier-free guidance of the denoising", number(minimum=0))
    interpolation: str = knob("circle", "how two inversions are mixed: " + ", ".join(INTERPOLATION_METHODS),
                              choice(INTERPOLATION_METHODS), choices=INTERPOLATION_METHODS)
    batch_size: int = knob(8, "latents per UNet batch", positive_int)
    resolution: int | None = knob(None, "image side in pixels for inversion and generation "
                                        "(default: the pipeline's own, 512 for SD-1.5)",
                                  optional(image_side), parse=int)
    autocast_dtype: str | None = knob(None, "bfloat16 or float16: run generation's UNet and VAE under autocast "
                                            "(a speed knob for float32 pipelines; off by default)",
                                      choice(AUTOCAST_DTYPES, optional=True), parse=str, choices=AUTOCAST_DTYPES)

    def __post_init__(self) -> None:
        validate(self)
