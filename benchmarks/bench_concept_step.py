"""Benchmark 4: a concept-learning step with cached VAE latents against one that encodes the images every step.

The engine (``learn_concepts``) VAE-encodes every training image and its mirror
image once and samples cached latents each step. The baseline is the same
training loop plus, every step, what the diffusers example scripts
(``textual_inversion.py``, ``train_text_to_image_lora.py``) do before the UNet:
turn the batch's images into normalised tensors with a random flip and encode
them through the VAE (``latent_dist.sample()``). Both run the released recipe's
step (batch 8, LoRA rank 10 on the attention projections, one token per class)
on the same pipeline; the figure is the ratio of median step times.

    python benchmarks/bench_concept_step.py            # small pipeline (SD-shaped VAE)
    python benchmarks/bench_concept_step.py --quick    # tiny pipeline, 3 steps: a smoke run
"""

from __future__ import annotations

import statistics
import time

import _common
import torch


def add_arguments(parser) -> None:
    parser.add_argument("--size", default=None, help="tiny, small or sd15 (default: small; tiny with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default 6; 3 with --quick)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternated")


class PerStepEncoding:
    """The baseline's extra work, run as the step callback: a fresh batch of images through the VAE each step."""

    def __init__(self, pipe, images, batch_size: int, resolution: int, seed: int = 0) -> None:
        from torchvision.transforms import v2

        self.pipe, self.images, self.batch_size = pipe, images, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.transform = v2.Compose([v2.PILToTensor(), v2.Resize((resolution, resolution)),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5], [0.5])])

    def __call__(self, step: int, loss: float) -> None:
        indices = torch.randint(len(self.images), (self.batch_size,), generator=self.generator)
        flips = torch.randint(2, (self.batch_size,), generator=self.generator)
        pixels = torch.stack([self.transform(self.images[i]) for i in indices.tolist()])
        pixels = torch.where(flips[:, None, None, None].bool(), pixels.flip(-1), pixels)
        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.sample(generator=None)
        (latents * vae.config.scaling_factor).sum().item()  # the latents are used: wait for them


class StepClock:
    """Seconds between consecutive step callbacks (the first step, a warm-up, is dropped)."""

    def __init__(self, device: torch.device, extra=None) -> None:
        self.device, self.extra = device, extra
        self.stamps: list[float] = []

    def __call__(self, step: int, loss: float) -> None:
        _common.synchronize(self.device)
        self.stamps.append(time.perf_counter())
        if self.extra is not None:
            self.extra(step, loss)

    def step_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


def main() -> None:
    args = _common.parse_args("Concept-learning step: cached VAE latents vs encoding every step", add_arguments)
    from diffii_datasets.diffusion import ConceptConfig, learn_concepts
    from diffii_datasets.testing import tiny_image_dataset

    size = args.size or ("tiny" if args.quick else "small")
    steps = args.steps or (3 if args.quick else 6)
    rounds = 1 if args.quick else args.rounds
    pipe = _common.build_pipeline(size, args.device)
    resolution = _common.resolution(pipe)
    dataset = tiny_image_dataset(num_classes=2, per_class=4, size=resolution, seed=0)
    images_by_class = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(2)]
    config = ConceptConfig(train_steps=steps + 1, batch_size=8, resolution=resolution)
    all_images = [image for images in images_by_class for image in images]

    times: dict[str, list[float]] = {"baseline": [], "engine": []}
    for round_index in range(rounds):
        kinds = ["engine", "baseline"] if round_index % 2 == 0 else ["baseline", "engine"]
        for kind in kinds:
            extra = PerStepEncoding(pipe, all_images, config.batch_size, resolution) if kind == "baseline" else None
            clock = StepClock(args.device, extra)
            learn_concepts(pipe, images_by_class, dataset.classes, "shape", config, seed=round_index, progress=False,
                           callback=clock)
            times[kind] += clock.step_seconds()
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    speedup = medians["baseline"] / medians["engine"]
    rows = [["baseline (VAE-encode every step)", len(times["baseline"]), medians["baseline"], 1.0],
            ["engine (cached latents)", len(times["engine"]), medians["engine"], speedup]]
    _common.print_table(
        f"concept-learning step, {size} pipeline ({resolution}px, batch {config.batch_size}, LoRA rank "
        f"{config.lora_rank}, {rounds} alternated runs of {steps} timed steps each)",
        ["run", "steps timed", "median s/step", "speedup"], rows)
    figures = _common.Figures()
    figures.add(f"concept_step_speedup_{size}", speedup, "x", ">= 1.15x")
    figures.print()


if __name__ == "__main__":
    main()
