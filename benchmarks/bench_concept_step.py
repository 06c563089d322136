"""Benchmark 4: the cost of a concept-learning step, and of a paper setting end to end.

Three comparisons on one pipeline, each as a ratio of median step times (runs
alternated):

- cached latents vs encoding every step. The engine (``learn_concepts``) VAE-encodes
  every crop it can draw of each training image, and its mirror image, once, and
  samples the cached posterior every step. The baseline is the same training loop
  plus, every step, what the published script (Diff-Mix's ``train_lora.py``) does
  before the UNet: resize the short side to 224, a random 224 crop, a random flip,
  the VAE encoder and a posterior sample, for the whole batch.
- the default step now (the published recipe: 224 px, random crop, posterior sample,
  clipping) vs the default step of diffii-datasets 0.1 (512 px, the image squashed to
  a square, the posterior mean), on the same SD-shaped pipeline.
- the cost model of ``cub-5shot`` (200 classes x 5 images): how many UNet evaluations
  concept learning, inversion and generation take at the defaults, before and after,
  priced with UNet times measured here at SD-1.5's resolutions.

Both run the released recipe's step (batch 8, LoRA rank 10 on the attention
projections, one token per class).

    python benchmarks/bench_concept_step.py                 # small pipeline (SD-shaped), CPU
    python benchmarks/bench_concept_step.py --device cuda   # sd15 (SD-1.5's exact shapes)
    python benchmarks/bench_concept_step.py --quick         # tiny pipeline, 3 steps: a smoke run
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import _common
import torch

# cub-5shot at the defaults: 200 classes of 5 images, 35,000 concept steps of 8, 200 inversion steps at guidance 1
# (one UNet row per image and step), expansion 5 (int(5 * 5) = 25 images per class), 25 DDIM steps at CFG 7.5
# (two UNet rows per image and step).
CUB_5SHOT = {"images": 200 * 5, "concept_rows": 35000 * 8, "inversion_steps": 200, "synthetic": 200 * 25,
             "denoising_rows": 25 * 2}
SD15_GENERATION = 512  # SD-1.5's own resolution: generation, inversion and 0.1's concept learning


def add_arguments(parser) -> None:
    parser.add_argument("--size", default=None, help="tiny, small or sd15 (default: small; sd15 on CUDA; "
                                                     "tiny with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default 6; 3 with --quick)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternated")


class PublishedPerStepEncoding:
    """The published per-step input pipeline, run as the step callback: a fresh batch through the VAE each step."""

    def __init__(self, pipe, images, batch_size: int, resolution: int, seed: int = 0) -> None:
        from torchvision.transforms import v2

        self.pipe, self.images, self.batch_size = pipe, images, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.transform = v2.Compose([v2.PILToTensor(), v2.Resize(resolution), v2.RandomCrop(resolution),
                                     v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize([0.5], [0.5])])

    def __call__(self, step: int, loss: float) -> None:
        indices = torch.randint(len(self.images), (self.batch_size,), generator=self.generator)
        pixels = torch.stack([self.transform(self.images[i]) for i in indices.tolist()])
        vae = self.pipe.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.sample()
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


@torch.no_grad()
def unet_seconds_per_row(pipe, batch: int, side: int, device: torch.device, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds of one UNet forward call at ``side`` pixels, per batch row."""
    latent = side // int(pipe.vae_scale_factor)
    latents = torch.randn(batch, 4, latent, latent, device=device, dtype=pipe.unet.dtype)
    text = torch.randn(batch, 77, int(pipe.unet.config.cross_attention_dim), device=device, dtype=pipe.unet.dtype)
    timestep = torch.tensor(500, device=device)
    pipe.unet(latents, timestep, encoder_hidden_states=text)
    best = float("inf")
    for _ in range(repeats):
        with _common.stopwatch(device) as elapsed:
            pipe.unet(latents, timestep, encoder_hidden_states=text)
        best = min(best, elapsed[0])
    return best / batch


