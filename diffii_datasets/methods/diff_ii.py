"""Diff-II (the paper's method): class concepts, an inversion pool per class, circle interpolation, two stages.

Per class: every real image is DDIM-inverted with the class's concept prompt (the
pool is kept in the store, so a class regenerated after damage is not inverted
again), then each synthetic image interpolates a random pair of the pool on the
circle (Eq. 5) and is denoised in two stages, the first with a suffix drawn from the
store's suffix list. The engine is :mod:`diffii_datasets.diffusion.generator`; this
module says what the method needs and writes its records.
"""

from __future__ import annotations

from typing import Any, ClassVar

from diffii_datasets.config import DiffIIConfig
from diffii_datasets.methods.base import ClassJob, ImageStage, Method, guidance_detail, unet_evaluations

__all__ = ["DiffII", "GENERATION", "INVERSION"]

INVERSION, GENERATION = "DDIM inversion", "generation"
"""Diff-II's per-class stages, in the order they run (as the plan and the bars name them)."""


class DiffII(Method):
    """Diff-II: inversion circle interpolation and two-stage denoising (CVPR 2025)."""

    name: ClassVar[str] = "diff-ii"
    title: ClassVar[str] = "Diff-II"
    config_class: ClassVar[type[DiffIIConfig]] = DiffIIConfig
    concepts: ClassVar[bool] = True
    suffixes: ClassVar[bool] = True
    inversion: ClassVar[bool] = True
    record_fields: ClassVar[tuple[str, ...]] = ("source_indices", "lam", "suffix", "seed")

    def expected_count(self, real_count: int, config: DiffIIConfig) -> int:
        from diffii_datasets.diffusion.generator import num_synthetic

        return num_synthetic(real_count, config.expansion_rate)

    def image_stages(self, config: DiffIIConfig) -> list[ImageStage]:
        generation = config.generation
        return [
            ImageStage(INVERSION, unet_evaluations(generation.inversion_steps, generation.inversion_guidance_scale),
                       0, guidance_detail(generation.inversion_steps, generation.inversion_guidance_scale,
                                          "real images")),
            ImageStage(GENERATION, 0, unet_evaluations(generation.denoising_steps, generation.guidance_scale),
                       guidance_detail(generation.denoising_steps, generation.guidance_scale, "synthetic images")),
        ]

    def reusable(self, store: Any, class_index: int) -> Any:
        """The class's inversion pool, when one is committed intact: the class's own (it is being regenerated),
        or that of another store of the cache made from the same images, model, concepts and inversion knobs
        (a store of other generation knobs: another split ratio, expansion rate or guidance)."""
        from diffii_datasets.store import StoreDamageError, SyntheticStore
        from diffii_datasets.store.cache import related_stores

        candidates = [store] if store.is_committed(class_index) else []
        wanted = _inversion_identity(store.header)
        related = related_stores(store.path.parent, store.header)
        candidates += [SyntheticStore(other.path, other.header) for other in related
                       if _inversion_identity(other.header) == wanted]
        for candidate in candidates:
            if candidate.is_committed(class_index):
                try:
                    return candidate.read_inversions(class_index)
                except StoreDamageError:
                    continue
        return None

    def generate_class(self, job: ClassJob) -> None:
        from diffii_datasets.diffusion.generator import generate_class, invert_class
        from diffii_datasets.store import SyntheticRecord

        config: DiffIIConfig = job.config  # type: ignore[assignment]
        tokens = job.concepts.class_tokens(job.class_index)
        inversion, creation = job.stages[INVERSION], job.stages[GENERATION]
        inversions = job.previous
        if inversions is None:
            inversion.resume()
            inversions = invert_class(job.pipe, job.images, tokens, job.metaclass, config.generation,
                                      on_step=inversion.advance)
        else:
            inversion.skip(len(job.images))
        job.writer.write_inversions(inversions)
        creation.resume()
        for sample in generate_class(job.pipe, inversions, tokens, job.metaclass, job.suffixes, config.generation,
                                     seed=config.seed, class_index=job.class_index, on_step=creation.advance):
            job.writer.add(sample.image, SyntheticRecord(
                index=sample.index, label=job.class_index, source_indices=sample.source_indices, lam=sample.lam,
                suffix=sample.suffix, seed=sample.seed))


def _inversion_identity(header: Any) -> tuple[Any, ...] | None:
    """What a class's inversion pool depends on, beyond its images: the model, concepts and inversion knobs."""
    if header.method != DiffII.name:
        return None
    generation = header.config.generation
    return (header.model, header.concepts, generation.inversion_steps, generation.inversion_guidance_scale,
            generation.resolution, generation.batch_size, generation.autocast_dtype)
