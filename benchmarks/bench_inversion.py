"""Benchmark 2: inversion throughput, batched ``ddim_invert`` against per-image inversion.

Same pipeline object, same images, same settings (200 DDIM-inverse steps,
guidance 1.0, the class prompt): the baseline (``_baseline.invert_one``) inverts
one image at a time as the authors' scripts do, encoding its prompt for it; the
engine inverts ``batch_size`` images per UNet call with the prompt encoded once.
On a CPU with native bfloat16 the engine also runs with its opt-in
``autocast_dtype="bfloat16"``.

    python benchmarks/bench_inversion.py            # tiny and small
    python benchmarks/bench_inversion.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import _baseline
import _common
import torch

PROMPT = "a photo of a sparrow bird"
IMAGES = {"tiny": 8, "small": 4, "sd15": 8}
TARGETS = {"tiny": ">= 5x", "small": ">= 1.5x", "sd15": ">= 5x"}


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default=None,
                        help="comma-separated sizes among tiny, small, sd15 (default: tiny,small; tiny,sd15 on CUDA)")
    parser.add_argument("--images", type=int, default=None, help="images to invert (default per size)")
    parser.add_argument("--steps", type=int, default=200, help="DDIM-inverse steps")
    parser.add_argument("--rounds", type=int, default=None,
                        help="repetitions, best kept (default: 3 for tiny, 1 for the larger sizes)")


def engine(pipe, images, steps: int, autocast_dtype: str | None) -> torch.Tensor:
    from diffii_datasets.diffusion import ddim_invert

    return ddim_invert(pipe, images, PROMPT, steps, 1.0, batch_size=8, autocast_dtype=autocast_dtype)


def baseline(pipe, images, steps: int) -> torch.Tensor:
    return torch.stack([_baseline.invert_one(pipe, image, PROMPT, steps) for image in images])


def bench_size(size: str, args, figures: _common.Figures) -> None:
    from diffii_datasets.testing import tiny_image_dataset

    pipe = _common.build_pipeline(size, args.device)
    resolution = _common.resolution(pipe)
    count = args.images or (2 if args.quick else IMAGES[size])
    dataset = tiny_image_dataset(num_classes=1, per_class=count, size=resolution, seed=0)
    images = [dataset[i][0] for i in range(count)]
    runs = {"baseline": lambda steps: baseline(pipe, images, steps), None: lambda steps: engine(pipe, images, steps,
                                                                                                None)}
    labels = {"baseline": "baseline (per image)", None: "engine (batched)"}
    if args.device.type == "cpu" and _common.cpu_supports_bf16():
        runs["bfloat16"] = lambda steps: engine(pipe, images, steps, "bfloat16")
        labels["bfloat16"] = "engine, bf16 autocast"
    for run in runs.values():  # warm-up: one step of each path
        run(1)
    seconds = dict.fromkeys(runs, float("inf"))
    results = {}
    for round_index in range(args.rounds):
        keys = list(runs)
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            with _common.stopwatch(args.device) as elapsed:
                results[key] = runs[key](args.steps)
            seconds[key] = min(seconds[key], elapsed[0])
    reference = results["baseline"].float().cpu()
    rows = []
    speedups = {}
    for key in runs:
        speedups[key] = seconds["baseline"] / seconds[key]
        error = float((results[key].float().cpu() - reference).norm() / reference.norm())
        rows.append([labels[key], count, seconds[key], count / seconds[key], speedups[key], error])
    _common.print_table(
        f"inversion, {size} pipeline ({resolution}px, {str(pipe.unet.dtype).removeprefix('torch.')}, {args.steps} "
        f"steps, guidance 1.0, engine batch 8, best of {args.rounds})",
        ["run", "images", "seconds", "images/s", "speedup", "relative diff of x_T"], rows)
    figures.note(f"{size}: " + _common.batching_note(pipe, args.device, 1, min(8, count),
                                                     [key for key in runs if key != "baseline"]))
    precision = "fp16" if pipe.unet.dtype == torch.float16 else "fp32"
    figures.add(f"inversion_speedup_{size}_{precision}", speedups[None], "x", TARGETS[size])
    if "bfloat16" in speedups:
        figures.add(f"inversion_speedup_{size}_bf16", speedups["bfloat16"], "x", TARGETS[size])


def main() -> None:
    args = _common.parse_args("Inversion throughput: batched ddim_invert vs per-image inversion", add_arguments)
    _common.run_sizes(args, bench_size, quick_steps=5,
                      note="relative diff of x_T: |x_T - x_T(baseline)| / |x_T(baseline)|; fp32 agrees up to rounding")


if __name__ == "__main__":
    main()
