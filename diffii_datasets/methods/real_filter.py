"""Real-Filter: the Real-Guidance set less the images CLIP finds least likely to hold the metaclass.

A filter of another method's store: its :meth:`~RealFilter.source_config` is the
Real-Guidance config of the same knobs, which :func:`~diffii_datasets.prepare.prepare`
makes complete first. Then every image of that store is scored once per process by
Diff-Mix's CLIP filter (:mod:`~diffii_datasets.methods.clip_filter`: P("a photo with a
<metaclass> on it") against "... without ...", CLIP ViT-B/32), the threshold is the 10th
percentile of all the scores (dataset-wide, as DM:scripts/filter_syn_data.py:93-96), and
each class keeps its images scoring at least that, in order, as the very files of the
source store (the same bytes), their records' ``source_indices``, ``strength`` and
``seed`` carried over with the ``score``. A class's count is at most the source's; of
``n`` distinct scores the filter drops ``ceil(0.1 (n - 1))`` (numpy's linear interpolation:
about 10 % of a large set, one of ten), and ties at the threshold are kept.

Which set Diff-II filtered is not recorded: Diff-Mix's filter script takes any synthetic
folder (and as shipped reads an attribute its command line never defines,
filter_syn_data.py:95, 108), so one reading is Real-Gen's text-to-image set. This filters
Real-Guidance's, the method Diff-II's tables list it with (both cite He et al.). Pure Python at import.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from diffii_datasets import _checks
from diffii_datasets._knobs import choice, knob, number, positive_int
from diffii_datasets.methods.base import ClassJob, ImageStage, Method
from diffii_datasets.methods.clip_filter import DIFF_MIX_CAPTIONS, FILTER_PERCENTILE
from diffii_datasets.methods.edit_methods import RealGuidanceConfig

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CAPTION_CHOICES", "CLIP_MODEL", "FILTER", "EncodedImage", "RealFilter", "RealFilterConfig"]

logger = logging.getLogger(__name__)

CLIP_MODEL = "openai/clip-vit-base-patch32"
"""The CLIP model Diff-Mix's filter loads (DM:scripts/filter_syn_data.py:59-64)."""
CAPTION_CHOICES = ("metaclass", *DIFF_MIX_CAPTIONS)
"""``metaclass``: :func:`~diffii_datasets.methods.clip_filter.filter_captions` of the metaclass (Diff-Mix's CUB
pair for "bird"); a dataset name: Diff-Mix's pair for it, verbatim (typos and trailing periods included)."""
FILTER = "CLIP filter"
"""Real-Filter's per-class stage (as the plan and the bars name it)."""


def _model(value: Any, name: str) -> str:
    return _checks.check_str(value, name, expected="a Hub id or a local directory")


@dataclass(frozen=True, init=False, repr=False)
class RealFilterConfig(RealGuidanceConfig):
    """Real-Filter's knobs: Real-Guidance's (the set it filters) and the filter's."""

    method: ClassVar[str] = "real-filter"

    clip_model: str = knob(CLIP_MODEL, "CLIP model that scores the images: a Hub id or a local directory "
                                       "(saved with save_pretrained)", _model)
    filter_captions: str = knob("metaclass", "the filter's two captions: metaclass ('a photo with a <metaclass> on "
                                             "it' / 'without': Diff-Mix's CUB pair for bird) or Diff-Mix's pair of "
                                             "one of its datasets, verbatim: " + ", ".join(DIFF_MIX_CAPTIONS),
                                choice(CAPTION_CHOICES), choices=CAPTION_CHOICES)
    filter_percentile: float = knob(FILTER_PERCENTILE, "drop the images scoring below this percentile of all the "
                                                       "scores (Diff-Mix: 10)", number(minimum=0, maximum=100))
    clip_batch_size: int = knob(200, "images per CLIP batch (Diff-Mix: 200; another size moves scores by float "
                                     "rounding)", positive_int)

    def source(self) -> RealGuidanceConfig:
        """The Real-Guidance config whose store this filters: the same values of its knobs."""
        return RealGuidanceConfig(**{item.name: getattr(self, item.name) for item in RealGuidanceConfig.knobs()})


RealFilterConfig.declare_signature()


class EncodedImage:
    """An image file's bytes, handed to the store's writer as they are: its ``save`` writes them unchanged
    (so a kept image is the very file of the source store, a JPEG not encoded again)."""

    def __init__(self, data: bytes, image_format: str) -> None:
        self.data, self.format = data, image_format

    def save(self, fp: Any, format: str | None = None, **options: Any) -> None:  # noqa: A002 - PIL's name
        if format is not None and format.upper() != self.format.upper():
            raise ValueError(f"an encoded {self.format} image cannot be saved as {format}")
        fp.write(self.data)


