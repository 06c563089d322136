"""How close concept learning's cached crops are to the published per-step crops (README, "Class concepts").

The published recipe crops in pixels and then encodes, every step (a fresh random
224 crop of the image resized to short side 224, through the VAE encoder).
``learn_concepts`` encodes, once, every crop at a multiple of the VAE's
downsampling factor ``f`` (and its mirror image) and draws among them. With the
SD-1.5-shaped VAE (random weights: SD-1.5's layers, not its values), this prints:

- the offset grid: which pixel crops each scheme can produce, for CUB-like sizes, and
  the Kolmogorov-Smirnov distance between the offsets a step draws (uniform over the
  grid) and the published ones (uniform over every pixel);
- the crop bound: for wide images (aspect ratio 3 to 20), how many grid offsets there
  are, how many ``max_crop_positions`` keeps (evenly spaced over the published range)
  and the KS distance of each to the published offsets;
- for every cached crop, the relative difference between its cached posterior and
  the published per-step encoding of the same crop (batch composition only);
- the design not taken: encoding the whole resized image once and cutting the
  crop's window out of its latents. SD's encoder normalises (GroupNorm) and attends
  (mid-block) over the whole image, so every latent of the window depends on pixels
  outside the crop; the table shows how far that moves the posterior mean and std,
  by latent column and against the posterior's own std.

    python benchmarks/measure_concept_crops.py              # sd15-shaped VAE, 224 px
    python benchmarks/measure_concept_crops.py --size small --images 4
    python benchmarks/measure_concept_crops.py --quick         # the offset tables, seconds
"""

from __future__ import annotations

import _common
import numpy as np
import torch
from PIL import Image

CUB_LIKE_SIZES = [(500, 375), (500, 333), (500, 500), (375, 500), (500, 281), (500, 400), (500, 450)]
WIDE_ASPECTS = [3, 3.5, 4, 6, 8, 12, 20]


def add_arguments(parser) -> None:
    parser.add_argument("--size", default="sd15", help="small or sd15 (default: sd15: SD-1.5's VAE shapes)")
    parser.add_argument("--images", type=int, default=6, help="test images (default 6)")
    parser.add_argument("--resolution", type=int, default=224, help="concept resolution (default 224)")


def ks_distance(published: np.ndarray, cached: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between uniform draws from two sets of integer offsets."""
    points = np.arange(published.min(), published.max() + 1)
    cdf = [np.searchsorted(np.sort(values), points, side="right") / len(values) for values in (published, cached)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def offset_grid(size: tuple[int, int], side: int, factor: int, bound: int | None = None) -> list[float]:
    """Crop offsets along the long side: published (every pixel) vs cached (multiples of f in the trimmed side, or
    ``bound`` evenly spaced ones): counts, the largest and mean gap to a cached offset, the mean shift, KS."""
    from diffii_datasets.diffusion.concepts.inputs import crop_offsets, resized_size

    long_side = max(resized_size(*size, side))
    published = np.arange(long_side - side + 1)
    cached = np.array(crop_offsets(long_side, side, factor, bound))
    nearest = np.abs(published[:, None] - cached[None, :]).min(axis=1)
    return [len(published), len(cached), float(nearest.max()), float(nearest.mean()),
            float(cached.mean() - published.mean()), ks_distance(published, cached)]


def print_offset_tables(side: int, factor: int) -> None:
    from diffii_datasets.diffusion.concepts.config import ConceptConfig

    rows = [[f"{w}x{h}", *offset_grid((w, h), side, factor)] for w, h in CUB_LIKE_SIZES]
    _common.print_table(f"crop offsets along the long side at {side}px (VAE factor {factor})",
                        ["image", "published offsets", "cached offsets", "max gap px", "mean gap px",
                         "mean shift px", "KS distance"], rows)
    bound = ConceptConfig().max_crop_positions
    rows = []
    for aspect in WIDE_ASPECTS:
        size = (round(375 * aspect), 375)
        grid = offset_grid(size, side, factor)
        bounded = offset_grid(size, side, factor, bound)
        rows.append([f"{size[0]}x{size[1]} ({aspect:g}:1)", grid[0], grid[1], grid[5], bounded[1], bounded[2],
                     bounded[5]])
    _common.print_table(f"wide images at {side}px: the grid, and max_crop_positions={bound} evenly spaced offsets",
                        ["image", "published offsets", "grid offsets", "grid KS", "kept offsets", "kept max gap px",
                         "kept KS"], rows)


def textured_image(seed: int, size: tuple[int, int]) -> Image.Image:
    """Structure at several scales (smooth colour fields, edges, fine noise), so crop borders matter."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = np.zeros((height, width, 3))
    for cells in (4, 16, 64):
        coarse = rng.uniform(0, 1, size=(cells * height // width + 1, cells, 3))
        image += np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(size, Image.BILINEAR)) / 255
    image /= 3
    yy, xx = np.mgrid[:height, :width]
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, height / 3)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2] = rng.uniform(0, 1, size=3)
    image += rng.normal(0, 0.03, size=image.shape)
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))


