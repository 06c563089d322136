"""Benchmark 1: generation throughput of the engine against the authors' per-image procedure.

Both start from the same saved pipeline and the same inversion pools, settings
and random draws (25 DDIM steps, guidance 7.5, split ratio 0.3, two suffixes)
and produce the same images. The baseline (``_baseline.py``) reloads the
pipeline for every class and makes one image at a time; the engine
(``generate_class``) loads it once, encodes each distinct prompt once per class
and denoises ``batch_size`` latents per UNet call. On a CPU with native
bfloat16 the engine also runs with its opt-in ``autocast_dtype="bfloat16"``
(fp32 stays the default).

    python benchmarks/bench_generation.py            # tiny and small on CPU; tiny and sd15 (fp16) on CUDA
    python benchmarks/bench_generation.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import dataclasses
import tempfile

import _baseline
import _common
import numpy as np
import torch

TOKENS, METACLASS = "sparrow", "bird"
SUFFIXES = ["standing on a tree branch.", "flying in the sky."]
REAL_PER_CLASS = 4
IMAGES_PER_CLASS = {"tiny": 16, "small": 8, "sd15": 16}
TARGETS = {"tiny": ">= 5x", "small": ">= 1.5x", "sd15": ">= 5x"}


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default=None,
                        help="comma-separated sizes among tiny, small, sd15 (default: tiny,small on CPU, "
                             "tiny,sd15 on CUDA)")
    parser.add_argument("--classes", type=int, default=2, help="classes (each reloads the baseline's pipeline)")
    parser.add_argument("--images", type=int, default=None, help="synthetic images per class (default per size)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--rounds", type=int, default=None,
                        help="repetitions, best kept (default: 3 for tiny, 1 for the larger sizes)")


@dataclasses.dataclass
class Job:
    model_dir: str
    device: torch.device
    dtype: torch.dtype
    config: object  # GenerationConfig
    inversions: list[torch.Tensor]


def make_job(size: str, args, model_dir: str) -> Job:
    from diffii_datasets.diffusion import GenerationConfig
    from diffii_datasets.diffusion.pipeline import latent_shape

    pipe = _common.build_pipeline(size, args.device)
    pipe.save_pretrained(model_dir)
    images = args.images or (4 if args.quick else IMAGES_PER_CLASS[size])
    real = min(REAL_PER_CLASS, max(2, images))  # at least a pair to interpolate
    config = GenerationConfig(expansion_rate=images / real, split_ratio=0.3, denoising_steps=args.steps,
                              guidance_scale=7.5, batch_size=8, resolution=_common.resolution(pipe))
    generator = torch.Generator().manual_seed(0)
    inversions = [torch.randn((real, *latent_shape(pipe)), generator=generator) for _ in range(args.classes)]
    return Job(model_dir, args.device, _common.default_dtype(args.device), config, inversions)


def load_engine_pipeline(job: Job):
    """The engine loads the pipeline once per run (timed: it is part of the engine's cost)."""
    from diffii_datasets.diffusion import load_pipeline

    with _common.stopwatch(job.device) as elapsed:
        pipe = load_pipeline(job.model_dir, device=job.device, torch_dtype=job.dtype)
        pipe.set_progress_bar_config(disable=True)
    return pipe, elapsed[0]


def engine_class(pipe, job: Job, class_index: int, autocast_dtype: str | None, steps: int | None = None) -> list:
    """One class through ``generate_class``, batched, prompts encoded once."""
    from diffii_datasets.diffusion import generate_class

    config = dataclasses.replace(job.config, autocast_dtype=autocast_dtype,
                                 denoising_steps=steps or job.config.denoising_steps)
    return [sample.image for sample in generate_class(pipe, job.inversions[class_index], TOKENS, METACLASS, SUFFIXES,
                                                      config, seed=0, class_index=class_index)]


def baseline_class(job: Job, class_index: int, steps: int | None = None) -> list:
    """The authors' procedure for one class: reload the pipeline, then one image at a time."""
    from diffii_datasets.diffusion import build_prompt, class_seed, normalize_suffix, num_synthetic
    from diffii_datasets.diffusion.generator import plan_class

    # The engine's own random draws, so the baseline makes the very same images (drawing them costs microseconds).
    inversions = job.inversions[class_index]
    generator = torch.Generator().manual_seed(class_seed(0, class_index))
    count = num_synthetic(inversions.shape[0], job.config.expansion_rate)
    plan = plan_class(inversions.shape[0], count, len(SUFFIXES), tuple(inversions.shape[1:]), generator)
    prompt = build_prompt(TOKENS, METACLASS)
    suffixed = [build_prompt(TOKENS, METACLASS, normalize_suffix(s, METACLASS)) for s in SUFFIXES]
    config = dataclasses.replace(job.config, denoising_steps=steps or job.config.denoising_steps)
    return _baseline.generate_class(job.model_dir, job.device, job.dtype, inversions, plan, prompt, suffixed, config)


def max_pixel_difference(images, reference) -> int:
    return max(int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())
               for a, b in zip(images, reference))


