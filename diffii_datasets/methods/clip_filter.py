"""Diff-Mix's CLIP filter, the Real-Filter baseline: score every synthetic image, drop the bottom 10 %.

As DM:scripts/filter_syn_data.py does it: CLIP ViT-B/32 (``openai/clip-vit-base-patch32``,
L59-64; the caller loads it) looks at each image, given raw to the processor (L65-66,
L75-80), and at two captions, "a photo with a <metaclass> on it" and "a photo without a
<metaclass> on it". An image's score is the softmax over its two logits, taken at the
first caption: P(with) (L83-90). The threshold is the 10th percentile of the scores of
the **whole synthetic set at once** (not per class), by numpy's default linear
interpolation (``np.percentile``, L93); an image is kept when its score is at least the
threshold (L96, written to ``meta_10-100per.csv``). Diff-Mix also writes the dropped
images (score < p10) and the top decile (score >= p90); only the kept set is used.

The captions are Diff-Mix's per dataset (L12-30), spelled unevenly: CUB's are
``"a photo with a bird on it"`` / ``"a photo without a bird on it"``; the other four
end in ``". "`` (``"a photo with a dog on it. "``), aircraft's read "an aricraft" and
car's negative "without an car". :data:`DIFF_MIX_CAPTIONS` keeps them verbatim;
:func:`filter_captions` writes CUB's form for any metaclass, with "an" before a vowel
and no trailing period, so it equals Diff-Mix's captions for "bird" and corrects the
typos elsewhere. Pass ``DIFF_MIX_CAPTIONS[...]`` to reproduce their other datasets word
for word (the period is a token of its own and moves the scores a little).

Torch-free at import: torch, numpy and PIL load when a function runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DIFF_MIX_CAPTIONS", "FILTER_PERCENTILE", "clip_scores", "filter_captions", "keep_mask", "score_threshold"]

FILTER_PERCENTILE = 10.0
"""Diff-Mix drops the images scoring below this percentile of the whole synthetic set."""

DIFF_MIX_CAPTIONS: dict[str, tuple[str, str]] = {
    "cub": ("a photo with a bird on it", "a photo without a bird on it"),
    "aircraft": ("a photo with an aricraft on it. ", "a photo without an aricraft on it. "),
    "dog": ("a photo with a dog on it. ", "a photo without a dog on it. "),
    "flower": ("a photo with a flower on it. ", "a photo without a flower on it. "),
    "car": ("a photo with a car on it. ", "a photo without an car on it. "),
}
"""Diff-Mix's two captions per dataset, verbatim, typos included (DM:scripts/filter_syn_data.py:12-30)."""


def filter_captions(metaclass: str) -> tuple[str, str]:
    """``("a photo with a <metaclass> on it", "a photo without a <metaclass> on it")``, "an" before a vowel."""
    metaclass = _checks.check_one_line(metaclass, "metaclass").strip()
    article = "an" if metaclass[0].lower() in "aeiou" else "a"
    return f"a photo with {article} {metaclass} on it", f"a photo without {article} {metaclass} on it"


def clip_scores(model: Any, processor: Any, images: Sequence[Any], captions: Sequence[str], *,
                batch_size: int = 200) -> np.ndarray:
    """P(``captions[0]``) against ``captions[1]`` for each image: float64 ``[len(images)]`` in [0, 1].

    ``model`` is a ``transformers.CLIPModel``, ``processor`` its ``CLIPProcessor``;
    ``images`` anything :func:`~diffii_datasets.images.to_pil_rgb` takes. Images go
    through the processor ``batch_size`` at a time (Diff-Mix's default 200) with both
    captions, padded to the longer, as Diff-Mix's loop does; the scores are its
    float32 probabilities, widened to float64 as its ``np.concatenate`` does.
    """
    import numpy as np
    import torch

    from diffii_datasets.images import to_pil_rgb

    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        _checks.fail(TypeError, "images", "a sequence of images", images)
    captions = _checks.check_str_sequence(captions, "captions", expected="two captions (with, without)")
    if len(captions) != 2:
        _checks.fail(ValueError, "captions", "two captions (with, without)", captions)
    _checks.check_int(batch_size, "batch_size", minimum=1)
    scores = [np.empty(0)]
    for start in range(0, len(images), batch_size):
        batch = [to_pil_rgb(images[i], name=f"images[{i}]") for i in range(start, min(start + batch_size, len(images)))]
        inputs = processor(text=list(captions), images=batch, return_tensors="pt", padding=True).to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.no_grad():
            probabilities = model(**inputs).logits_per_image.softmax(dim=1)
        scores.append(probabilities[:, 0].float().cpu().numpy().astype(np.float64))
    return np.concatenate(scores)


def _check_scores(scores: Any) -> np.ndarray:
    import numpy as np

    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        _checks.fail(TypeError, "scores", "a 1-D sequence of numbers", scores)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        _checks.fail(ValueError, "scores", "a non-empty 1-D sequence of finite numbers", scores)
    return array


def score_threshold(scores: Sequence[float] | np.ndarray, percentile: float = FILTER_PERCENTILE) -> float:
    """The ``percentile``-th percentile of all ``scores`` (numpy's linear interpolation, as Diff-Mix)."""
    import numpy as np

    percentile = _checks.check_number(percentile, "percentile", minimum=0, maximum=100)
    return float(np.percentile(_check_scores(scores), percentile))


def keep_mask(scores: Sequence[float] | np.ndarray, percentile: float = FILTER_PERCENTILE) -> np.ndarray:
    """Which images the filter keeps: ``scores >= score_threshold(scores, percentile)``, over the whole set."""
    array = _check_scores(scores)
    return array >= score_threshold(array, percentile)