@torch.no_grad()
def posterior(vae, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = vae.encode(pixels[None] * 2 - 1).latent_dist
    return dist.mean[0] * vae.config.scaling_factor, dist.std[0] * vae.config.scaling_factor


def main() -> None:
    args = _common.parse_args("Cached crops vs the published per-step crops", add_arguments)
    from diffii_datasets.diffusion.concepts.config import ConceptConfig
    from diffii_datasets.diffusion.concepts.inputs import TrainingInputs

    if args.quick:  # the offset tables alone: no VAE
        print_offset_tables(args.resolution, 8)
        return
    pipe = _common.build_pipeline(args.size, torch.device("cpu"), dtype=torch.float32)
    vae, factor, side = pipe.vae, int(pipe.vae_scale_factor), args.resolution
    print_offset_tables(side, factor)

    config = ConceptConfig(resolution=side, batch_size=8)
    cached_errors, strip_mean, strip_std, strip_noise, columns = [], [], [], [], []
    for seed in range(args.images):
        image = textured_image(seed, CUB_LIKE_SIZES[seed % 2])
        inputs = TrainingInputs([0], config, side)
        inputs.encode([image], ["image"], vae, torch.device("cpu"), factor, progress=False)
        crops = inputs.image_crops(image, "image", factor)
        whole = torch.cat(crops[:1] + [crop[:, :, -factor:] for crop in crops[1:]], dim=-1)  # the trimmed image
        whole_mean, whole_std = posterior(vae, whole)
        window = side // factor
        for index, crop in enumerate(crops):
            crop_mean, crop_std = posterior(vae, crop)  # the published step's encoding of this crop
            cached = inputs.means[0][index, 0].float()
            cached_errors.append(float((cached - crop_mean).norm() / crop_mean.norm()))
            cut_mean = whole_mean[..., index:index + window]
            cut_std = whole_std[..., index:index + window]
            strip_mean.append(float((cut_mean - crop_mean).norm() / crop_mean.norm()))
            strip_std.append(float((cut_std - crop_std).norm() / crop_std.norm()))
            strip_noise.append(float((cut_mean - crop_mean).pow(2).mean().sqrt() / crop_std.pow(2).mean().sqrt()))
            columns.append((cut_mean - crop_mean).pow(2).mean(dim=(0, 1)).sqrt() / crop_mean.pow(2).mean().sqrt())
    rows = [["cached crop (this package), posterior mean", np.median(cached_errors), max(cached_errors)],
            ["window of the whole image's latents, mean", np.median(strip_mean), max(strip_mean)],
            ["window of the whole image's latents, std", np.median(strip_std), max(strip_std)],
            ["window: mean difference / posterior std (RMS)", np.median(strip_noise), max(strip_noise)]]
    _common.print_table(f"relative L2 difference from the published encoding of the same crop, {args.size} VAE "
                        f"(random weights), {args.images} images, {len(cached_errors)} crops",
                        ["latents", "median", "max"], rows)
    profile = torch.stack(columns).mean(0)
    _common.print_table("window of the whole image's latents: relative RMS difference by latent column",
                        ["columns", "relative RMS"],
                        [["outer 3 on each side", float(profile[[0, 1, 2, -3, -2, -1]].mean())],
                         ["interior", float(profile[3:-3].mean())]])


if __name__ == "__main__":
    main()
