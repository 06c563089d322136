"""``ImageEdit``: the image-to-image baselines' one procedure, a real image noised part of the way and denoised.

Per class ``c`` with ``n`` real images, ``int(expansion_rate * n)`` synthetic images. All
randomness of a class comes from one CPU ``torch.Generator`` seeded by
:func:`~diffii_datasets.diffusion.generator.class_seed` ``(seed, c)`` and is drawn up front
(:func:`draw_edits`), so a class's images do not depend on the other classes, the
order they run in or the number of processes:

1. the seed of each synthetic image's own ``torch.Generator``, which draws its VAE
   posterior sample and its noise (:func:`~diffii_datasets.diffusion.img2img.edit_images`);
2. its source image (``sources="random"``: uniform over the class, as Diff-Mix's
   ``random.sample(label_to_indices[source], 1)``; ``"each"``: image ``k * n // count``,
   every real image in turn, as DA-Fusion's ``product(range(len(dataset)), range(M))``, no draw);
3. its strength, uniform over ``strengths`` (only when there are several: Diff-Mix's
   ``random.choices([0.3, 0.5, 0.7, 0.9])``, DA-Fusion's ``ComposeParallel`` of four strengths);
4. its target class, uniform over all classes, its own included (inter-class methods only:
   Diff-Mix's ``random.choices(range(C))``, no exclusion).

In this order, methods share what they draw alike: at one expansion rate, image ``k`` of a
class has the same seed in every method (Real-Gen's too), the same source image in every method that draws it, and
so on; a Diff-Mix image whose target is its own class is the Diff-Aug image of the same
index. Comparisons between methods then see the method, not other noise.

The edit is :func:`~diffii_datasets.diffusion.img2img.edit_images` with the target class's
prompt; records carry ``source_indices`` (the edited image), ``strength``, ``seed`` (the
image's own generator's, so one image can be made again alone) and, for inter-class
methods, ``target``; an image is filed under its source class (as Diff-Mix files it under
``data/<source class>/``). Inter-class methods label it with Diff-Mix's soft label
(:func:`~diffii_datasets.methods.soft_labels.diffmix_soft_label`).

Counting differs from Diff-Mix's on purpose: Diff-Mix draws the source class of each of
``5 x len(train)`` tasks uniformly over all classes, so a class's count varies around
``5 x N / C``; here each class gets ``int(5 x n_c)`` (the same expectation for balanced
sets, exactly proportional for imbalanced ones), so classes are generated independently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from diffii_datasets.methods.base import ClassJob, ImageStage, Method
from diffii_datasets.methods.baseline_config import EditConfig
from diffii_datasets.methods.prompt_templates import fill_prompt
from diffii_datasets.methods.soft_labels import DEFAULT_GAMMA, check_gamma, diffmix_soft_label

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticRecord

__all__ = ["EDIT", "EditDraws", "ImageEdit", "check_prompts_fit", "class_prompts", "draw_edits", "image_seeds"]

EDIT = "image-to-image"
"""The per-class stage of the image-to-image methods (as the plan and the bars name it)."""
IMAGES_PER_CALL = 8
"""Batches of images per engine call: a class is made and written this many batches at a time (bounded memory)."""


@dataclass(frozen=True)
class EditDraws:
    """The random draws of one class, in image order: source image, strength, target class (``None`` for an
    intra-class method) and generator seed of each synthetic image."""

    sources: list[int]
    strengths: list[float]
    targets: list[int] | None
    seeds: list[int]


def image_seeds(generator: Any, count: int) -> list[int]:
    """``count`` seeds of the images' own generators, drawn from the class's ``generator`` (63-bit, non-negative)."""
    import torch

    return torch.randint(0, 2**63 - 1, (count,), generator=generator, dtype=torch.int64).tolist()


def draw_edits(num_images: int, count: int, config: EditConfig, num_classes: int | None, generator: Any
               ) -> EditDraws:
    """Draw, in this order: image seeds, sources (``sources="random"``), strength choices (several strengths),
    target classes (``num_classes`` given: an inter-class method)."""
    import torch

    seeds = image_seeds(generator, count)
    if config.sources == "random":
        sources = torch.randint(0, num_images, (count,), generator=generator).tolist() if num_images else []
    else:
        sources = [k * num_images // count for k in range(count)]
    if len(config.strengths) > 1:
        chosen = torch.randint(0, len(config.strengths), (count,), generator=generator).tolist()
        strengths = [config.strengths[i] for i in chosen]
    else:
        strengths = [config.strengths[0]] * count
    targets = torch.randint(0, num_classes, (count,), generator=generator).tolist() if num_classes else None
    return EditDraws(sources, strengths, targets, seeds)


class ImageEdit(Method):
    """An image-to-image baseline; subclasses set the names, the config and whether targets are other classes."""

    config_class: ClassVar[type[EditConfig]]
    inter_class: ClassVar[bool] = False
    """Whether each image is edited towards a class drawn over all classes (else its own)."""
    record_fields: ClassVar[tuple[str, ...]] = ("source_indices", "strength", "seed")

    def expected_count(self, real_count: int, config: EditConfig) -> int:
        from diffii_datasets.diffusion.generator import num_synthetic

        return num_synthetic(real_count, config.expansion_rate)

    def image_stages(self, config: EditConfig) -> list[ImageStage]:
        strengths = "/".join(f"{s:g}" for s in config.strengths)
        guidance = f" x 2 (guidance {config.guidance_scale:g})" if config.guidance_scale > 1 else ""
        detail = (f"synthetic images x {config.sampler} {config.denoising_steps} steps at strength {strengths}"
                  f"{guidance}")
        return [ImageStage(EDIT, 0, config.mean_unet_calls(), detail)]

    def generate_class(self, job: ClassJob) -> None:
        import torch

        from diffii_datasets.diffusion.generator import class_seed
        from diffii_datasets.diffusion.img2img import edit_images
        from diffii_datasets.diffusion.pipeline import PromptEncoder
        from diffii_datasets.store import SyntheticRecord

        config: EditConfig = job.config  # type: ignore[assignment]
        count = self.expected_count(len(job.images), config)
        seed = class_seed(config.seed, job.class_index)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        draws = draw_edits(len(job.images), count, config, len(job.class_names) if self.inter_class else None,
                           generator)
        targets = draws.targets if draws.targets is not None else [job.class_index] * count
        prompts = class_prompts(job, config.prompt, self.concepts, targets)
        stage = job.stages[EDIT]
        stage.resume()
        encoder = PromptEncoder(job.pipe)
        chunk = config.batch_size * IMAGES_PER_CALL
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            edited = edit_images(
                job.pipe, [job.images[i] for i in draws.sources[start:stop]],
                [prompts[t] for t in targets[start:stop]], draws.strengths[start:stop],
                generators=[torch.Generator(device="cpu").manual_seed(s) for s in draws.seeds[start:stop]],
                num_inference_steps=config.denoising_steps, guidance_scale=config.guidance_scale,
                sampler=config.sampler, resolution=config.resolution, batch_size=config.batch_size,
                prompt_encoder=encoder, autocast_dtype=config.autocast_dtype, on_step=stage.advance)
            for index, image in zip(range(start, stop), edited):
                job.writer.add(image, SyntheticRecord(
                    index=index, label=job.class_index, source_indices=(draws.sources[index],),
                    strength=draws.strengths[index], seed=draws.seeds[index],
                    target=targets[index] if self.inter_class else None))

    def soft_label(self, record: SyntheticRecord, num_classes: int, gamma: float | None = None) -> list[float]:
        """Inter-class methods: Diff-Mix's label, ``1 - s**gamma`` on the source class (``record.label``) and
        ``s**gamma`` on the target (``gamma`` default :data:`~diffii_datasets.methods.soft_labels.DEFAULT_GAMMA`);
        intra-class methods: one-hot (Diff-Mix's rule gives the same when source and target are one class)."""
        if not self.inter_class or record.target is None:
            return super().soft_label(record, num_classes, gamma)
        gamma = DEFAULT_GAMMA if gamma is None else check_gamma(gamma)
        return diffmix_soft_label(record.label, record.target, record.strength, gamma, num_classes)


def class_prompts(job: ClassJob, template: str, concepts: bool, classes: Sequence[int]) -> dict[int, str]:
    """The prompt of each of ``classes`` (the targets of a class's edits), each checked to fit the text encoder."""
    prompts = {c: fill_prompt(template, job.class_names[c], job.metaclass,
                              job.concepts.class_tokens(c) if concepts else None) for c in sorted(set(classes))}
    check_prompts_fit(job.pipe, prompts.values())
    return prompts


def check_prompts_fit(pipe: Any, prompts: Iterable[str]) -> None:
    """``ValueError`` for a prompt longer than the text encoder's context (its end would be cut off silently)."""
    tokenizer = pipe.tokenizer
    convert = getattr(pipe, "maybe_convert_prompt", None)  # multi-vector concept tokens, expanded
    for prompt in prompts:
        length = len(tokenizer(convert(prompt, tokenizer) if convert else prompt, truncation=False)["input_ids"])
        if length > tokenizer.model_max_length:
            raise ValueError(f"the prompt {prompt!r} is {length} tokens long, more than the text encoder's "
                             f"{tokenizer.model_max_length}: shorten the prompt template (knob prompt)")
