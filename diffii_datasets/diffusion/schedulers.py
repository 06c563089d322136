"""The named samplers of the image-to-image and text-to-image engines: built, seeded and run.

Samplers are chosen by name, so a config can declare a ``sampler`` knob over
:data:`SAMPLERS` without loading torch or diffusers (this module imports neither
until one of its functions runs):

- ``"dpm-solver++"``: ``DPMSolverMultistepScheduler``, as Diff-Mix swaps it into every
  pipeline it builds (DM:augmentation/diff_mix.py:107-109, real_mix.py:57-60) and runs
  it for 25 steps (diff_mix.py:159, real_mix.py:95);
- ``"pndm"``: ``PNDMScheduler``, the scheduler SD-1.x ships with, and so DA-Fusion's:
  its pipelines keep the default scheduler and the default 50 steps
  (DAF:semantic_aug/augmentations/real_guidance.py:90-94, textual_inversion.py:145-150).
  With SD's ``skip_prk_steps`` it makes one UNet call more than it has steps;
- ``"ddim"``: ``DDIMScheduler`` with eta 0, the sampler of Diff-II's own denoising.

Each is built as the authors build it, ``SchedulerClass.from_config(pipe.scheduler.config)``:
diffusers then keeps its record of which values the config left at their defaults.
SD-1.x's scheduler config does not set ``timestep_spacing``, so DPM-Solver++ takes its
own default, ``"linspace"`` (timesteps 999, 959, ..., 40 at 25 steps), as in Diff-Mix's
runs. (:func:`~diffii_datasets.diffusion.pipeline.make_scheduler`, which passes every
accepted key explicitly, would give PNDM's ``"leading"`` spacing, 951, 913, ..., instead.)
All three samplers are deterministic given the starting latents: a step draws no noise,
so an image's randomness is only what the engines draw from its own generator
(:func:`check_generators`) before the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks

if TYPE_CHECKING:
    import torch

__all__ = ["SAMPLERS", "check_generators", "check_sampler", "make_sampler", "run_sampler"]

SAMPLERS = ("dpm-solver++", "pndm", "ddim")
"""The sampler names, torch-free: Diff-Mix's (25 steps), DA-Fusion's / SD-1.x's default (50 steps), Diff-II's."""

_SCHEDULER_CLASSES = {
    "dpm-solver++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
}


def check_sampler(name: Any) -> str:
    """``name`` if it is one of :data:`SAMPLERS`, else a ``ValueError`` naming ``sampler``."""
    return _checks.check_choice(name, "sampler", SAMPLERS)


def make_sampler(pipe, name: str):
    """A fresh diffusers scheduler for sampler ``name``, configured from ``pipe.scheduler.config``.

    Fresh, because multistep samplers keep state between steps: one per batch of latents.
    """
    import diffusers

    scheduler_class = getattr(diffusers, _SCHEDULER_CLASSES[check_sampler(name)])
    return scheduler_class.from_config(pipe.scheduler.config)


def check_generators(generators: Any, count: int, device: torch.device) -> list[torch.Generator]:
    """One distinct ``torch.Generator`` per image, each on the CPU or on ``device``'s type.

    Distinct objects, because an image draws all its randomness from its own
    generator: two images sharing one would make each result depend on the
    order and batch they are processed in.
    """
    import torch

    expected = f"a list of {count} torch.Generator, one per image"
    if isinstance(generators, torch.Generator) or not isinstance(generators, Sequence):
        _checks.fail(TypeError, "generators", expected, generators)
    generators = list(generators)
    if len(generators) != count:
        raise ValueError(f"generators must hold one torch.Generator per image ({count}), got {len(generators)}")
    first_index: dict[int, int] = {}
    for index, generator in enumerate(generators):
        if not isinstance(generator, torch.Generator):
            _checks.fail(TypeError, f"generators[{index}]", "a torch.Generator", generator)
        if id(generator) in first_index:
            raise ValueError(f"generators[{index}] is the same object as generators[{first_index[id(generator)]}]: "
                             "pass a distinct generator per image, e.g. torch.Generator().manual_seed(seed_i)")
        first_index[id(generator)] = index
        if generator.device.type not in ("cpu", device.type):
            raise ValueError(f"generators[{index}] must be a CPU generator or one on the pipeline's device type "
                             f"({device.type}), got a {generator.device.type} generator")
    return generators


def run_sampler(
    pipe,
    scheduler,
    timesteps: torch.Tensor,
    latents: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    guidance_scale: float,
    *,
    on_step: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """The denoising loop of diffusers' SD pipelines over ``timesteps``; returns the final float32 latents.

    Per step: ``scheduler.scale_model_input``, one UNet call with classifier-free
    guidance (``uncond`` is the empty prompt's embedding, ``None`` for no guidance;
    see :func:`~diffii_datasets.diffusion.pipeline.predict_noise`), ``scheduler.step``.
    The scheduler must have its timesteps set (and, for a partial run, its begin
    index). ``on_step(images)`` is called after every step with the images' worth
    of work it did; without it, the pipeline's own step bar is shown.
    """
    from diffii_datasets.diffusion.pipeline import predict_noise

    per_step = latents.shape[0] / len(timesteps) if len(timesteps) else 0.0
    for t in timesteps if on_step is not None else pipe.progress_bar(timesteps):
        model_input = scheduler.scale_model_input(latents, t)
        noise = predict_noise(pipe, model_input, t, cond, uncond, guidance_scale)
        latents = scheduler.step(noise, t, latents, return_dict=False)[0]
        if on_step is not None:
            on_step(per_step)
    return latents
