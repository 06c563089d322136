"""Port of DA-Fusion's Real-Guidance and textual-inversion augmenters (reference for the side-by-side tests).

Source: brandontrabucco/da-fusion, HEAD (mirror: /work/.mirror/brandontrabucco+da-fusion/repo),
``semantic_aug/augmentations/real_guidance.py`` (``RealGuidance`` L18-127) and
``semantic_aug/augmentations/textual_inversion.py`` (``format_name`` L59-60,
``TextualInversion`` L63-182). ``train_classifier.py`` builds them with the launch scripts'
``--strength`` and ``--guidance-scale 7.5``; the pipeline's scheduler (PNDM, from SD's
config) and its default 50 steps are never changed.

Edits from the original, every one:

- ``PipelineClass.from_pretrained(model_path, use_auth_token=True, revision="fp16",
  torch_dtype=torch.float16).to('cuda')`` -> ``PipelineClass(**components,
  requires_safety_checker=False)`` from a given pipeline's components: no weights to load; fp16 ->
  the given pipeline's dtype (float32 in the tests). Its scheduler is the given pipeline's, SD's PNDM.
- ``TextualInversion``: ``load_embeddings(embed_path, model_path)`` (a fresh tokenizer and text
  encoder with the learned tokens added) dropped: the tests add the tokens to the given
  pipeline's tokenizer and text encoder themselves, in the same way.
- The pipeline is an instance attribute; the class attribute ``pipe = None`` (the original's
  "global sharing" guard) is gone.
- ``image.resize((512, 512), Image.BILINEAR)`` -> ``image.resize((self.resolution, self.resolution),
  Image.BILINEAR)``, ``resolution`` a constructor argument (512 in the original; the tiny test
  pipeline is 32 px).
- Global torch RNG -> a ``generator`` argument of ``forward`` (a list of one ``torch.Generator``),
  passed to the pipeline call.
- ``with autocast("cuda"):`` around the pipeline call removed (CPU, float32).
- ``logging.disable_progress_bar()`` (a process-wide diffusers setting) removed, the pipeline's
  own bar is still disabled.
- The ``mask`` / ``inverted`` / ``mask_grow_radius`` branch and the ``erasure_ckpt_path`` branch
  dropped (the launch scripts of Real-Guidance and DA-Fusion pass ``--mask 0``, and no erasure).
- Base class ``GenerativeAugmentation`` (an ``nn.Module`` with an abstract ``forward``) -> a plain
  class; ``forward`` is called directly; ``model_path`` and ``embed_path`` arguments dropped.
"""

from typing import Callable, Tuple

from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image


def format_name(name):
    return f"<{name.replace(' ', '_')}>"


class RealGuidance:

    def __init__(self, components: dict,
                 prompt: str = "a photo of a {name}",
                 strength: float = 0.5,
                 guidance_scale: float = 7.5,
                 disable_safety_checker: bool = True,
                 resolution: int = 512):

        PipelineClass = StableDiffusionImg2ImgPipeline

        self.pipe = PipelineClass(**components, requires_safety_checker=False)

        self.pipe.set_progress_bar_config(disable=True)

        if disable_safety_checker:
            self.pipe.safety_checker = None

        self.prompt = prompt
        self.strength = strength
        self.guidance_scale = guidance_scale
        self.resolution = resolution

    def forward(self, image: Image.Image, label: int,
                metadata: dict, generator=None) -> Tuple[Image.Image, int]:

        canvas = image.resize((self.resolution, self.resolution), Image.BILINEAR)
        prompt = self.prompt.format(name=metadata.get("name", ""))

        kwargs = dict(
            image=canvas,
            prompt=[prompt],
            strength=self.strength,
            guidance_scale=self.guidance_scale,
            generator=generator,
        )

        has_nsfw_concept = True
        while has_nsfw_concept:
            outputs = self.pipe(**kwargs)

            has_nsfw_concept = (
                self.pipe.safety_checker is not None
                and outputs.nsfw_content_detected[0]
            )

        canvas = outputs.images[0].resize(
            image.size, Image.BILINEAR)

        return canvas, label


class TextualInversion:

    def __init__(self, components: dict,
                 prompt: str = "a photo of a {name}",
                 format_name: Callable = format_name,
                 strength: float = 0.5,
                 guidance_scale: float = 7.5,
                 disable_safety_checker: bool = True,
                 resolution: int = 512):

        PipelineClass = StableDiffusionImg2ImgPipeline

        self.pipe = PipelineClass(**components, requires_safety_checker=False)

        self.pipe.set_progress_bar_config(disable=True)

        if disable_safety_checker:
            self.pipe.safety_checker = None

        self.prompt = prompt
        self.strength = strength
        self.guidance_scale = guidance_scale
        self.format_name = format_name
        self.resolution = resolution

    def forward(self, image: Image.Image, label: int,
                metadata: dict, generator=None) -> Tuple[Image.Image, int]:

        canvas = image.resize((self.resolution, self.resolution), Image.BILINEAR)
        name = self.format_name(metadata.get("name", ""))
        prompt = self.prompt.format(name=name)

        kwargs = dict(
            image=canvas,
            prompt=[prompt],
            strength=self.strength,
            guidance_scale=self.guidance_scale,
            generator=generator,
        )

        has_nsfw_concept = True
        while has_nsfw_concept:
            outputs = self.pipe(**kwargs)

            has_nsfw_concept = (
                self.pipe.safety_checker is not None
                and outputs.nsfw_content_detected[0]
            )

        canvas = outputs.images[0].resize(
            image.size, Image.BILINEAR)

        return canvas, label
