"""Loading a Stable Diffusion pipeline once per run, and the small pieces inversion and denoising share.

The engine works on a plain :class:`diffusers.StableDiffusionPipeline`: whatever
concept tokens or LoRA weights were loaded into it are used as they are. Latents
are kept in float32 between steps (scheduler arithmetic in full precision) and
cast to the UNet's dtype only for the model call, so fp16/bf16 pipelines run
the network in half precision without accumulating rounding error over 200
inversion steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from diffii_datasets import _checks
from diffii_datasets._pretrained import from_pretrained
from diffii_datasets.diffusion.config import AUTOCAST_DTYPES

__all__ = [
    "PromptEncoder",
    "broadcast_prompts",
    "check_autocast_dtype",
    "check_latents",
    "execution_device",
    "latent_shape",
    "load_pipeline",
    "loading_bars",
    "make_scheduler",
    "model_identity",
    "model_autocast",
    "pipeline_resolution",
    "predict_noise",
]

logger = logging.getLogger(__name__)


def load_pipeline(
    model: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    torch_dtype: torch.dtype | None = None,
    local_files_only: bool | None = None,
):
    """Load a ``StableDiffusionPipeline`` from a Hub id or a local directory, ready to run.

    ``device`` defaults to CUDA when available, else CPU; ``torch_dtype`` to
    float16 on CUDA and float32 elsewhere; ``local_files_only`` to huggingface_hub's
    offline switch (``HF_HUB_OFFLINE``). The safety checker is not loaded (the
    images are training data, not user-facing output). Attention stays on
    diffusers' default SDPA processor, without slicing.
    """
    from diffusers import StableDiffusionPipeline

    if not isinstance(model, (str, os.PathLike)):
        _checks.fail(TypeError, "model", "a Hub id or a local directory", model)
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                          else "cpu")
    if torch_dtype is None:
        torch_dtype = torch.float16 if device.type == "cuda" else torch.float32
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        _checks.fail(TypeError, "torch_dtype", "a floating point torch.dtype", torch_dtype)
    source = str(Path(model).expanduser())
    if Path(source).is_dir() and not (Path(source) / "model_index.json").is_file():
        raise ValueError(f"model directory {source!r} has no model_index.json: "
                         "expected a diffusers pipeline saved with save_pretrained")
    hint = ("runwayml's SD-1.5 repo was removed; its maintained copy is stable-diffusion-v1-5/stable-diffusion-v1-5"
            if source.startswith("runwayml/") else "")
    options = {} if local_files_only is None else {"local_files_only": local_files_only}
    options[_dtype_keyword()] = torch_dtype
    pipe = from_pretrained(StableDiffusionPipeline, source, "Stable Diffusion", hint=hint, safety_checker=None,
                           feature_extractor=None, requires_safety_checker=False, **options)
    logger.info("loaded %s as %s on %s", source, torch_dtype, device)
    return pipe.to(device)


def _dtype_keyword() -> str:
    """How ``from_pretrained`` takes the dtype: ``dtype`` since diffusers 0.40 (``torch_dtype`` warns there)."""
    import diffusers

    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", diffusers.__version__).groups())
    return "dtype" if (major, minor) >= (0, 40) else "torch_dtype"


@contextlib.contextmanager
def loading_bars(show: bool) -> Iterator[None]:
    """diffusers' and transformers' own bars ("Loading pipeline components", "Loading weights") on or off."""
    if show:
        yield
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    enabled = [(library, library.is_progress_bar_enabled()) for library in (diffusers_logging, transformers_logging)]
    for library, _ in enabled:
        library.disable_progress_bar()
    try:
        yield
    finally:
        for library, was_enabled in enabled:
            if was_enabled:
                library.enable_progress_bar()


def model_identity(pipe: Any) -> str:
    """What names a pipeline in a store's fingerprint: its hub id or directory, else a hash of its weights."""
    name = getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path")
    if name:
        return str(name)
    digest = hashlib.sha256()
    for component in ("unet", "vae", "text_encoder"):
        for key, tensor in getattr(pipe, component).state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return f"weights-sha256:{digest.hexdigest()[:16]}"


def make_scheduler(pipe, scheduler_class):
    """``scheduler_class`` configured from ``pipe.scheduler.config`` (keys it does not take are left out, quietly)."""
    accepted = inspect.signature(scheduler_class.__init__).parameters
    return scheduler_class.from_config({k: v for k, v in pipe.scheduler.config.items() if k in accepted})


