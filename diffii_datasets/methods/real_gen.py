"""Real-Gen (Table 2's baseline): plain SD's text-to-image images of each class, sized like its real images.

As Diff-Mix's ``scripts/sample_mp.py --sample_strategy real-gen`` makes them ("DM:",
``Zhicaiwww/Diff-Mix`` at a81337b): ``RealGeneration`` (DM:augmentation/real_mix.py:25-128)
on plain SD (no tokens, no LoRA: sample_mp.py:30-33), prompt "a photo of a <Class_Name>"
(the name through ``format_name``: angle brackets and underscores, ordinary text to plain
SD, L21-22, L84-85), DPM-Solver++ (L57-60) for 25 steps (L95), guidance 7.5, 512 x 512
(L96-97), each image resized (bilinear) to the size of a real image of its class drawn
uniformly (sample_mp.py:105-109; L124-126). Diff-Mix's strength is forced to 1 for it and
only names its files.

Per class ``c``: ``int(expansion_rate * n_c)`` images, drawn from one CPU generator seeded
by :func:`~diffii_datasets.diffusion.generator.class_seed` ``(seed, c)``: first each image's
own seed (the same as the image-to-image methods' image of that index), then the real image
whose size it takes (:func:`draw_real_gen`).
Diff-Mix draws the class of each of its ``5 x len(train)`` tasks uniformly instead (see
:mod:`~diffii_datasets.methods.image_edit`). Records carry ``seed``, the image's own
generator's (its noise), and no source image: an image starts from text alone.
Pure Python at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from diffii_datasets.methods.base import ClassJob, ImageStage, Method
from diffii_datasets.methods.baseline_config import BaselineConfig
from diffii_datasets.methods.image_edit import IMAGES_PER_CALL, check_prompts_fit, image_seeds
from diffii_datasets.methods.prompt_templates import fill_prompt

__all__ = ["GENERATION", "RealGen", "RealGenConfig", "RealGenDraws", "draw_real_gen"]

GENERATION = "text-to-image"
"""Real-Gen's per-class stage (as the plan and the bars name it)."""


@dataclass(frozen=True, init=False, repr=False)
class RealGenConfig(BaselineConfig):
    """Real-Gen's knobs; defaults: Diff-Mix's ``real-gen`` strategy (see :mod:`diffii_datasets.methods.real_gen`)."""

    method: ClassVar[str] = "real-gen"
    DEFAULTS: ClassVar[dict[str, Any]] = {"prompt": "a photo of a {bracketed_name}", "sampler": "dpm-solver++",
                                          "denoising_steps": 25}


RealGenConfig.declare_signature()


@dataclass(frozen=True)
class RealGenDraws:
    """The draws of one class, in image order: the real image whose size each image takes, and its seed."""

    size_sources: list[int]
    seeds: list[int]


def draw_real_gen(num_images: int, count: int, generator: Any) -> RealGenDraws:
    """Draw, in this order: each image's seed, its size source (uniform over the class)."""
    import torch

    seeds = image_seeds(generator, count)
    sources = torch.randint(0, num_images, (count,), generator=generator).tolist() if num_images else []
    return RealGenDraws(sources, seeds)


class RealGen(Method):
    """Real-Gen: text-to-image images of each class from plain SD (Diff-Mix's ``real-gen``)."""

    name: ClassVar[str] = "real-gen"
    title: ClassVar[str] = "Real-Gen"
    config_class: ClassVar[type[RealGenConfig]] = RealGenConfig
    record_fields: ClassVar[tuple[str, ...]] = ("seed",)

    def expected_count(self, real_count: int, config: RealGenConfig) -> int:
        from diffii_datasets.diffusion.generator import num_synthetic

        return num_synthetic(real_count, config.expansion_rate)

    def image_stages(self, config: RealGenConfig) -> list[ImageStage]:
        guidance = f" x 2 (guidance {config.guidance_scale:g})" if config.guidance_scale > 1 else ""
        detail = f"synthetic images x {config.sampler} {config.denoising_steps} steps{guidance}"
        return [ImageStage(GENERATION, 0, config.unet_calls(), detail)]

    def generate_class(self, job: ClassJob) -> None:
        import torch

        from diffii_datasets.diffusion.generator import class_seed
        from diffii_datasets.diffusion.pipeline import PromptEncoder
        from diffii_datasets.diffusion.text2image import generate_images
        from diffii_datasets.store import SyntheticRecord

        config: RealGenConfig = job.config  # type: ignore[assignment]
        count = self.expected_count(len(job.images), config)
        generator = torch.Generator(device="cpu").manual_seed(class_seed(config.seed, job.class_index))
        draws = draw_real_gen(len(job.images), count, generator)
        prompt = fill_prompt(config.prompt, job.class_names[job.class_index], job.metaclass)
        check_prompts_fit(job.pipe, [prompt])
        stage = job.stages[GENERATION]
        stage.resume()
        encoder = PromptEncoder(job.pipe)
        chunk = config.batch_size * IMAGES_PER_CALL
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            images = generate_images(
                job.pipe, [prompt] * (stop - start),
                generators=[torch.Generator(device="cpu").manual_seed(s) for s in draws.seeds[start:stop]],
                output_sizes=[job.images[i].size for i in draws.size_sources[start:stop]],
                num_inference_steps=config.denoising_steps, guidance_scale=config.guidance_scale,
                sampler=config.sampler, resolution=config.resolution, batch_size=config.batch_size,
                prompt_encoder=encoder, autocast_dtype=config.autocast_dtype, on_step=stage.advance)
            for index, image in zip(range(start, stop), images):
                job.writer.add(image, SyntheticRecord(index=index, label=job.class_index, seed=draws.seeds[index]))
