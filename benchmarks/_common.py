"""Shared pieces of the benchmarks: command line, models, timing, memory, tables and the closing figures.

Every benchmark compares two things measured in the same process, one after the
other, so that the figure it reports is a ratio that survives a noisy, shared
machine. A benchmark reports; it does not judge: it exits non-zero only when it
crashes, never because a figure misses its target.
"""

from __future__ import annotations

import os

# Offline before anything imports huggingface_hub: the benchmarks never download.
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

SIZES = ("tiny", "small", "sd15")


def parse_args(description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every benchmark takes, plus its own; sets the thread count and prints the machine."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few steps: a smoke run of a few seconds, figures not meaningful")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own, the number of cores)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    quiet_libraries()
    print(f"# {description}")
    print(f"# machine: {machine()}")
    return args


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming where the figures come from."""
    parts = [f"{os.cpu_count()} cores ({cpu_model()})", f"torch {torch.__version__.split('+')[0]}",
             f"{torch.get_num_threads()} threads"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return ", ".join(parts)


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def quiet_libraries() -> None:
    """No download/loading progress bars or advisory warnings from diffusers and transformers in the tables."""
    import diffusers
    import transformers

    warnings.filterwarnings("ignore", message=".*`torch_dtype` is deprecated", category=FutureWarning)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


# -- models ------------------------------------------------------------------------------------------------------------


def build_pipeline(size: str, device: torch.device, *, seed: int = 0, dtype: torch.dtype | None = None):
    """The pipeline a benchmark measures: ``tiny`` (the test pipeline), ``small`` or ``sd15`` (SD-shaped, random)."""
    from diffii_datasets.testing import sd_shaped_pipeline, tiny_pipeline

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    dtype = dtype or default_dtype(device)
    if size == "tiny":
        return tiny_pipeline(seed, torch_dtype=dtype, device=device)
    return sd_shaped_pipeline(size, seed, torch_dtype=dtype, device=device)


def default_dtype(device: torch.device) -> torch.dtype:
    """What :func:`diffii_datasets.diffusion.load_pipeline` picks: fp16 on CUDA, fp32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def resolution(pipe) -> int:
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


# -- timing ------------------------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def stopwatch(device: torch.device | None = None) -> Iterator[list[float]]:
    """``with stopwatch() as elapsed: ...``; afterwards ``elapsed[0]`` holds the wall seconds."""
    elapsed: list[float] = []
    if device is not None:
        synchronize(device)
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        if device is not None:
            synchronize(device)
        elapsed.append(time.perf_counter() - start)


class ModuleTimer:
    """Wall time spent inside the forward calls of some modules, through forward hooks.

    The modules must not nest (no timed module calls another), so no second is counted twice.
    """

    def __init__(self, modules: dict[str, torch.nn.Module], device: torch.device | None = None) -> None:
        self.seconds = dict.fromkeys(modules, 0.0)
        self.calls = dict.fromkeys(modules, 0)
        self._device = device
        self._start: dict[str, float] = {}
        self._handles = []
        for name, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._enter(name)))
            self._handles.append(module.register_forward_hook(self._leave(name)))

    def _enter(self, name: str):
        def hook(module, args):
            if self._device is not None:
                synchronize(self._device)
            self._start[name] = time.perf_counter()
        return hook

    def _leave(self, name: str):
        def hook(module, args, output):
            if self._device is not None:
                synchronize(self._device)
            self.seconds[name] += time.perf_counter() - self._start.pop(name)
            self.calls[name] += 1
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


# -- what limits a run -------------------------------------------------------------------------------------------------


def unet_inputs(pipe, batch: int, device: torch.device):
    side = int(pipe.unet.config.sample_size)
    latents = torch.randn(batch, int(pipe.unet.config.in_channels), side, side, device=device, dtype=pipe.unet.dtype)
    text = torch.randn(batch, 77, int(pipe.unet.config.cross_attention_dim), device=device, dtype=pipe.unet.dtype)
    return latents, torch.tensor(500, device=device), text


@torch.no_grad()
def unet_ms_per_image(pipe, batch: int, device: torch.device, autocast_dtype: str | None = None,
                      repeats: int = 5) -> float:
    """Best-of-``repeats`` milliseconds of one UNet forward call per batch row."""
    from diffii_datasets.diffusion.pipeline import model_autocast

    latents, timestep, text = unet_inputs(pipe, batch, device)
    best = float("inf")
    with model_autocast(pipe, autocast_dtype):
        pipe.unet(latents, timestep, encoder_hidden_states=text)
        for _ in range(repeats):
            with stopwatch(device) as elapsed:
                pipe.unet(latents, timestep, encoder_hidden_states=text)
            best = min(best, elapsed[0])
    return 1000 * best / batch


