"""Benchmark 6: memory. Peak RSS while generating N and then 4N synthetic images per class.

Each run is a fresh child process (forked before any model exists) that builds
the tiny pipeline and the base dataset, resets its peak-RSS mark and runs
``DiffIIAugmented.prepare()`` (concept learning, inversion, generation, store
writes). Generation streams every image to disk as it is made, so the peak must
not grow with the number of images; the step counts are cut (memory does not
depend on them). The pair is run twice: with glibc's malloc as it comes, and
with its mmap threshold fixed (``mallopt``), which stops the heap from creeping
as the dynamic threshold rises, so what remains is what the code itself holds.

    python benchmarks/bench_memory.py            # N = 25 images per class, 2 classes
    python benchmarks/bench_memory.py --quick    # N = 4, 32px: a smoke run
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import tempfile

import _common
import torch

REAL_PER_CLASS = 4
CLASSES = 2


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
                          concept_checkpoint_steps=1, suffixes="builtin", seed=0)
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

    import diffii_datasets.augmented  # noqa: F401
    import diffii_datasets.testing  # noqa: F401


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
    figures.print()


if __name__ == "__main__":
    main()
