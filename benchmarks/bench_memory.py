"""Benchmark 6: memory. Peak RSS while generating N and 4N synthetic images per class, and while preparing
a store for N and 4N base images; reopen time for N and 4N base images.

Each run is a fresh child process (forked before any model exists) that builds
the tiny pipeline and the base dataset, resets its peak-RSS mark and runs
``DiffIIAugmented.prepare()`` (concept learning, inversion, generation, store
writes). Generation streams every image to disk as it is made, so the peak must
not grow with the number of images; the step counts are cut (memory does not
depend on them). The pair is run twice: with glibc's malloc as it comes, and
with its mmap threshold fixed (``mallopt``), which stops the heap from creeping
as the dynamic threshold rises, so what remains is what the code itself holds.

Base images: an ``ImageFolder`` of 375x500 JPEGs (CUB's typical size) with N and
then 4N images, in 4x the classes of the same size. The scan fingerprints the
images one at a time and generation reads one class at a time, so the peak follows
the largest class, not the dataset. Concepts are given (learned beforehand on one
stand-in image per class): concept learning encodes every image of the dataset at
once, which a second pair of runs measures for information. Reopening the prepared
store reads no base image (the folder's files did not change); the same reopen
through a dataset that cannot list its files hashes every image, for comparison.

    python benchmarks/bench_memory.py            # N = 25 images per class, 2 classes; N = 100 base images
    python benchmarks/bench_memory.py --quick    # N = 4, 32px; N = 8 base images: a smoke run
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import tempfile
import time
from pathlib import Path

import _common
import torch

REAL_PER_CLASS = 4
CLASSES = 2
BASE_SIZE = (500, 375)  # width, height: the typical CUB-200 photo
BASE_PER_CLASS = 25  # images per class in the base-image runs (4N has 4x the classes, not larger ones)


def add_arguments(parser) -> None:
    parser.add_argument("--per-class", type=int, default=None, help="N, synthetic images per class (default 25)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (tiny pipeline: 2 x latent side)")


def reset_peak() -> bool:
    """Reset this process's peak-RSS mark (Linux ``clear_refs``); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def fix_mmap_threshold() -> bool:
    """glibc: serve every allocation above 128 KiB by mmap, returned on free (no dynamic threshold)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def generate(per_class: int, image_size: int, threads: int, fixed_threshold: bool, queue) -> None:
    """Child process: build everything, reset the peak mark, prepare, report the RSS figures."""
    torch.set_num_threads(threads)
    if fixed_threshold and not fix_mmap_threshold():
        queue.put(None)
        return
    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

    pipe = tiny_pipeline(0, sample_size=image_size // 2)
    dataset = tiny_image_dataset(num_classes=CLASSES, per_class=REAL_PER_CLASS, size=image_size, seed=0)
    config = DiffIIConfig(resolution=image_size, expansion_rate=per_class / REAL_PER_CLASS, inversion_steps=2,
                          denoising_steps=2, batch_size=8, concept_train_steps=1, concept_batch_size=2,
                          concept_checkpoint_steps=1, concept_resolution=image_size, suffixes="builtin", seed=0)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as cache_dir:
        augmented = DiffIIAugmented(dataset, "shape", config=config, pipeline=pipe, cache_dir=cache_dir,
                                    progress=False)
        gc.collect()
        before, _ = _common.rss_mib()
        reset = reset_peak()
        augmented.prepare()
        after, peak = _common.rss_mib()
        queue.put({"images": len(augmented.synthetic), "before": before, "after": after, "peak": peak,
                   "reset": reset})


def measure(per_class: int, image_size: int, fixed_threshold: bool = False) -> dict | None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=generate, args=(per_class, image_size, torch.get_num_threads(), fixed_threshold,
                                                   queue))
    child.start()
    result = queue.get()
    child.join()
    if child.exitcode:
        raise RuntimeError(f"the child generating {per_class} images per class exited with {child.exitcode}")
    return result


def preload() -> None:
    """Import what the children need once, before forking (imports are neither measured nor worth repeating)."""
    import peft  # noqa: F401
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

    from torchvision.datasets import ImageFolder  # noqa: F401

    import diffii_datasets.augmented  # noqa: F401
    import diffii_datasets.testing  # noqa: F401


def write_jpegs(root: Path, classes: int, per_class: int) -> None:
    """An ImageFolder tree of smooth 375x500 JPEGs (photo-like sizes and compression; content does not matter)."""
    import numpy as np
    from PIL import Image

    width, height = BASE_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for c in range(classes):
        folder = root / f"class_{c:03d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            phase = (c * per_class + i) * 0.37
            rgb = np.stack([np.sin(x / 40 + phase), np.cos(y / 30 - phase), np.sin((x + y) / 55 + 2 * phase)], -1)
            Image.fromarray(((rgb + 1) * 127.5).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)


class Unlisted:
    """A dataset that cannot list its files (so every reopen hashes its images): the ImageFolder, hidden."""

    def __init__(self, dataset) -> None:
        self.dataset_ = dataset
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.dataset_)

    def __getitem__(self, index: int):
        return self.dataset_[index]


def prepare_base(root: str, per_class: int, learned: bool, threads: int, queue) -> None:
    """Child process: prepare a store for the base images under ``root``, then reopen it twice; report."""
    torch.set_num_threads(threads)
    from torchvision.datasets import ImageFolder

    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.diffusion.concepts import learn_concepts
    from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

    pipe = tiny_pipeline(0, sample_size=16)
    config = DiffIIConfig(resolution=32, expansion_rate=4 / per_class, inversion_steps=2, denoising_steps=2,
                          batch_size=8, concept_train_steps=1, concept_batch_size=2, concept_checkpoint_steps=1,
                          concept_resolution=32, suffixes="builtin", seed=0)
    dataset = ImageFolder(root)
    concepts = None
    if not learned:  # one stand-in image per class: the concepts exist before the measured prepare()
        stand_in = tiny_image_dataset(num_classes=len(dataset.classes), per_class=1, size=32, seed=0)
        concepts = learn_concepts(pipe, [[image] for image, _ in stand_in], dataset.classes, "shape",
                                  config.concepts, seed=0, progress=False)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as cache_dir:
        def wrapper(base):
            return DiffIIAugmented(base, "shape", config=config, pipeline=pipe, concepts=concepts, cache_dir=cache_dir,
                                   progress=False)

        gc.collect()
        before, _ = _common.rss_mib()
        reset = reset_peak()
        wrapper(dataset).prepare()
        after, peak = _common.rss_mib()
        gc.collect()
        start = time.perf_counter()
        wrapper(ImageFolder(root)).prepare()
        reopen = time.perf_counter() - start
        start = time.perf_counter()
        wrapper(Unlisted(ImageFolder(root))).prepare()
        reopen_hashing = time.perf_counter() - start
    queue.put({"images": len(dataset), "before": before, "after": after, "peak": peak, "reset": reset,
               "reopen": reopen, "reopen_hashing": reopen_hashing})


def measure_base(root: Path, per_class: int, learned: bool = False) -> dict:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=prepare_base, args=(str(root), per_class, learned, torch.get_num_threads(), queue))
    child.start()
    result = queue.get()
    child.join()
    if child.exitcode:
        raise RuntimeError(f"the child preparing {root} exited with {child.exitcode}")
    return result


def base_images(quick: bool, figures) -> None:
    """Peak RSS of prepare() and reopen time for N and 4N base images (4x the classes, same class size)."""
    per_class = 2 if quick else BASE_PER_CLASS
    classes = 2 if quick else 4
    with tempfile.TemporaryDirectory(prefix="bench-memory-images-") as folder:
        roots = {"N": Path(folder) / "n", "4N": Path(folder) / "4n"}
        write_jpegs(roots["N"], classes, per_class)
        write_jpegs(roots["4N"], 4 * classes, per_class)
        runs = {name: measure_base(root, per_class) for name, root in roots.items()}
        learned = {name: measure_base(root, per_class, learned=True) for name, root in roots.items()}
    rows = [[name, run["images"], run["before"], run["peak"], run["peak"] - run["before"], run["reopen"],
             run["reopen_hashing"]] for name, run in runs.items()]
    rows += [[f"{name}, concepts learned", run["images"], run["before"], run["peak"], run["peak"] - run["before"],
              run["reopen"], run["reopen_hashing"]] for name, run in learned.items()]
    _common.print_table(
        f"prepare() for N and 4N base images ({BASE_SIZE[0]}x{BASE_SIZE[1]} JPEG, {per_class} per class), "
        "tiny pipeline (MiB, s)",
        ["run", "base images", "RSS before", "peak", "peak - before", "reopen s", "reopen s, hashing"], rows)
    decoded = (runs["4N"]["images"] - runs["N"]["images"]) * BASE_SIZE[0] * BASE_SIZE[1] * 3 / 2**20
    figures.note(f"holding the 3N extra base images decoded would add {decoded:.0f} MiB; the 4N peak is "
                 f"{runs['4N']['peak'] - runs['N']['peak']:+.1f} MiB off the N peak with concepts given, "
                 f"{learned['4N']['peak'] - learned['N']['peak']:+.1f} MiB when prepare() also learns them "
                 "(concept learning encodes every image at once)")
    figures.note(f"reopen reads no base image: {runs['N']['reopen']:.2f} s (N) and {runs['4N']['reopen']:.2f} s "
                 f"(4N), checking the store's checksums (linear in the store's size, hence the target); hashing "
                 f"the base images instead takes {runs['N']['reopen_hashing']:.2f} s and "
                 f"{runs['4N']['reopen_hashing']:.2f} s")
    if not all(run["reset"] for run in [*runs.values(), *learned.values()]):
        figures.note("the kernel refused to reset the peak mark: peaks include the setup before prepare()")
    figures.add("memory_peak_base_4n_over_n", runs["4N"]["peak"] / runs["N"]["peak"], "x", "<= 1.2x")
    figures.add("reopen_time_base_4n_over_n", runs["4N"]["reopen"] / runs["N"]["reopen"], "x", "<= 5x")
    figures.add("reopen_hashing_over_file_check_4n", runs["4N"]["reopen_hashing"] / runs["4N"]["reopen"], "x",
                ">= 2x")


def main() -> None:
    args = _common.parse_args("Memory: peak RSS while generating N and 4N images per class", add_arguments)
    preload()
    n = args.per_class or (4 if args.quick else 25)
    image_size = 32 if args.quick else args.size
    runs = {"N": measure(n, image_size), "4N": measure(4 * n, image_size)}
    fixed = {"N, mmap threshold fixed": measure(n, image_size, True),
             "4N, mmap threshold fixed": measure(4 * n, image_size, True)}
    runs.update({name: run for name, run in fixed.items() if run is not None})
    image_mib = image_size * image_size * 3 / 2**20
    rows = [[name, run["images"], run["before"], run["peak"], run["peak"] - run["before"], run["after"]]
            for name, run in runs.items()]
    _common.print_table(
        f"peak RSS of prepare(), tiny pipeline, {CLASSES} classes, {image_size}px images (MiB)",
        ["run", "images", "RSS before", "peak", "peak - before", "RSS after"], rows)
    figures = _common.Figures()
    extra = 3 * n * CLASSES * image_mib
    figures.note(f"holding the 3N extra images of the 4N run in memory would add {extra:.1f} MiB of pixels; "
                 f"the 4N peak is {runs['4N']['peak'] - runs['N']['peak']:+.1f} MiB off the N peak "
                 "with malloc as it comes" + (
                     f", {runs['4N, mmap threshold fixed']['peak'] - runs['N, mmap threshold fixed']['peak']:+.1f} "
                     "MiB with the mmap threshold fixed" if len(runs) == 4 else ""))
    if not all(run["reset"] for run in runs.values()):
        figures.note("the kernel refused to reset the peak mark: peaks include the setup before prepare()")
    figures.add("memory_peak_4n_over_n", runs["4N"]["peak"] / runs["N"]["peak"], "x", "<= 1.1x")
    if len(runs) == 4:
        figures.add("memory_peak_4n_over_n_fixed_mmap_threshold",
                    runs["4N, mmap threshold fixed"]["peak"] / runs["N, mmap threshold fixed"]["peak"], "x", "<= 1.1x")
    base_images(args.quick, figures)
    figures.print()


if __name__ == "__main__":
    main()
