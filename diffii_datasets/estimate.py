"""How long a plan will take, from a short probe: a few real UNet calls of each kind on the pipeline in use.

A :class:`~diffii_datasets.plan.Plan` counts UNet evaluations; what one costs depends on the
device, the model, the resolution and the batch. :func:`estimate_plan` times the three kinds
of call the stages make, on the pipeline and device the run uses, at the run's resolutions and
batch sizes:

- concept learning: a forward and backward pass (gradients down to the inputs, as the LoRA and
  the tokens need them), under the trainer's mixed precision and gradient checkpointing;
- a stage per real image (DDIM inversion): a forward pass of one batch of real images (doubled
  with ``inversion_guidance_scale > 1``);
- a stage per synthetic image (generation): a forward pass of one batch with classifier-free
  guidance (doubled with ``guidance_scale > 1``).

Each kind gets one warm-up call and :data:`PROBE_CALLS` timed ones of the run's batch (the
fastest counts). On a CPU the warm-up holds one latent, and when it takes longer than
:data:`SLOW_CALL_SECONDS` (Stable Diffusion) one more call of one latent is the measure: a
CPU's time per latent hardly depends on the batch. So the probe costs seconds on a GPU
and six one-latent UNet calls on a CPU. The estimate is
the UNet's time only (the VAE, the text encoder and reading images add a little: about 10 %
for Stable Diffusion, more for the tiny model). The probe draws its inputs from its own
generator and leaves the weights, the global RNG and the pipeline's settings as they were,
so a run is the same with or without it. Importing this module loads no torch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffii_datasets.plan import CONCEPTS, format_duration

if TYPE_CHECKING:
    from diffii_datasets.job import PreparationJob
    from diffii_datasets.plan import Plan

__all__ = ["PROBE_CALLS", "SLOW_CALL_SECONDS", "Estimate", "estimate_plan", "probe_unet"]

PROBE_CALLS = 2
"""Timed calls per kind after the warm-up; the fastest is the measure."""
SLOW_CALL_SECONDS = 1.0
"""After a warm-up slower than this, one timed call (more would cost more than they tell)."""

KINDS = ("concept step", "real-image step", "synthetic-image step")
"""The kinds of UNet call :func:`probe_unet` times, in the order it times them."""


@dataclass(frozen=True)
class Estimate:
    """A plan's wall time: ``seconds`` (None when unknown) and ``note``, how it was measured or why it is unknown.

    ``per_evaluation`` holds the measured seconds per UNet evaluation of each kind in :data:`KINDS`.
    """

    seconds: float | None
    note: str
    per_evaluation: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def unknown(cls, why: str) -> Estimate:
        return cls(None, why)

    def text(self) -> str:
        """``"about 2 h 13 min (...)"``, ``"none (nothing to run)"`` or ``"unknown (...)"``: the plan's line."""
        if self.seconds is None:
            return f"unknown ({self.note})"
        if self.seconds == 0:
            return f"none ({self.note})"
        return f"about {format_duration(self.seconds)} ({self.note})"


def estimate_plan(plan: Plan, job: PreparationJob, pipe: Any) -> Estimate:
    """The wall time of ``plan``'s UNet evaluations on ``pipe``, at ``job``'s resolutions and batch sizes.

    Shared by ``plan.ranks`` ranks, the time is divided by their number (rank 0 probes its own device).
    Only the kinds of call the plan runs are timed.
    """
    if plan.empty:
        return Estimate(0.0, "nothing to run")
    kinds = {_kind(stage) for stage in plan.stages if stage.unet_evaluations}
    largest = {KINDS[1]: max(len(images) for images in job.images_by_class), KINDS[2]: max(job.expected_counts())}
    timings = probe_unet(pipe, job.config, kinds=kinds, largest_class=largest)
    seconds = sum(stage.unet_evaluations * timings[_kind(stage)] for stage in plan.stages if stage.unet_evaluations)
    ranks = f", shared by {plan.ranks} ranks" if plan.ranks > 1 else ""
    per = ", ".join(f"{kind} {_short(timings[kind])}" for kind in KINDS if kind in timings)
    return Estimate(seconds / plan.ranks, f"UNet time probed on {_device_name(pipe)}{ranks}: {per} per UNet "
                                          "evaluation", timings)


def _kind(stage: Any) -> str:
    if stage.name == CONCEPTS:
        return KINDS[0]
    return KINDS[1] if stage.per_real else KINDS[2]


