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
  diffii-datasets demo --steps 10 --concept-steps 5 --quiet
"""


def _demo(args: argparse.Namespace) -> int:
    from torchvision.datasets import ImageFolder

    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.preview import preview_store
    from diffii_datasets.testing import tiny_pipeline

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sample = ImageFolder(str(SAMPLE_DIR))
    config = DiffIIConfig(
        resolution=32,
        expansion_rate=args.expansion_rate,
        inversion_steps=50,
        denoising_steps=args.steps,
        concept_train_steps=args.concept_steps,
        concept_batch_size=4,
        batch_size=8,
        suffixes="builtin",
    )
    augmented = DiffIIAugmented(sample, "shape", config=config, pipeline=tiny_pipeline(seed=0),
                                cache_dir=output_dir / "cache", progress=not args.quiet).prepare()
    store, report = augmented.store, augmented.report
    path = output_dir / "preview.png"
    preview_store(store, per_class=4).save(path)
    print(f"sample: {len(sample)} real images in {len(sample.classes)} classes from {SAMPLE_DIR}")
    print("model: tiny random-weights Stable Diffusion pipeline (offline; its images are noise by design)")
    if report.generated:
        print(f"generated {len(augmented.synthetic)} synthetic images for {len(report.generated)} classes")
    else:
        print(f"reused the existing store: nothing generated ({len(report.skipped)} classes already complete)")
    print(f"store: {store.path} ({len(augmented.synthetic)} synthetic images)")
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
    demo.add_argument("--steps", type=_positive_int, default=25, help="denoising steps (default: %(default)s)")
    demo.add_argument("--concept-steps", type=_positive_int, default=20,
                      help="concept-learning steps (default: %(default)s)")
    demo.add_argument("--expansion-rate", type=float, default=2.0,
                      help="synthetic images per real image (default: %(default)s)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
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
