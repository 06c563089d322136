"""Benchmark 5: the store. Opening an already-prepared set against generating it, and reading it back.

1. ``DiffIIAugmented(...)`` plus ``prepare()`` with the arguments of a run whose
   store is complete (the rerun of a training script: scan and fingerprint the
   base dataset, find the store, verify every file's checksum, index the
   records), against the ``prepare()`` that generated it (pipeline loaded from
   disk, ready-made concepts, the paper's settings: 200 inversion and 25
   denoising steps, expansion rate 5).
2. DataLoader read throughput over the synthetic images (``augmented.synthetic``)
   against ``torchvision.datasets.ImageFolder`` over the very same PNG files,
   both with ``ToTensor``.

    python benchmarks/bench_store.py            # tiny pipeline, 3 classes x 4 real images -> 60 synthetic
    python benchmarks/bench_store.py --quick    # few steps: a smoke run
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common
import torch


def add_arguments(parser) -> None:
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--real", type=int, default=4, help="real images per class")
    parser.add_argument("--epochs", type=int, default=None, help="epochs read per measurement (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each reader, alternated; best kept")


def make_wrapper(args, dataset, concepts, model_dir: str, cache_dir: str, transform=None):
    from diffii_datasets import DiffIIAugmented, DiffIIConfig

    steps = {"inversion_steps": 2, "denoising_steps": 2} if args.quick else {}
    config = DiffIIConfig(model=model_dir, resolution=32, expansion_rate=5.0, batch_size=8, suffixes="builtin",
                          seed=0, **steps)
    return DiffIIAugmented(dataset, "shape", config=config, concepts=concepts, cache_dir=cache_dir,
                           device=args.device, transform=transform, progress=False)


def image_folder_root(augmented, root: Path) -> Path:
    """An ImageFolder layout (one folder per class) whose folders are links to the store's image folders."""
    store = augmented.store
    root.mkdir()
    for class_index in range(len(augmented.classes)):
        (root / f"{class_index:05d}").symlink_to(store.class_dir(class_index) / "images", target_is_directory=True)
    return root


def items_per_second(dataset, epochs: int, num_workers: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=32, shuffle=False, num_workers=num_workers,
                        persistent_workers=num_workers > 0)
    for _ in loader:  # warm-up epoch (starts the workers, fills the page cache)
        pass
    with _common.stopwatch() as elapsed:
        count = 0
        for _ in range(epochs):
            for images, _labels in loader:
                count += images.shape[0]
    return count / elapsed[0]


def main() -> None:
    args = _common.parse_args("Store: opening a prepared set vs generating it; DataLoader reads vs ImageFolder",
                              add_arguments)
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import ToTensor

    from diffii_datasets.diffusion import ConceptConfig, learn_concepts
    from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

    epochs = args.epochs or (2 if args.quick else 20)
    rounds = 1 if args.quick else args.rounds
    if args.quick:
        args.classes, args.real = 2, 2
    dataset = tiny_image_dataset(num_classes=args.classes, per_class=args.real, size=32, seed=0)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
        work = Path(work)
        pipe = tiny_pipeline(0)
        pipe.save_pretrained(work / "model")
        images_by_class = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c]
                           for c in range(args.classes)]
        concepts = learn_concepts(pipe, images_by_class, dataset.classes, "shape",
                                  ConceptConfig(train_steps=1, batch_size=2, resolution=32), progress=False)
        del pipe
        with _common.stopwatch() as generate_s:
            generated = make_wrapper(args, dataset, concepts, str(work / "model"), str(work / "cache")).prepare()
        assert generated.report.generated, "the first prepare() must generate"
        with _common.stopwatch() as open_s:
            reopened = make_wrapper(args, dataset, concepts, str(work / "model"), str(work / "cache"),
                                    transform=ToTensor()).prepare()
            len(reopened.synthetic)
        assert not reopened.report.generated, "the second prepare() must find the store complete"
        synthetic = reopened.synthetic
        folder = ImageFolder(str(image_folder_root(reopened, work / "folder")), transform=ToTensor())
        assert len(folder) == len(synthetic)
        _common.print_table(
            f"opening vs generating, tiny pipeline, {args.classes} classes x {args.real} real -> {len(synthetic)} "
            f"synthetic ({generated.config.inversion_steps} inversion + {generated.config.denoising_steps} "
            "denoising steps)",
            ["step", "seconds", "% of generating"],
            [["generate (first prepare)", generate_s[0], 100.0],
             ["open the prepared set (construct + prepare)", open_s[0], 100 * open_s[0] / generate_s[0]]])

        rates: dict[tuple[str, int], float] = {}
        for workers in (0, 2):
            for round_index in range(rounds):
                readers = [("synthetic", synthetic), ("ImageFolder", folder)]
                for name, data in readers if round_index % 2 == 0 else readers[::-1]:
                    rate = items_per_second(data, epochs, workers)
                    rates[name, workers] = max(rates.get((name, workers), 0.0), rate)
    rows = [[f"{workers} workers", rates["synthetic", workers], rates["ImageFolder", workers],
             rates["synthetic", workers] / rates["ImageFolder", workers]] for workers in (0, 2)]
    _common.print_table(f"DataLoader reads of {len(synthetic)} PNG files, batch 32, ToTensor, best of {rounds} x "
                        f"{epochs} epochs",
                        ["DataLoader", "synthetic items/s", "ImageFolder items/s", "ratio"], rows)
    figures = _common.Figures()
    figures.add("store_open_vs_generate", 100 * open_s[0] / generate_s[0], "%", "< 1%")
    figures.add("store_read_vs_imagefolder", rates["synthetic", 0] / rates["ImageFolder", 0], "x", ">= 0.9x")
    figures.add("store_read_vs_imagefolder_2_workers", rates["synthetic", 2] / rates["ImageFolder", 2], "x",
                ">= 0.9x")
    figures.print()


if __name__ == "__main__":
    torch.multiprocessing.set_sharing_strategy("file_system")
    main()
