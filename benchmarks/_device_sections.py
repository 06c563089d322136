"""The sections of the device check that run in its own process, each measured against its baseline.

Each takes the shared :class:`~_device_context.Context`, a
:class:`~_device_context.Result` that it fills as it goes, and the seconds it may
take, and reuses the benchmarks' own pieces (``bench_generation``,
``bench_inversion``, ``bench_concept_step``, ``_baseline``), so the figures mean
what the benchmarks' figures mean.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import sys
from importlib import metadata

import _common
import torch
from _device_context import Context, Result
from torch.utils.data import Dataset

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "peft", "timm")


def environment(ctx: Context, result: Result, allowed_s: float) -> None:
    """The machine and the versions the figures come from."""
    import diffii_datasets

    result.figures["python"] = platform.python_version()
    result.figures["diffii_datasets"] = diffii_datasets.__version__
    for name in PACKAGES:
        try:
            result.figures[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            result.figures[name] = "not installed"
    result.figures["cpu"] = f"{_common.cpu_model()}, {torch.get_num_threads()} threads"
    if ctx.cuda:
        properties = torch.cuda.get_device_properties(ctx.device)
        result.figures["gpu"] = properties.name
        result.figures["gpu_memory_mib"] = properties.total_memory / 2**20
        result.figures["cuda"] = torch.version.cuda
        result.figures["cudnn"] = torch.backends.cudnn.version()
        result.figures["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        result.figures["gpu"] = "none (dry run on the CPU)"
    result.details["argv"] = sys.argv


def model(ctx: Context, result: Result, allowed_s: float) -> None:
    """Build the shared pipeline (random weights, no download) and save it for the baseline and the children."""
    pipe = ctx.pipeline()
    ctx.model_dir()
    result.figures["build_s"] = ctx.build_s
    result.figures["save_s"] = ctx.save_s
    result.figures["resolution_px"] = _common.resolution(pipe)
    for part in ("unet", "vae", "text_encoder"):
        module = getattr(pipe, part)
        result.figures[f"{part}_params_m"] = sum(p.numel() for p in module.parameters()) / 1e6
    result.figures["weights_mib"] = ctx.allocated_mib()
    result.details["pipeline"] = f"{ctx.sizes.pipeline}, {ctx.precision}, {ctx.device}"


def generation(ctx: Context, result: Result, allowed_s: float) -> None:
    """``generate_class`` at several batch sizes against the authors' per-image procedure (``_baseline.py``)."""
    import bench_generation

    from diffii_datasets.diffusion import GenerationConfig
    from diffii_datasets.diffusion.pipeline import latent_shape

    sizes, pipe = ctx.sizes, ctx.pipeline()
    classes, steps = sizes.generation_classes, sizes.generation_steps
    real = min(bench_generation.REAL_PER_CLASS, sizes.generation_images)
    config = GenerationConfig(expansion_rate=sizes.generation_images / real, split_ratio=0.3, denoising_steps=steps,
                              guidance_scale=7.5, batch_size=max(sizes.generation_batches),
                              resolution=_common.resolution(pipe))
    generator = torch.Generator().manual_seed(0)
    inversions = [torch.randn((real, *latent_shape(pipe)), generator=generator) for _ in range(classes)]
    job = bench_generation.Job(str(ctx.model_dir()), ctx.device, ctx.dtype, config, inversions)
    jobs = {batch: dataclasses.replace(job, config=dataclasses.replace(config, batch_size=batch))
            for batch in sizes.generation_batches}
    engine_pipe, load_s = bench_generation.load_engine_pipeline(job)
    result.details.update(classes=classes, images_per_class=sizes.generation_images, steps=steps,
                          precision=ctx.precision, resolution=config.resolution)
    result.figures["engine_load_s"] = load_s
    # Warm-up, one step of each path: the first calls build kernels and caches that the timed runs reuse.
    bench_generation.baseline_class(job, 0, steps=1)
    for batch_job in jobs.values():
        bench_generation.engine_class(engine_pipe, batch_job, 0, None, steps=1)
    baseline = ctx.measure(lambda: [bench_generation.baseline_class(job, c) for c in range(classes)])
    reference = [image for images in baseline.value for image in images]
    result.figures["baseline_s"] = baseline.seconds
    result.figures["baseline_images_per_s"] = len(reference) / baseline.seconds
    result.figures["baseline_peak_mib"] = baseline.peak_mib
    for batch, batch_job in jobs.items():
        run = ctx.measure(lambda: [bench_generation.engine_class(engine_pipe, batch_job, c, None)
                                   for c in range(classes)])
        made = [image for images in run.value for image in images]
        total = load_s + run.seconds  # the engine loads its pipeline once per run: part of its cost
        result.figures[f"speedup_batch_{batch}_x"] = baseline.seconds / total
        result.figures[f"engine_batch_{batch}_images_per_s"] = len(made) / total
        result.figures[f"engine_batch_{batch}_peak_mib"] = run.peak_mib
        result.details[f"max_pixel_diff_batch_{batch}"] = bench_generation.max_pixel_difference(made, reference)
    # What bounds batching: the UNet's cost per row at the baseline's batch (2: CFG) and at the largest engine batch.
    rows = 2 * max(sizes.generation_batches)
    result.figures["unet_ms_per_row_batch_2"] = _common.unet_ms_per_image(engine_pipe, 2, ctx.device)
    result.figures[f"unet_ms_per_row_batch_{rows}"] = _common.unet_ms_per_image(engine_pipe, rows, ctx.device)
    result.figures["batching_bound_x"] = (result.figures["unet_ms_per_row_batch_2"]
                                          / result.figures[f"unet_ms_per_row_batch_{rows}"])
    result.notes.append("speedup: the baseline's seconds over the engine's (its one pipeline load included); the "
                        "UNet sees twice the batch (classifier-free guidance); batching_bound_x: what batching alone "
                        "can give, the UNet's cost per row at batch 2 over its cost at the largest batch")


