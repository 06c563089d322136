"""``diffii-datasets demo``: the method end to end on the bundled sample with the tiny offline model.

Its config is ``DiffIIConfig.preset("tiny")`` (the same as ``generate --model tiny``), with three knobs as flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffii_datasets.cli._common import AddCommand, add_knob_flags, knob_values
from diffii_datasets.config import DiffIIConfig

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"

DEMO_KNOBS = ("denoising_steps", "concept_train_steps", "expansion_rate")
"""The knobs the demo lets the user change (spelled as ``generate`` spells them); their values are the tiny preset's."""

EPILOG = """examples:
  diffii-datasets demo
  diffii-datasets demo --output-dir /tmp/diffii-demo
  diffii-datasets demo --denoising-steps 10 --concept-train-steps 5 --quiet
"""


def add_commands(add_command: AddCommand) -> None:
    demo = add_command("demo", "run the method end to end on the bundled sample with the tiny offline model",
                       EPILOG, run_demo)
    demo.add_argument("--output-dir", default="demo-output", help="where to write the preview (default: %(default)s)")
    add_knob_flags(demo, [item for item in DiffIIConfig.knobs() if item.name in DEMO_KNOBS],
                   {name: getattr(DiffIIConfig.preset("tiny"), name) for name in DEMO_KNOBS})
    demo.add_argument("-q", "--quiet", action="store_true", help="no plan, progress bars or library notices")


def run_demo(args: argparse.Namespace) -> int:
    config = DiffIIConfig.preset("tiny", **knob_values(args, DiffIIConfig.knobs()))  # checked before torch loads

    from torchvision.datasets import ImageFolder

    from diffii_datasets.augmented import DiffIIAugmented
    from diffii_datasets.preview import preview_store

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sample = ImageFolder(str(SAMPLE_DIR))
    augmented = DiffIIAugmented(sample, "shape", config=config, cache_dir=output_dir / "cache",
                                progress=not args.quiet).prepare()
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
    print("next:")
    print(f"  diffii-datasets report {store.path} -o {output_dir / 'report'} --tiny-models   # a quality report (HTML)")
    print(f"  diffii-datasets train sample --store {store.path} --seeds 0 --output-dir {output_dir / 'classifier'}"
          "   # a classifier on it (a few minutes)")
    return 0