def _short(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _device_name(pipe: Any) -> str:
    import torch

    from diffii_datasets.diffusion.pipeline import execution_device

    device = execution_device(pipe)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def probe_unet(pipe: Any, config: Any, *, kinds: set[str] | None = None,
               largest_class: Mapping[str, int] | None = None) -> dict[str, float]:
    """Seconds per UNet evaluation of each kind of :data:`KINDS` (default: all), measured on ``pipe``.

    ``config`` is the run's method config (its batch sizes, resolutions, guidance scales, autocast and
    concept-learning knobs; a knob it lacks takes the default of a plain call). ``largest_class``: per
    kind, the most images of a class, which caps the batch of a per-class call (default: no cap).
    """
    import torch

    from diffii_datasets.diffusion.pipeline import execution_device, pipeline_resolution

    kinds = set(KINDS) if kinds is None else kinds
    largest = largest_class or {}
    device = execution_device(pipe)
    own = pipeline_resolution(pipe)
    batch = _knob(config, "batch_size", 1)
    calls: dict[str, tuple[Callable[[int], Callable[[], None]], int]] = {}
    concept_resolution = _knob(config, "concept_resolution", None) or own
    resolution = _knob(config, "resolution", None) or own
    if KINDS[0] in kinds:
        calls[KINDS[0]] = (lambda size: _concept_call(pipe, size, concept_resolution, config),
                           _knob(config, "concept_batch_size", 1))
    for kind, guidance in ((KINDS[1], "inversion_guidance_scale"), (KINDS[2], "guidance_scale")):
        if kind in kinds:
            size = min(batch, max(largest.get(kind, batch), 1)) * (2 if _knob(config, guidance, 1.0) > 1 else 1)
            calls[kind] = (lambda size: _forward_call(pipe, size, resolution, config)), size
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return {kind: _per_evaluation(make, size, device) for kind, (make, size) in calls.items()}


def _per_evaluation(make: Callable[[int], Callable[[], None]], size: int, device: Any) -> float:
    """Seconds per latent of a call of ``size`` latents; on a CPU, of one latent when one is already slow."""
    if device.type == "cpu" and size > 1:
        one = make(1)
        if _timed(one, device) >= SLOW_CALL_SECONDS:  # Stable Diffusion on a CPU: the time per latent hardly
            return _timed(one, device)  # depends on the batch, and one more call is all the probe can afford
    return _measure(make(size), device) / size


def _knob(config: Any, name: str, default: Any) -> Any:
    return getattr(config, name, default)


def _inputs(pipe: Any, batch: int, resolution: int, grad: bool) -> tuple[Any, Any, Any]:
    """Random latents, a timestep and text states of the UNet's shapes, from a generator of their own."""
    import torch

    from diffii_datasets.diffusion.pipeline import execution_device, latent_shape

    unet, device = pipe.unet, execution_device(pipe)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((batch, *latent_shape(pipe, resolution)), generator=generator)
    length = getattr(pipe.tokenizer, "model_max_length", 77)
    states = torch.randn((batch, length, unet.config.cross_attention_dim), generator=generator)
    latents, states = latents.to(device, unet.dtype), states.to(device, unet.dtype)
    return latents.requires_grad_(grad), torch.tensor([500] * batch, device=device), states.requires_grad_(grad)


def _forward_call(pipe: Any, batch: int, resolution: int, config: Any) -> Callable[[], None]:
    """One denoising or inversion step's UNet call, as :func:`~diffii_datasets.diffusion.pipeline.predict_noise`."""
    import torch

    from diffii_datasets.diffusion.pipeline import model_autocast

    latents, timesteps, states = _inputs(pipe, batch, resolution, grad=False)

    def call() -> None:
        with torch.no_grad(), model_autocast(pipe, _knob(config, "autocast_dtype", None)):
            pipe.unet(latents, timesteps, encoder_hidden_states=states, return_dict=False)

    return call


def _concept_call(pipe: Any, batch: int, resolution: int, config: Any) -> Callable[[], None]:
    """One concept-learning step's UNet forward and backward pass, under the trainer's mixed precision."""
    import torch

    latents, timesteps, states = _inputs(pipe, batch, resolution, grad=True)
    device = latents.device
    amp = None
    if _knob(config, "concept_mixed_precision", False) and device.type == "cuda":
        half = (torch.float16, torch.bfloat16)
        amp = pipe.unet.dtype if pipe.unet.dtype in half else (
            torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    def call() -> None:
        with _checkpointing(pipe.unet, _knob(config, "concept_gradient_checkpointing", False)):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = pipe.unet(latents, timesteps, encoder_hidden_states=states, return_dict=False)[0]
            torch.autograd.grad(out.float().square().mean(), [latents, states])

    return call


@contextlib.contextmanager
def _checkpointing(unet: Any, wanted: bool) -> Iterator[None]:
    """The UNet with gradient checkpointing as concept learning runs it, then as it was."""
    was = bool(getattr(unet, "is_gradient_checkpointing", False))
    if wanted != was:
        unet.enable_gradient_checkpointing() if wanted else unet.disable_gradient_checkpointing()
    try:
        yield
    finally:
        if wanted != was:
            unet.disable_gradient_checkpointing() if wanted else unet.enable_gradient_checkpointing()


def _measure(call: Callable[[], None], device: Any) -> float:
    """Seconds of one call after a warm-up (which pays one-time costs): the fastest of :data:`PROBE_CALLS`, or of
    one when the warm-up was slower than :data:`SLOW_CALL_SECONDS`."""
    warm_up = _timed(call, device)
    return min(_timed(call, device) for _ in range(1 if warm_up >= SLOW_CALL_SECONDS else PROBE_CALLS))


def _timed(call: Callable[[], None], device: Any) -> float:
    _synchronize(device)
    start = time.perf_counter()
    call()
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