def inversion(ctx: Context, result: Result, allowed_s: float) -> None:
    """Batched ``ddim_invert`` at several batch sizes against per-image inversion, guidance 1.0."""
    import bench_inversion

    from diffii_datasets.diffusion import ddim_invert
    from diffii_datasets.testing import tiny_image_dataset

    sizes, pipe = ctx.sizes, ctx.pipeline()
    count, steps = sizes.inversion_images, sizes.inversion_steps
    dataset = tiny_image_dataset(num_classes=1, per_class=count, size=_common.resolution(pipe), seed=0)
    images = [dataset[i][0] for i in range(count)]

    def engine(batch: int, steps: int) -> torch.Tensor:
        return ddim_invert(pipe, images, bench_inversion.PROMPT, steps, 1.0, batch_size=batch)

    bench_inversion.baseline(pipe, images[:1], 1)  # warm-up
    for batch in sizes.inversion_batches:
        engine(batch, 1)
    baseline = ctx.measure(lambda: bench_inversion.baseline(pipe, images, steps))
    reference = baseline.value.float().cpu()
    result.details.update(images=count, steps=steps, precision=ctx.precision)
    result.figures["baseline_s"] = baseline.seconds
    result.figures["baseline_peak_mib"] = baseline.peak_mib
    for batch in sizes.inversion_batches:
        run = ctx.measure(lambda: engine(batch, steps))
        result.figures[f"speedup_batch_{batch}_x"] = baseline.seconds / run.seconds
        result.figures[f"engine_batch_{batch}_peak_mib"] = run.peak_mib
        result.details[f"relative_diff_batch_{batch}"] = float((run.value.float().cpu() - reference).norm()
                                                               / reference.norm())
    result.notes.append(f"{steps} steps (the paper: 200): both sides cost the same per step, so the ratio "
                        "does not depend on the number of steps")