def bench_size(size: str, args, figures: _common.Figures) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-generation-{size}-") as model_dir:
        job = make_job(size, args, model_dir)
        pipe, load_s = load_engine_pipeline(job)
        runs = {"baseline": lambda c: baseline_class(job, c)}
        labels = {"baseline": "baseline (authors' per-image)", None: "engine"}
        runs[None] = lambda c: engine_class(pipe, job, c, None)
        if args.device.type == "cpu" and _common.cpu_supports_bf16():
            runs["bfloat16"] = lambda c: engine_class(pipe, job, c, "bfloat16")
            labels["bfloat16"] = "engine, bf16 autocast"
        # Warm-up, one step of each path: first calls build kernels and caches that the timed runs reuse.
        baseline_class(job, 0, steps=1)
        for autocast in [key for key in runs if key != "baseline"]:
            engine_class(pipe, job, 0, autocast, steps=1)
        # Classes interleaved, the order rotated, the best of `rounds` kept: fair under a load that comes and goes.
        seconds = {key: [float("inf")] * args.classes for key in runs}
        images: dict = {}
        for round_index in range(args.rounds):
            for class_index in range(args.classes):
                keys = list(runs)
                shift = (round_index + class_index) % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    with _common.stopwatch(job.device) as elapsed:
                        result = runs[key](class_index)
                    seconds[key][class_index] = min(seconds[key][class_index], elapsed[0])
                    images.setdefault(key, {})[class_index] = result
    baseline = [image for c in range(args.classes) for image in images["baseline"][c]]
    baseline_s = sum(seconds["baseline"])
    rows = [[labels["baseline"], len(baseline), baseline_s, len(baseline) / baseline_s, 1.0, 0]]
    speedups = {}
    for key in [key for key in runs if key != "baseline"]:
        made = [image for c in range(args.classes) for image in images[key][c]]
        total = load_s + sum(seconds[key])
        speedups[key] = baseline_s / total
        rows.append([labels[key], len(made), total, len(made) / total, speedups[key],
                     max_pixel_difference(made, baseline)])
    _common.print_table(
        f"generation, {size} pipeline ({job.config.resolution}px, {str(job.dtype).removeprefix('torch.')}, "
        f"{args.classes} classes, {job.config.denoising_steps} steps, engine batch {job.config.batch_size}, "
        f"best of {args.rounds}; engine seconds include its one pipeline load, {load_s:.2f} s)",
        ["run", "images", "seconds", "images/s", "speedup", "max |pixel diff|"], rows)
    batch = 2 * job.config.batch_size  # classifier-free guidance doubles the UNet batch
    figures.note(f"{size}: " + _common.batching_note(pipe, args.device, 2, batch,
                                                     [key for key in runs if key != "baseline"]))
    precision = "fp16" if job.dtype == torch.float16 else "fp32"
    figures.add(f"generation_speedup_{size}_{precision}", speedups[None], "x", TARGETS[size])
    if "bfloat16" in speedups:
        figures.add(f"generation_speedup_{size}_bf16", speedups["bfloat16"], "x", TARGETS[size])


def main() -> None:
    args = _common.parse_args("Generation throughput: engine vs the authors' per-image procedure", add_arguments)
    _common.run_sizes(args, bench_size, quick_steps=3,
                      note="max |pixel diff| compares each engine image with the baseline's image of the same draws "
                           "(0-255 scale): fp32 agrees up to rounding, bf16 autocast changes pixels a little")


if __name__ == "__main__":
    main()