@torch.no_grad()
def unet_top_ops(pipe, batch: int, device: torch.device, autocast_dtype: str | None = None,
                 count: int = 3) -> str:
    """The operators taking most of one UNet call's time, as ``"name 41%, name 23%, ..."`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from diffii_datasets.diffusion.pipeline import model_autocast

    latents, timestep, text = unet_inputs(pipe, batch, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with model_autocast(pipe, autocast_dtype):
        pipe.unet(latents, timestep, encoder_hidden_states=text)
        with profile(activities=activities) as profiler:
            pipe.unet(latents, timestep, encoder_hidden_states=text)
            synchronize(device)
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(profiler.key_averages(), key=lambda e: getattr(e, attribute), reverse=True)
    total = sum(getattr(e, attribute) for e in events) or 1.0
    return ", ".join(f"{e.key.removeprefix('aten::')} {100 * getattr(e, attribute) / total:.0f}%"
                     for e in events[:count])


def batching_note(pipe, device: torch.device, baseline_batch: int, engine_batch: int,
                  autocast_dtypes: Sequence[str | None]) -> str:
    """What bounds an engine that batches: the UNet's cost per image at the baseline's and the engine's batch."""
    parts = []
    baseline_ms = unet_ms_per_image(pipe, baseline_batch, device)
    for autocast_dtype in autocast_dtypes:
        engine_ms = unet_ms_per_image(pipe, engine_batch, device, autocast_dtype)
        label = f"{autocast_dtype} autocast" if autocast_dtype else str(pipe.unet.dtype).removeprefix("torch.")
        parts.append(f"{engine_ms:.1f} ms at batch {engine_batch} in {label} (at most {baseline_ms / engine_ms:.2f}x)")
    top = unet_top_ops(pipe, engine_batch, device)
    return (f"one UNet call costs {baseline_ms:.1f} ms per row at the baseline's batch {baseline_batch}, "
            + "; ".join(parts) + f": the UNet's work per image bounds the speedup; where its time goes at batch "
            f"{engine_batch}: {top}")


# -- memory ------------------------------------------------------------------------------------------------------------


def rss_mib() -> tuple[float, float]:
    """``(current, peak)`` resident set size of this process in MiB, from ``/proc/self/status``."""
    values = {}
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _unit = line.split()
                values[key[:-1]] = int(amount) / 1024
    return values["VmRSS"], values["VmHWM"]


# -- output ------------------------------------------------------------------------------------------------------------


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A small fixed-width table."""
    cells = [[str(h) for h in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  " + "  ".join(cell.rjust(width) if i else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))))
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


class Figures:
    """The closing lines, ``name: value (target ...)``, printed last, one per figure."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self.notes: list[str] = []

    def add(self, name: str, value: float, unit: str, target: str) -> None:
        self._lines.append(f"{name}: {value:.3g}{unit} (target {target})")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def print(self) -> None:
        if self.notes:
            print()
            for text in self.notes:
                print(f"note: {text}")
        print()
        for line in self._lines:
            print(line)


def run_sizes(args: argparse.Namespace, bench_size: Callable[[str, argparse.Namespace, Figures], None], *,
              quick_steps: int, note: str) -> None:
    """Run ``bench_size`` at each model size and print the figures with ``note``.

    The sizes are ``--sizes``, else ``tiny`` with ``--quick``, else tiny and SD-1.5 on a GPU, tiny and small on a
    CPU; ``--quick`` also caps ``--steps`` at ``quick_steps``; ``--rounds`` defaults to 3 on tiny, 1 elsewhere.
    """
    if args.sizes:
        sizes = args.sizes.split(",")
    elif args.quick:
        sizes = ["tiny"]
    else:
        sizes = ["tiny", "sd15"] if args.device.type == "cuda" else ["tiny", "small"]
    if args.quick:
        args.steps = min(args.steps, quick_steps)
    figures = Figures()
    rounds = args.rounds
    for size in sizes:
        args.rounds = rounds or (1 if args.quick or size != "tiny" else 3)
        bench_size(size, args, figures)
    figures.note(note)
    figures.print()
