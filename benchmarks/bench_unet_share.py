"""Benchmark 3: distance to the limit, the share of generation wall time spent inside UNet forward calls.

Generates one synthetic set end to end through ``DiffIIAugmented.prepare()``
(ready-made concepts applied, the paper's settings: 200 inversion steps, 25
denoising steps, guidance 7.5, expansion rate 5) on the small SD-shaped
pipeline, with forward hooks timing the UNet, the VAE encoder and decoder and the
text encoder. Everything outside those calls (scheduler steps, interpolation,
PNG encoding, disk writes and fsyncs, concept loading, store bookkeeping) is
"other". The UNet is the limit: no engine can run faster than its UNet calls.

    python benchmarks/bench_unet_share.py            # small pipeline
    python benchmarks/bench_unet_share.py --quick    # tiny pipeline, few steps: a smoke run
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common


def add_arguments(parser) -> None:
    parser.add_argument("--size", default=None, help="tiny, small or sd15 (default: small; tiny with --quick)")
    parser.add_argument("--classes", type=int, default=1)
    parser.add_argument("--real", type=int, default=2, help="real images per class")


def main() -> None:
    args = _common.parse_args("Distance to the limit: share of generation wall time inside UNet forward calls",
                              add_arguments)
    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.diffusion import ConceptConfig, learn_concepts
    from diffii_datasets.testing import tiny_image_dataset

    size = args.size or ("tiny" if args.quick else "small")
    pipe = _common.build_pipeline(size, args.device)
    resolution = _common.resolution(pipe)
    dataset = tiny_image_dataset(num_classes=args.classes, per_class=args.real, size=resolution, seed=0)
    images_by_class = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c]
                       for c in range(args.classes)]
    # Ready-made concepts (one learning step: their values do not change the cost of generating with them).
    concepts = learn_concepts(pipe, images_by_class, dataset.classes, "shape",
                              ConceptConfig(train_steps=1, batch_size=2, resolution=resolution), progress=False)
    steps = {"inversion_steps": 4, "denoising_steps": 3} if args.quick else {}
    config = DiffIIConfig(resolution=resolution, expansion_rate=5.0, batch_size=8, suffixes="builtin", seed=0,
                          **steps)

    modules = {"UNet": pipe.unet, "VAE decoder": pipe.vae.decoder, "VAE encoder": pipe.vae.encoder,
               "text encoder": pipe.text_encoder}
    with tempfile.TemporaryDirectory(prefix="bench-unet-share-") as cache_dir:
        augmented = DiffIIAugmented(dataset, "shape", config=config, pipeline=pipe, concepts=concepts,
                                    cache_dir=cache_dir, progress=False)
        timer = _common.ModuleTimer(modules, args.device)
        try:
            with _common.stopwatch(args.device) as elapsed:
                augmented.prepare()
        finally:
            timer.remove()
        generated = len(augmented.synthetic)
        on_disk = sum(p.stat().st_size for p in Path(cache_dir).rglob("*") if p.is_file())
    total = elapsed[0]
    other = total - sum(timer.seconds.values())
    rows = [[name, timer.calls[name], seconds, 100 * seconds / total] for name, seconds in timer.seconds.items()]
    rows.append(["other (scheduler, interpolation, PNG, disk, concepts, store)", "", other, 100 * other / total])
    rows.append(["total", "", total, 100.0])
    _common.print_table(
        f"prepare() of {args.classes} class(es) x {args.real} real images -> {generated} synthetic, {size} pipeline "
        f"({resolution}px, {config.inversion_steps} inversion + {config.denoising_steps} denoising steps), "
        f"{on_disk / 2**20:.1f} MiB written",
        ["part", "calls", "seconds", "% of wall time"], rows)
    figures = _common.Figures()
    share = timer.seconds["UNet"] / total
    figures.add(f"unet_share_{size}", 100 * share, "%", ">= 85%")
    figures.add(f"non_unet_share_{size}", 100 * (1 - share), "%", "< 15%")
    figures.print()


if __name__ == "__main__":
    main()
