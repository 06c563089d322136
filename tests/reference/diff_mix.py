"""Port of Diff-Mix's image-to-image and text-to-image augmenters (reference for the side-by-side tests).

Source: Zhicaiwww/Diff-Mix, commit a81337b (mirror: /work/.mirror/Zhicaiwww+Diff-Mix/repo),
``augmentation/diff_mix.py`` (``format_name`` L22-23, ``DreamboothLoraMixup`` L75-175) and
``augmentation/real_mix.py`` (``RealGeneration`` L25-128). ``scripts/sample_mp.py`` drives
them with ``--batch_size 1``: one source image per call (L79-130).

Edits from the original, every one:

- ``PipelineClass.from_pretrained(model_path, use_auth_token=True, revision=revision,
  local_files_only=True, torch_dtype=torch.float16).to(device)`` -> ``PipelineClass(**components,
  requires_safety_checker=False)`` from a given pipeline's components: no weights to load; fp16 ->
  the given pipeline's dtype (float32 in the tests).
- The pipeline is an instance attribute (``self.pipe``), not the class attribute shared
  across instances "to avoid OOM" (the tests build several).
- Concept loading dropped (``load_diffmix_embeddings``, ``load_lora_weights`` and the print after
  it): the tests run plain SD, Diff-Mix's real-aug / real-mix / real-gen. ``name2placeholder`` is an
  optional constructor argument instead (default ``{}``, as the original without embeddings).
- ``if self.name2placeholder is not None:`` -> ``if self.name2placeholder:`` in
  ``DreamboothLoraMixup.forward``: without embeddings the original's dict is empty and the
  lookup raises ``KeyError`` (real-aug / real-mix crash as shipped, BASELINES.md section 8.1).
- Global torch RNG -> a ``generator`` argument of ``forward`` (a list of ``torch.Generator``,
  one per image), passed to the pipeline call.
- ``with autocast("cuda"):`` around the pipeline call removed (CPU, float32).
- ``print(prompt)`` removed; ``logging.disable_progress_bar()`` (a process-wide diffusers
  setting) removed, the pipeline's own bar is still disabled.
- Base class ``GenerativeMixup`` (an ``nn.Module`` with an abstract ``forward``) -> a plain class;
  ``forward`` is called directly; ``device``, ``revision``, ``model_path``, ``lora_path`` and
  ``embed_path`` arguments dropped.
- ``RealGeneration``: the ``mask`` / ``inverted`` / ``mask_grow_radius`` branch dropped (every
  Diff-Mix strategy runs with ``mask=False``).
"""

from typing import Callable, Tuple

from diffusers import DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image


def format_name(name):
    return f"<{name.replace(' ', '_')}>"


class DreamboothLoraMixup:

    def __init__(
        self,
        components: dict,
        prompt: str = "a photo of a {name}",
        format_name: Callable = format_name,
        guidance_scale: float = 7.5,
        disable_safety_checker: bool = True,
        name2placeholder: dict = None,
    ):

        PipelineClass = StableDiffusionImg2ImgPipeline

        self.pipe = PipelineClass(**components, requires_safety_checker=False)

        scheduler = DPMSolverMultistepScheduler.from_config(self.pipe.scheduler.config, local_files_only=True)
        self.placeholder2name = {}
        self.name2placeholder = name2placeholder or {}
        self.pipe.scheduler = scheduler

        self.pipe.set_progress_bar_config(disable=True)

        if disable_safety_checker:
            self.pipe.safety_checker = None

        self.prompt = prompt
        self.guidance_scale = guidance_scale
        self.format_name = format_name

    def forward(
        self,
        image: Image.Image,
        label: int,
        metadata: dict,
        strength: float = 0.5,
        resolution=512,
        generator=None,
    ) -> Tuple[Image.Image, int]:

        canvas = [img.resize((resolution, resolution), Image.BILINEAR) for img in image]
        name = metadata.get("name", "")

        if self.name2placeholder:
            name = self.name2placeholder[name]
        if metadata.get("super_class", None) is not None:
            name = name + " " + metadata.get("super_class", "")
        prompt = self.prompt.format(name=name)

        kwargs = dict(
            image=canvas,
            prompt=[prompt],
            strength=strength,
            guidance_scale=self.guidance_scale,
            num_inference_steps=25,
            num_images_per_prompt=len(canvas),
            generator=generator,
        )

        has_nsfw_concept = True
        while has_nsfw_concept:
            outputs = self.pipe(**kwargs)

            has_nsfw_concept = (
                self.pipe.safety_checker is not None
                and outputs.nsfw_content_detected[0]
            )
        canvas = []
        for orig, out in zip(image, outputs.images):
            canvas.append(out.resize(orig.size, Image.BILINEAR))
        return canvas, label


class RealGeneration:

    def __init__(
        self,
        components: dict,
        prompt: str = "a photo of a {name}",
        format_name: Callable = format_name,
        guidance_scale: float = 7.5,
        disable_safety_checker: bool = True,
    ):

        PipelineClass = StableDiffusionPipeline

        self.pipe = PipelineClass(**components, requires_safety_checker=False)
        scheduler = DPMSolverMultistepScheduler.from_config(
            self.pipe.scheduler.config
        )
        self.pipe.scheduler = scheduler
        self.pipe.set_progress_bar_config(disable=True)

        if disable_safety_checker:
            self.pipe.safety_checker = None

        self.prompt = prompt
        self.guidance_scale = guidance_scale
        self.format_name = format_name

    def forward(
        self,
        image: Image.Image,
        label: int,
        metadata: dict,
        strength: float = 0.5,
        resolution=512,
        generator=None,
    ) -> Tuple[Image.Image, int]:

        name = self.format_name(metadata.get("name", ""))
        prompt = self.prompt.format(name=name)

        kwargs = dict(
            prompt=[prompt],
            guidance_scale=self.guidance_scale,
            num_inference_steps=25,
            num_images_per_prompt=len(image),
            height=resolution,
            width=resolution,
            generator=generator,
        )

        has_nsfw_concept = True
        while has_nsfw_concept:
            outputs = self.pipe(**kwargs)

            has_nsfw_concept = (
                self.pipe.safety_checker is not None
                and outputs.nsfw_content_detected[0]
            )

        canvas = []
        for orig, out in zip(image, outputs.images):
            canvas.append(out.resize(orig.size, Image.BILINEAR))

        return canvas, label
