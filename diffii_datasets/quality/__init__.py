"""How good is a synthetic set? Diversity, faithfulness, distance to the real images and provenance, per class.

The paper judges its synthetic sets with two numbers: diversity as the mean LPIPS
between synthetic images (Table 4) and faithfulness as the CLIP score (Fig. 7).
This package computes those per class and overall for a store (or any real and
synthetic image sets), with CLIP image similarity to the nearest real image of the
class versus other classes, KID, and the store's provenance (lambda, suffixes,
noise starts); writes a JSON and self-contained HTML report; and sweeps the split
ratio for one class. Names load lazily: torch, CLIP and LPIPS only when used.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.quality.settings": ("DEFAULT_CLIP_MODEL", "LPIPS_NETS", "QualitySettings"),
    "diffii_datasets.quality.models": ("QualityModels", "load_quality_models"),
    "diffii_datasets.quality.inputs": ("ImageSets",),
    "diffii_datasets.quality.results": ("ClassQuality", "MEASURES", "QualityReport"),
    "diffii_datasets.quality.evaluation": ("evaluate",),
    "diffii_datasets.quality.flags": ("FLAG_RULES", "flag_classes"),
    "diffii_datasets.quality.provenance": ("summarize_provenance",),
    "diffii_datasets.quality.diversity": ("mean_pairwise_lpips", "pairwise_lpips"),
    "diffii_datasets.quality.faithfulness": (
        "clip_image_embeddings", "clip_score", "clip_text_embeddings", "nearest_real_similarity",
    ),
    "diffii_datasets.quality.distance": ("kernel_inception_distance",),
    "diffii_datasets.quality.report": ("report_store", "write_report"),
    "diffii_datasets.quality.sweep": ("DEFAULT_SPLIT_RATIOS", "SplitRatioSweep", "split_ratio_sweep", "write_sweep"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
