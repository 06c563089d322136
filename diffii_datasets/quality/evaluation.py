"""Evaluate a synthetic set against its real images, class by class: diversity, faithfulness, KID, provenance.

One pass over the classes (one progress bar) loads each class's images once,
embeds them with CLIP and runs them through LPIPS; the comparisons that need
every class (nearest real image of another class, the pooled KID) use the
embeddings kept from that pass. Overall numbers: the LPIPS diversities are the
mean of the classes' (diversity is a within-class notion), the CLIP score,
similarities and KID pool every synthetic image (each scored against its own
class's prompt and real images).
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.quality.distance import kernel_inception_distance, kid_features
from diffii_datasets.quality.diversity import mean_pairwise_lpips
from diffii_datasets.quality.faithfulness import (
    clip_image_embeddings,
    clip_score,
    clip_text_embeddings,
    nearest_real_similarity,
)
from diffii_datasets.quality.flags import FLAG_RULES, flag_classes
from diffii_datasets.quality.images import load_rgb
from diffii_datasets.quality.inputs import ImageSets
from diffii_datasets.quality.provenance import lambda_edges, summarize_provenance
from diffii_datasets.quality.results import ClassQuality, QualityReport
from diffii_datasets.quality.settings import QualitySettings

__all__ = ["evaluate"]

_MODEL_KNOBS = ("clip_model", "lpips_net")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _similarities(own: torch.Tensor | None, other: torch.Tensor | None) -> dict[str, float | None]:
    return {
        "own_similarity": float(own.mean()) if own is not None else None,
        "other_similarity": float(other.mean()) if other is not None else None,
        "own_nearest_share": float((own > other).double().mean()) if own is not None and other is not None else None,
    }


def _kid(real: torch.Tensor, synthetic: torch.Tensor, settings: QualitySettings) -> dict[str, float | None]:
    found = kernel_inception_distance(kid_features(real), kid_features(synthetic), subsets=settings.kid_subsets,
                                      max_subset_size=settings.kid_subset_size, seed=settings.seed)
    return {"kid": found[0], "kid_std": found[1]} if found is not None else {}


def _lpips(models: Any, images: list, settings: QualitySettings) -> float | None:
    return mean_pairwise_lpips(models.lpips, images, size=settings.lpips_size, batch_size=settings.batch_size,
                               max_images=settings.lpips_max_images, seed=settings.seed)


def evaluate(sets: ImageSets, models: Any, settings: QualitySettings | None = None, *,
             progress: bool = True) -> QualityReport:
    """The :class:`QualityReport` of ``sets`` with ``models`` (:func:`load_quality_models` or the tiny test ones).

    ``settings`` says how the measures are computed; its model names only tell
    :func:`load_quality_models` what to load, so the report records the names of the
    ``models`` given (``report.models``) and the other settings (``report.settings``).
    """
    if not isinstance(sets, ImageSets):
        raise TypeError(f"sets must be an ImageSets, got {type(sets).__name__}")
    settings = settings or QualitySettings()
    prompts = [build_prompt(name, sets.metaclass) for name in sets.class_names]
    texts = clip_text_embeddings(models, prompts)
    real_embeddings, synthetic_embeddings, rows = [], [], []
    bar = tqdm(total=len(prompts), unit="class", desc="quality", disable=not progress, dynamic_ncols=True)
    for position, name in enumerate(sets.class_names):
        bar.set_postfix_str(name[:30])
        real = [load_rgb(item, f"real image {i} of class {name!r}") for i, item in enumerate(sets.real[position])]
        synthetic = [load_rgb(item, f"synthetic image {i} of class {name!r}")
                     for i, item in enumerate(sets.synthetic[position])]
        real_embeddings.append(clip_image_embeddings(models, real, batch_size=settings.batch_size))
        synthetic_embeddings.append(clip_image_embeddings(models, synthetic, batch_size=settings.batch_size))
        rows.append({
            "index": sets.class_indices[position],
            "name": name,
            "real_count": len(real),
            "synthetic_count": len(synthetic),
            "lpips_synthetic": _lpips(models, synthetic, settings),
            "lpips_real": _lpips(models, real, settings),
            "clip_score": clip_score(synthetic_embeddings[-1], texts[position]),
            "clip_score_real": clip_score(real_embeddings[-1], texts[position]),
            **_kid(real_embeddings[-1], synthetic_embeddings[-1], settings),
        })
        bar.update(1)
    bar.close()
    owns, others = [], []
    for position, row in enumerate(rows):
        own, other = nearest_real_similarity(synthetic_embeddings[position], real_embeddings, position)
        row.update(_similarities(own, other))
        owns.append(own)
        others.append(other)
    provenance = _provenance(sets, rows)
    for row, flags in zip(rows, flag_classes(rows)):
        row["flags"] = tuple(flags)
    return QualityReport(
        classes=[ClassQuality(**row) for row in rows],
        overall=_overall(rows, texts, real_embeddings, synthetic_embeddings, owns, others, provenance, settings),
        source={**sets.source, "metaclass": sets.metaclass, "prompt": build_prompt("<class>", sets.metaclass)},
        models=models.describe(),
        settings={key: value for key, value in settings.to_dict().items() if key not in _MODEL_KNOBS},
        flag_rules=dict(FLAG_RULES),
    )


def _provenance(sets: ImageSets, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per-class provenance summaries (into ``rows``) over shared lambda bins; the overall one is returned."""
    if sets.records is None:
        return None
    everything = [record for records in sets.records for record in records]
    edges = lambda_edges(everything)
    for row, records in zip(rows, sets.records):
        row["provenance"] = summarize_provenance(records, edges)
        row["noise_started_share"] = row["provenance"]["noise_started_share"]
    return summarize_provenance(everything, edges)


def _pooled(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    present = [part for part in parts if part is not None]
    return torch.cat(present) if present else None


def _overall(rows: list[dict[str, Any]], texts: torch.Tensor, real: list[torch.Tensor], synthetic: list[torch.Tensor],
             owns: list, others: list, provenance: dict[str, Any] | None, settings: QualitySettings) -> ClassQuality:
    # Pair each synthetic (and real) image with its own class's prompt, then score them all together.
    prompts_of_synthetic = torch.cat([texts[[c] * len(e)] for c, e in enumerate(synthetic)])
    prompts_of_real = torch.cat([texts[[c] * len(e)] for c, e in enumerate(real)])
    paired = [(own, other) for own, other in zip(owns, others) if own is not None and other is not None]
    share = _similarities(_pooled([own for own, _ in paired]), _pooled([other for _, other in paired]))
    return ClassQuality(
        index=None,
        name="all classes",
        real_count=sum(row["real_count"] for row in rows),
        synthetic_count=sum(row["synthetic_count"] for row in rows),
        lpips_synthetic=_mean([row["lpips_synthetic"] for row in rows if row["lpips_synthetic"] is not None]),
        lpips_real=_mean([row["lpips_real"] for row in rows if row["lpips_real"] is not None]),
        clip_score=clip_score(torch.cat(synthetic), prompts_of_synthetic),
        clip_score_real=clip_score(torch.cat(real), prompts_of_real),
        own_similarity=_similarities(_pooled(owns), None)["own_similarity"],
        other_similarity=_similarities(None, _pooled(others))["other_similarity"],
        own_nearest_share=share["own_nearest_share"],
        **_kid(torch.cat(real), torch.cat(synthetic), settings),
        noise_started_share=provenance["noise_started_share"] if provenance else None,
        provenance=provenance,
    )
