"""The ``diffii-datasets`` command line."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"

EPILOG_DEMO = """examples:
  diffii-datasets demo
  diffii-datasets demo --output-dir /tmp/diffii-demo
"""


def _demo(args: argparse.Namespace) -> int:
    import torch
    from torchvision.datasets import ImageFolder

    from diffii_datasets.preview import preview_grid
    from diffii_datasets.testing import tiny_pipeline

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sample = ImageFolder(str(SAMPLE_DIR))
    pipe = tiny_pipeline(seed=0)
    rows = []
    for label, name in enumerate(sample.classes):
        real = [sample[i][0] for i, t in enumerate(sample.targets) if t == label]
        generator = torch.Generator().manual_seed(label)
        synthetic = pipe(
            [f"a photo of a {name} shape"] * args.per_class,
            num_inference_steps=args.steps,
            generator=generator,
        ).images
        rows.append((name, real, synthetic))
        logger.info("generated %d images for class %r", len(synthetic), name)
    path = output_dir / "preview.png"
    preview_grid(rows).save(path)
    print(f"sample: {len(sample)} images in {len(sample.classes)} classes from {SAMPLE_DIR}")
    print("model: tiny random-weights Stable Diffusion pipeline (offline; the images are noise by design)")
    print(f"preview: {path.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffii-datasets",
        description="Diff-II diffusion augmentation for data-scarce image classification.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the method end to end on the bundled sample with the tiny offline model",
        epilog=EPILOG_DEMO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--output-dir", default="demo-output", help="where to write the preview (default: %(default)s)")
    demo.add_argument("--per-class", type=_positive_int, default=4,
                      help="synthetic images per class (default: %(default)s)")
    demo.add_argument("--steps", type=_positive_int, default=10, help="denoising steps (default: %(default)s)")
    demo.set_defaults(func=_demo)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)