def training_images(size: int, count: int = 8):
    """Two classes of 4:3 images (CUB's images are about 500 x 375), so the random crops have room to move."""
    from diffii_datasets.testing import tiny_image_dataset

    dataset = tiny_image_dataset(num_classes=2, per_class=count // 2, size=size, seed=0)
    width = size * 4 // 3
    images = [[dataset[i][0].resize((width, size)) for i in range(len(dataset)) if dataset.targets[i] == c]
              for c in range(2)]
    return images, dataset.classes


def main() -> None:
    args = _common.parse_args("Concept-learning step: cached latents vs encoding every step; the published "
                              "recipe vs 0.1's; the cost of cub-5shot", add_arguments)
    from diffii_datasets.diffusion import ConceptConfig, learn_concepts
    from diffii_datasets.diffusion.concepts.config import RECIPE_0_1

    size = args.size or ("tiny" if args.quick else "sd15" if args.device.type == "cuda" else "small")
    steps = args.steps or (3 if args.quick else 6)
    rounds = 1 if args.quick else args.rounds
    pipe = _common.build_pipeline(size, args.device)
    own = _common.resolution(pipe)
    # Quick: everything at the tiny pipeline's own size (the figures mean nothing there).
    new_side = own if args.quick else ConceptConfig().resolution
    old_side = own if args.quick else SD15_GENERATION
    generation_side = own if args.quick else SD15_GENERATION
    images_by_class, names = training_images(max(new_side, 48))
    all_images = [image for images in images_by_class for image in images]
    common = {"train_steps": steps + 1, "batch_size": 8}
    kinds = {
        "published": ConceptConfig(resolution=new_side, **common),  # plus the per-step encode below
        "now": ConceptConfig(resolution=new_side, **common),
        "0.1": ConceptConfig(**{**RECIPE_0_1, "resolution": old_side}, **common),
    }
    if not args.quick and own != old_side:
        kinds["0.1 own"] = ConceptConfig(**{**RECIPE_0_1, "resolution": own}, **common)

    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_index in range(rounds):
        order = list(kinds) if round_index % 2 == 0 else list(kinds)[::-1]
        for kind in order:
            extra = (PublishedPerStepEncoding(pipe, all_images, 8, new_side, seed=round_index)
                     if kind == "published" else None)
            clock = StepClock(args.device, extra)
            learn_concepts(pipe, images_by_class, names, "shape", dataclasses.replace(kinds[kind], seed=round_index),
                           progress=False, callback=clock)
            times[kind] += clock.step_seconds()
    median = {kind: statistics.median(values) for kind, values in times.items()}
    speedup = median["published"] / median["now"]
    old_over_new = median["0.1"] / median["now"]
    labels = {
        "published": f"published: {new_side}px random crop, VAE encode + sample every step",
        "now": f"now (default): {new_side}px random crop, posterior cached per crop, sampled every step",
        "0.1": f"0.1 default: {old_side}px square squash, cached posterior mean",
        "0.1 own": f"0.1 default at this pipeline's own {own}px",
    }
    rows = [[labels[kind], len(times[kind]), median[kind], median[kind] / median["now"]] for kind in kinds]
    _common.print_table(f"concept-learning step, {size} pipeline (batch 8, LoRA rank 10, {rounds} alternated runs "
                        f"of {steps} timed steps each)", ["step", "steps timed", "median s/step", "x now"], rows)

    # The cost model of cub-5shot, priced with this pipeline's UNet at SD-1.5's resolutions.
    inversion_row = unet_seconds_per_row(pipe, 8, generation_side, args.device)
    generation_row = unet_seconds_per_row(pipe, 16, generation_side, args.device)
    unit = inversion_row  # one UNet forward row at the generation resolution
    concept_rows = CUB_5SHOT["concept_rows"]
    inversion_rows = CUB_5SHOT["images"] * CUB_5SHOT["inversion_steps"]
    generation_rows = CUB_5SHOT["synthetic"] * CUB_5SHOT["denoising_rows"]
    stages = {
        "concepts": {"0.1": concept_rows * median["0.1"] / 8, "now": concept_rows * median["now"] / 8,
                     "published": concept_rows * median["published"] / 8},
        "inversion": dict.fromkeys(("0.1", "now", "published"), inversion_rows * inversion_row),
        "generation": dict.fromkeys(("0.1", "now", "published"), generation_rows * generation_row),
    }
    totals = {kind: sum(stage[kind] for stage in stages.values()) for kind in ("0.1", "now", "published")}
    counts = {"concepts": f"{concept_rows:,} training rows ({concept_rows // 8:,} steps of 8)",
              "inversion": f"{inversion_rows:,} forward rows (1000 images x 200 steps)",
              "generation": f"{generation_rows:,} forward rows (5000 images x 25 steps x 2, CFG)"}
    cost_rows = [[stage, counts[stage], *(stages[stage][kind] / unit for kind in ("0.1", "now", "published")),
                  *(f"{100 * stages[stage][kind] / totals[kind]:.0f}%" for kind in ("0.1", "now"))]
                 for stage in stages]
    cost_rows.append(["total", "", *(totals[kind] / unit for kind in ("0.1", "now", "published")), "100%", "100%"])
    _common.print_table(
        f"cost model of cub-5shot in {generation_side}px UNet forward rows (one = {1000 * unit:.1f} ms on this "
        f"pipeline); concepts {old_side}px (0.1) / {new_side}px (now, published)",
        ["stage", "UNet evaluations", "0.1", "now", "published", "share 0.1", "share now"], cost_rows)

    figures = _common.Figures()
    figures.note(f"cub-5shot end to end: 0.1's defaults cost {totals['0.1'] / totals['now']:.2f}x today's, the "
                 f"published recipe as its authors run it {totals['published'] / totals['now']:.2f}x today's")
    figures.add(f"concept_step_speedup_{size}", speedup, "x", ">= 1.15x")
    figures.add(f"concept_step_0_1_default_over_now_{size}", old_over_new, "x", ">= 5x")
    figures.print()


if __name__ == "__main__":
    main()