class RealFilter(Method):
    """Real-Filter (He et al., ICLR 2023; Diff-Mix's CLIP filter): Real-Guidance's images, the bottom decile of
    CLIP scores dropped (see :mod:`diffii_datasets.methods.real_filter`)."""

    name: ClassVar[str] = "real-filter"
    title: ClassVar[str] = "Real-Filter"
    config_class: ClassVar[type[RealFilterConfig]] = RealFilterConfig
    diffusion: ClassVar[bool] = False
    record_fields: ClassVar[tuple[str, ...]] = ("source_indices", "strength", "seed", "score")

    def source_config(self, config: RealFilterConfig) -> RealGuidanceConfig:
        return config.source()

    def expected_count(self, real_count: int, config: RealFilterConfig) -> int:
        """The source's count: an upper bound (the filter keeps a class's images scoring above the threshold)."""
        from diffii_datasets.methods import get_method

        return get_method(RealGuidanceConfig.method).expected_count(real_count, config.source())

    def image_stages(self, config: RealFilterConfig) -> list[ImageStage]:
        return [ImageStage(FILTER, 0, 0, "Real-Guidance images scored by CLIP (no UNet)")]

    def generate_class(self, job: ClassJob) -> None:
        from diffii_datasets.store import SyntheticRecord
        from diffii_datasets.store.writer import ENCODINGS

        config: RealFilterConfig = job.config  # type: ignore[assignment]
        source = job.source
        if source is None or source.header.method != RealGuidanceConfig.method:
            raise ValueError("real-filter filters a complete real-guidance store: the job must carry it as source")
        stage = job.stages[FILTER]
        stage.resume()
        scores, threshold = store_scores(source, config, job.metaclass)
        records = source.records(job.class_index)
        kept = [(record, score) for record, score in zip(records, scores[job.class_index]) if score >= threshold]
        image_format = ENCODINGS[source.image_format][0]
        for index, (record, score) in enumerate(kept):
            data = source.read_file(source.image_path(job.class_index, record.file))
            job.writer.add(EncodedImage(data, image_format), SyntheticRecord(
                index=index, label=job.class_index, source_indices=record.source_indices, strength=record.strength,
                seed=record.seed, score=float(score)))
        stage.advance(float(len(records)))
        logger.info("class %d: kept %d of %d Real-Guidance images (CLIP score >= %.6g)", job.class_index, len(kept),
                    len(records), threshold)


_SCORES: dict[tuple[Any, ...], list[np.ndarray]] = {}
"""Scores of whole source stores, by store content and scoring knobs: each store is scored once per process."""


def store_scores(source: Any, config: RealFilterConfig, metaclass: str) -> tuple[list[np.ndarray], float]:
    """The CLIP score of every image of the complete store ``source``, class by class, and the threshold: the
    ``filter_percentile``-th percentile of them all (``inf`` for a store without images: nothing to keep)."""
    import numpy as np

    from diffii_datasets._pretrained import local_or_hub
    from diffii_datasets.methods.clip_filter import clip_scores, filter_captions, score_threshold

    if source.manifest() is None:
        raise ValueError(f"the store at {source.path} is incomplete: the filter scores a whole store")
    captions = filter_captions(metaclass) if config.filter_captions == "metaclass" \
        else DIFF_MIX_CAPTIONS[config.filter_captions]
    key = (str(source.path), source.manifest_digest(), local_or_hub(config.clip_model, "clip_model"), captions,
           config.clip_batch_size)
    if key not in _SCORES:
        images = _StoreImages(source)
        model, processor = _load_clip(config.clip_model)
        logger.info("scoring the %d images of %s with CLIP %s", len(images), source.path, config.clip_model)
        everything = clip_scores(model, processor, images, captions, batch_size=config.clip_batch_size)
        bounds = np.cumsum([0, *images.counts])
        _SCORES[key] = [everything[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
    scores = _SCORES[key]
    everything = np.concatenate(scores)
    return scores, score_threshold(everything, config.filter_percentile) if everything.size else math.inf


def _load_clip(model_id: str) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    from diffii_datasets._pretrained import default_device, from_pretrained

    hint = "Real-Filter's CLIP filter; knob clip_model"
    model = from_pretrained(CLIPModel, model_id, "CLIP", hint=hint).eval().to(default_device(None))
    return model, from_pretrained(CLIPProcessor, model_id, "CLIP processor", hint=hint)


class _StoreImages(Sequence):
    """Every synthetic image of a store, class by class, read (and checked) on access."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._paths = []
        self.counts = []
        for class_index in range(store.header.num_classes):
            records = store.records(class_index)
            self.counts.append(len(records))
            self._paths += [store.image_path(class_index, record.file) for record in records]

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> Any:
        return self._store.load_image(self._paths[index])