def pipeline_resolution(pipe) -> int:
    """The image side the pipeline's UNet was built for, in pixels (512 for SD-1.5)."""
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def latent_shape(pipe, resolution: int | None = None) -> tuple[int, int, int]:
    """``(channels, height, width)`` of one latent for square images of ``resolution`` pixels."""
    if resolution is None:
        resolution = pipeline_resolution(pipe)
    factor = int(pipe.vae_scale_factor)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0 or resolution % factor:
        raise ValueError(f"resolution must be a positive multiple of the VAE scale factor {factor}, got {resolution!r}")
    side = resolution // factor
    return int(pipe.unet.config.in_channels), side, side


def check_latents(pipe, latents: Any, resolution: int | None = None, *, name: str = "latents") -> torch.Tensor:
    """Check that ``latents`` is a float tensor ``[B, C, h, w]`` matching the pipeline and resolution."""
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(latents).__name__}")
    if not latents.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {latents.dtype}")
    expected = latent_shape(pipe, resolution)
    if latents.ndim != 4 or tuple(latents.shape[1:]) != expected:
        raise ValueError(f"{name} must have shape [B, {', '.join(map(str, expected))}] for this pipeline "
                         f"(in_channels, resolution / vae_scale_factor), got {tuple(latents.shape)}")
    return latents


def broadcast_prompts(prompts: str | Sequence[str], count: int, *, name: str = "prompts") -> list[str]:
    """One prompt per item: a single string is repeated, a sequence must have ``count`` strings."""
    if isinstance(prompts, str):
        return [prompts] * count
    if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{name} must be a str or a sequence of str, got {type(prompts).__name__}")
    if len(prompts) != count:
        raise ValueError(f"{name} must hold one prompt per latent/image ({count}), got {len(prompts)}")
    return list(prompts)


def check_autocast_dtype(value: Any, name: str = "autocast_dtype") -> torch.dtype | None:
    """``None``, or the torch dtype named by ``value`` (one of :data:`AUTOCAST_DTYPES`, or that ``torch.dtype``)."""
    if value is None:
        return None
    if isinstance(value, torch.dtype):
        value = str(value).removeprefix("torch.")
    return getattr(torch, _checks.check_choice(value, name, AUTOCAST_DTYPES, optional=True))


def model_autocast(pipe, dtype: str | torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on the pipeline's device for the UNet and VAE calls; does nothing for ``None``.

    An opt-in speed knob for float32 pipelines on hardware with fast half-precision
    matrix units (bfloat16 on CPUs with AVX512-BF16 or AMX): the networks compute in
    ``dtype`` while latents and scheduler arithmetic stay float32 between steps.
    """
    dtype = check_autocast_dtype(dtype)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(execution_device(pipe).type, dtype=dtype)


def execution_device(pipe) -> torch.device:
    """Where the pipeline runs its models (honours model CPU offload)."""
    return pipe._execution_device


class PromptEncoder:
    """Text embeddings of a pipeline, computed once per distinct prompt.

    Goes through the pipeline's own ``encode_prompt``, so textual-inversion
    tokens and LoRA on the text encoder apply exactly as in ``pipe(...)``. Keep
    one encoder per batch of work with a fixed pipeline state: it does not see
    tokens or weights loaded after a prompt was cached.
    """

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        """Embeddings ``[len(prompts), L, D]`` on the execution device, in the text encoder's dtype."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            with torch.no_grad():
                embeds, _ = self.pipe.encode_prompt(missing, execution_device(self.pipe), 1, False)
            self._cache.update(zip(missing, embeds))
        return torch.stack([self._cache[p] for p in prompts])

    def __len__(self) -> int:
        return len(self._cache)


def predict_noise(pipe, latents: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor,
                  uncond: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
    """Noise prediction in float32, with classifier-free guidance as one batched UNet call when ``uncond`` is given.

    Follows ``StableDiffusionPipeline``: the batch is ``[uncond; cond]`` and the
    guided prediction is ``uncond + guidance_scale * (cond - uncond)``.
    """
    unet = pipe.unet
    model_input = latents.to(unet.dtype)
    if uncond is not None:
        model_input = torch.cat([model_input, model_input])
        cond = torch.cat([uncond, cond])
    noise = unet(model_input, timestep, encoder_hidden_states=cond.to(unet.dtype), return_dict=False)[0].float()
    if uncond is None:
        return noise
    noise_uncond, noise_cond = noise.chunk(2)
    return noise_uncond + guidance_scale * (noise_cond - noise_uncond)
