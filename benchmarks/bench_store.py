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
3. Serving a training epoch: ``DiffIIAugmented`` over an ``ImageFolder`` of small real
   images, replace mode at ``synthetic_probability=0.5`` (each item drawn, checked on its
   first read, decoded), against a plain ``ImageFolder`` whose samples are, epoch by
   epoch, the very files the wrapper serves (so both decode the same bytes), one thread,
   no workers, ``ToTensor``. Each measurement is a run of a few epochs with draws of its own
   (another ``sampling_seed``: the wrapper draws them as a new run would), every file
   already read once by the process (its checksum checked, as in a long run), the two
   readers alternately; the fastest run of each is kept (a busy machine's other work left out).

    python benchmarks/bench_store.py            # tiny pipeline, 3 classes x 4 real images -> 60 synthetic
    python benchmarks/bench_store.py --quick    # few steps: a smoke run
    python benchmarks/bench_store.py --only-serving --threads 1   # section 3 alone
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
    parser.add_argument("--serving-classes", type=int, default=10, help="classes of the served base dataset")
    parser.add_argument("--serving-real", type=int, default=20, help="real images per class of the served dataset")
    parser.add_argument("--serving-epochs", type=int, default=None, help="epochs of a serving run (default 5)")
    parser.add_argument("--serving-rounds", type=int, default=30,
                        help="serving runs of each reader, alternated; the fastest kept")
    parser.add_argument("--only-serving", action="store_true", help="run section 3 alone")


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


def serving(args, work: Path, pipe, concepts_config) -> tuple[float, float, int]:
    """Items per second of a replace-mode ``DiffIIAugmented`` and of an ``ImageFolder`` serving the same files.

    Returns ``(wrapper items/s, ImageFolder items/s, items per epoch)``.
    """
    import numpy as np
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import ToTensor

    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.replacement import replace_draws
    from diffii_datasets.diffusion import learn_concepts
    from diffii_datasets.testing import tiny_image_dataset

    classes, real = (3, 4) if args.quick else (args.serving_classes, args.serving_real)
    epochs = args.serving_epochs or (1 if args.quick else 5)
    rounds = 1 if args.quick else args.serving_rounds
    root = work / "served"
    for index, (image, label) in enumerate(tiny_image_dataset(num_classes=classes, per_class=real, size=32, seed=1)):
        (root / f"{label:03d}").mkdir(parents=True, exist_ok=True)
        image.save(root / f"{label:03d}" / f"{index:05d}.png")
    base = ImageFolder(str(root))
    images_by_class = [[base[i][0] for i in range(len(base)) if base.targets[i] == c] for c in range(classes)]
    concepts = learn_concepts(pipe, images_by_class, base.classes, "shape", concepts_config, progress=False)
    config = DiffIIConfig(resolution=32, expansion_rate=2.0, batch_size=8, suffixes="builtin", seed=0,
                          inversion_steps=2, denoising_steps=2)
    wrapper = DiffIIAugmented(base, "shape", config=config, concepts=concepts, pipeline=pipe,
                              cache_dir=str(work / "served-cache"), synthetic_probability=0.5, transform=ToTensor(),
                              progress=False).prepare()
    synthetic = wrapper.synthetic
    paths = [synthetic.metadata(i)["path"] for i in range(len(synthetic))]
    starts = np.cumsum([0] + [synthetic.targets.count(c) for c in range(classes)])
    pools = np.diff(starts)
    seeds = [1000 + r for r in range(rounds + 1)]  # each measurement a run of its own draws (round 0: warm-up)
    plans = {}  # the files the wrapper serves, run by run and epoch by epoch: the ImageFolder's samples
    for seed in seeds:
        labels, positions = replace_draws(seed, range(epochs), np.array(base.targets), 0.5, pools, None)
        for epoch in range(epochs):
            plans[seed, epoch] = [(paths[starts[c] + k], c) if k >= 0 else base.samples[i]
                                  for i, (c, k) in enumerate(zip(labels[epoch].tolist(), positions[epoch].tolist()))]
    folder = ImageFolder(str(root), transform=ToTensor())

    def serve_wrapper(seed: int, epoch: int) -> None:
        wrapper.sampling_seed = seed
        wrapper.set_epoch(epoch)

    def serve_folder(seed: int, epoch: int) -> None:
        folder.samples = folder.imgs = plans[seed, epoch]

    def run_seconds(dataset, serve, seed: int) -> float:
        """A run of ``epochs`` epochs of the draws of ``seed``, as a training loop reads them."""
        loader = DataLoader(dataset, batch_size=32, shuffle=False, num_workers=0)
        with _common.stopwatch() as elapsed:
            for epoch in range(epochs):
                serve(seed, epoch)
                for _ in loader:
                    pass
        return elapsed[0]

    for epoch in range(epochs):  # the two serve the same images
        serve_wrapper(seeds[0], epoch)
        serve_folder(seeds[0], epoch)
        assert all(torch.equal(wrapper[i][0], folder[i][0]) and wrapper[i][1] == folder[i][1]
                   for i in range(len(base))), "the ImageFolder must serve the wrapper's files"
    readers = [("wrapper", wrapper, serve_wrapper), ("ImageFolder", folder, serve_folder)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for path in paths:  # every synthetic file read once (its checksum checked once per process)
            wrapper.store.read_file(path)
        for _, dataset, serve in readers:  # warm-up
            run_seconds(dataset, serve, seeds[0])
        best = {name: float("inf") for name, _, _ in readers}
        for round_index, seed in enumerate(seeds[1:]):  # alternately; the fastest run of each kept
            for name, dataset, serve in readers if round_index % 2 == 0 else readers[::-1]:
                best[name] = min(best[name], run_seconds(dataset, serve, seed))
    finally:
        torch.set_num_threads(threads)
    rates = {name: epochs * len(base) / seconds for name, seconds in best.items()}
    return rates["wrapper"], rates["ImageFolder"], len(base)


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
    figures = _common.Figures()
    if args.only_serving:
        with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
            serving_figures(args, Path(work), tiny_pipeline(0), figures)
        figures.print()
        return
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
        serving_figures(args, work, tiny_pipeline(0), figures)
    rows = [[f"{workers} workers", rates["synthetic", workers], rates["ImageFolder", workers],
             rates["synthetic", workers] / rates["ImageFolder", workers]] for workers in (0, 2)]
    _common.print_table(f"DataLoader reads of {len(synthetic)} PNG files, batch 32, ToTensor, best of {rounds} x "
                        f"{epochs} epochs",
                        ["DataLoader", "synthetic items/s", "ImageFolder items/s", "ratio"], rows)
    figures.add("store_open_vs_generate", 100 * open_s[0] / generate_s[0], "%", "< 1%")
    figures.add("store_read_vs_imagefolder", rates["synthetic", 0] / rates["ImageFolder", 0], "x", ">= 0.9x")
    figures.add("store_read_vs_imagefolder_2_workers", rates["synthetic", 2] / rates["ImageFolder", 2], "x",
                ">= 0.9x")
    figures.print()


def serving_figures(args, work: Path, pipe, figures) -> None:
    from diffii_datasets.diffusion import ConceptConfig

    wrapper, folder, length = serving(args, work, pipe, ConceptConfig(train_steps=1, batch_size=2, resolution=32))
    _common.print_table(f"serving an epoch of {length} small images (32 px PNG), replace mode p = 0.5, batch 32, "
                        "ToTensor, 1 thread, no workers",
                        ["reader", "items/s", "ratio"],
                        [["DiffIIAugmented", wrapper, wrapper / folder],
                         ["ImageFolder over the files the wrapper serves", folder, 1.0]])
    figures.add("serving_vs_imagefolder", wrapper / folder, "x", ">= 0.95x")


if __name__ == "__main__":
    torch.multiprocessing.set_sharing_strategy("file_system")
    main()