def unet_share(ctx: Context, result: Result, allowed_s: float) -> None:
    """The share of a whole ``DiffIIAugmented.prepare()`` spent inside UNet forward calls (the limit)."""
    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.diffusion import ConceptConfig, learn_concepts
    from diffii_datasets.testing import tiny_image_dataset

    sizes, pipe = ctx.sizes, ctx.pipeline()
    resolution = _common.resolution(pipe)
    dataset = tiny_image_dataset(num_classes=1, per_class=sizes.share_real, size=resolution, seed=0)
    images = [[dataset[i][0] for i in range(len(dataset))]]
    # Ready-made concepts (one step: their values do not change the cost of generating with them).
    concept_config = dataclasses.replace(ConceptConfig(), **{**sizes.concept_overrides, "train_steps": 1,
                                                             "batch_size": 2})
    concepts = learn_concepts(pipe, images, dataset.classes, "shape", concept_config, progress=False)
    knobs = {"expansion_rate": 5.0, **sizes.share_steps}
    config = DiffIIConfig(resolution=resolution, batch_size=8, suffixes="builtin", seed=0, **knobs)
    modules = {"unet": pipe.unet, "vae_decoder": pipe.vae.decoder, "vae_encoder": pipe.vae.encoder,
               "text_encoder": pipe.text_encoder}
    augmented = DiffIIAugmented(dataset, "shape", config=config, pipeline=pipe, concepts=concepts,
                                cache_dir=ctx.scratch / "unet-share-cache", progress=False)
    timer = _common.ModuleTimer(modules, ctx.device)
    try:
        run = ctx.measure(augmented.prepare)
    finally:
        timer.remove()
    for name, seconds in timer.seconds.items():
        result.figures[f"{name}_pct"] = 100 * seconds / run.seconds
    result.figures["other_pct"] = 100 * (run.seconds - sum(timer.seconds.values())) / run.seconds
    result.figures["prepare_s"] = run.seconds
    result.figures["peak_mib"] = run.peak_mib
    result.details.update(synthetic_images=len(augmented.synthetic), unet_calls=timer.calls["unet"],
                          inversion_steps=config.inversion_steps, denoising_steps=config.denoising_steps)
    result.notes.append("other: scheduler steps, interpolation, PNG encoding, disk writes, concepts, store "
                        "bookkeeping; each timed call synchronises the GPU, which the share includes")


def concept_step(ctx: Context, result: Result, allowed_s: float) -> None:
    """One concept-learning step at the published recipe (``ConceptConfig()``), without and with checkpointing."""
    import bench_concept_step

    from diffii_datasets.diffusion import ConceptConfig, learn_concepts

    sizes, pipe = ctx.sizes, ctx.pipeline()
    recipe = dataclasses.replace(ConceptConfig(), **sizes.concept_overrides)
    side = recipe.resolution or _common.resolution(pipe)
    images_by_class, names = bench_concept_step.training_images(max(side, 48))
    result.details["recipe"] = recipe.to_dict()
    result.figures["resident_mib"] = ctx.allocated_mib()
    medians, peaks = {}, {}
    for label, checkpointing in (("plain", False), ("checkpointing", True)):
        config = dataclasses.replace(recipe, train_steps=1 + sizes.concept_timed_steps,
                                     gradient_checkpointing=checkpointing, seed=0)
        clock = bench_concept_step.StepClock(ctx.device)
        run = ctx.measure(lambda: learn_concepts(pipe, images_by_class, names, "shape", config,
                                                 progress=False, callback=clock))
        medians[label], peaks[label] = statistics.median(clock.step_seconds()), run.peak_mib
        result.figures[f"step_s_{label}"] = medians[label]
        result.figures[f"peak_mib_{label}"] = peaks[label]
    result.figures["checkpointing_step_cost_x"] = medians["checkpointing"] / medians["plain"]
    if ctx.cuda:
        result.figures["checkpointing_saves_mib"] = peaks["plain"] - peaks["checkpointing"]
    result.notes.append(f"median of {sizes.concept_timed_steps} steps after a warm-up step, batch "
                        f"{recipe.batch_size} at {side} px; peaks include the pipeline's weights (resident_mib) "
                        "and the one-off encoding of the training images")


def prepare(ctx: Context, result: Result, allowed_s: float) -> None:
    """A whole ``DiffIIAugmented.prepare()`` of 2 classes x 3 images: the wrapper's real path, from the model's
    directory (loaded in its default dtype on the device) to the store, concepts learned."""
    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.testing import tiny_image_dataset

    model_dir = ctx.model_dir()
    dataset = tiny_image_dataset(num_classes=2, per_class=3, size=_common.resolution(ctx.pipeline()), seed=0)
    config = DiffIIConfig(model=str(model_dir), expansion_rate=2.0, suffixes="builtin", seed=0,
                          **ctx.sizes.prepare_knobs)
    cache = ctx.scratch / "prepare-cache"

    def wrapper() -> DiffIIAugmented:
        return DiffIIAugmented(dataset, "shape", config=config, device=ctx.device, cache_dir=cache, progress=False)

    first = ctx.measure(lambda: wrapper().prepare())
    augmented = first.value
    result.figures["prepare_s"] = first.seconds
    result.figures["peak_mib"] = first.peak_mib
    result.figures["synthetic_images"] = len(augmented.synthetic)
    result.figures["classes_generated"] = len(augmented.report.generated)
    image, label = augmented.synthetic[0]
    result.details["first_synthetic"] = {"size": list(image.size), "label": label}
    result.details["store"] = str(augmented.store.path)
    again = ctx.measure(lambda: wrapper().prepare())
    result.figures["reopen_s"] = again.seconds
    result.figures["reopen_classes_generated"] = len(again.value.report.generated)
    result.figures["store_mib"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2**20
    result.details["config"] = config.to_dict()
    result.notes.append("prepare_s includes loading the pipeline from its directory; the peak includes the weights "
                        "of the check's shared pipeline besides the one prepare() loads")


class RandomImages(Dataset):
    """Ready tensors (a small pool of random images, reused) with labels cycling over the classes.

    The cheapest possible loader, so the images/s are the network's and the trainer's.
    """

    def __init__(self, count: int, side: int, num_classes: int = 10, pool: int = 16) -> None:
        generator = torch.Generator().manual_seed(0)
        self.pool = torch.randn((pool, 3, side, side), generator=generator)
        self.count = count
        self.classes = [f"class {i}" for i in range(num_classes)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.pool[index % len(self.pool)], index % len(self.classes)


def classifier(ctx: Context, result: Result, allowed_s: float) -> None:
    """Training images/s of each published classifier recipe (random weights, random data), fp32 and AMP."""
    from diffii_datasets import classify

    sizes = ctx.sizes
    for backbone, overrides in sizes.classifier_models.items():
        published = classify.recipe_for("cub-5shot", backbone)
        base = published.replace(weights=None, synthetic_probability=0.0, epochs=sizes.classifier_epochs,
                                 **overrides)
        result.details[backbone] = {"model": base.model, "image_size": base.image_size,
                                    "batch_size": base.batch_size, "steps_per_epoch": sizes.classifier_steps}
        for precision in sizes.classifier_precisions:
            recipe = base.replace(amp=precision == "amp")
            train_set = RandomImages(recipe.batch_size * sizes.classifier_steps, recipe.image_size)
            test_set = RandomImages(recipe.batch_size, recipe.image_size)
            run = ctx.measure(lambda: classify.train(train_set, test_set, recipe, device=str(ctx.device),
                                                     workers=sizes.workers, progress=False, apply_transforms=False,
                                                     download=False))
            history = run.value.history
            result.figures[f"{backbone}_{precision}_images_per_s"] = history[-1].images_per_second
            result.figures[f"{backbone}_{precision}_peak_mib"] = run.peak_mib
    result.notes.append(f"images/s of the last of {sizes.classifier_epochs} epochs of {sizes.classifier_steps} "
                        "steps (the first warms up); fp32 is the published precision, amp the opt-in")
