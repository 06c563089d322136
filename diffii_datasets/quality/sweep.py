"""The paper's Fig. 7 for one class: CLIP score and LPIPS diversity against the split ratio.

The class is generated again at each split ratio with everything else the store
used: its images, config, concepts, seed and class index, through the one
preparation path (:func:`~diffii_datasets.prepare.prepare` of the store's job with
another split ratio, one store per point in the store's cache, so a sweep is
resumable and its points are ordinary stores). The inversion pool is the store's
(Diff-II reuses the pool of another store of the same images, model, concepts and
inversion knobs), and the random draws (pairs, lambdas, suffix choices) do not
depend on the split ratio, so each point differs from the others by the split ratio
alone, and the point at the store's own split ratio is the store's own images.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._io import write_json
from diffii_datasets.quality.settings import QualitySettings

__all__ = ["DEFAULT_SPLIT_RATIOS", "SWEEP_IMAGES", "SplitRatioSweep", "SweepPoint", "split_ratio_sweep",
           "write_sweep"]

DEFAULT_SPLIT_RATIOS = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)
"""Includes the paper's settings: 0.1 (10-shot), 0.3 (5-shot) and 1.0 (long-tail)."""
SWEEP_IMAGES = 8
"""Images generated (and measured) per split ratio, by default."""


@dataclass(frozen=True)
class SweepPoint:
    split_ratio: float
    clip_score: float | None
    lpips: float | None
    count: int


@dataclass
class SplitRatioSweep:
    """The curve of one class; ``images`` holds the generated images per point (not written to JSON)."""

    class_index: int
    class_name: str
    store_split_ratio: float
    points: list[SweepPoint]
    models: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    images: list[list[Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"class_index": self.class_index, "class_name": self.class_name,
                "store_split_ratio": self.store_split_ratio, "models": self.models, "settings": self.settings,
                "points": [dataclasses.asdict(point) for point in self.points]}


def _concepts(concepts: Any) -> Any:
    """Given concepts: a ConceptSet, the directory it was saved to, or None (the store's learned ones)."""
    from diffii_datasets.diffusion.concepts import ConceptSet

    if isinstance(concepts, (str, os.PathLike)):
        concepts = ConceptSet.load(concepts)
    if concepts is not None and not isinstance(concepts, ConceptSet):
        _checks.fail(TypeError, "concepts", "a ConceptSet, a directory or None", concepts)
    return concepts


def _checked_ratios(split_ratios: Sequence[float]) -> list[float]:
    if isinstance(split_ratios, (str, bytes)) or not isinstance(split_ratios, Sequence) or not split_ratios:
        _checks.fail(TypeError, "split_ratios", "a non-empty sequence of numbers in [0, 1]", split_ratios)
    return sorted({_checks.check_number(s, "split_ratios item", minimum=0, maximum=1) for s in split_ratios})


def split_ratio_sweep(store: Any, class_index: int, split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS, *,
                      models: Any, num_images: int = SWEEP_IMAGES, pipeline: Any = None, concepts: Any = None,
                      settings: QualitySettings | None = None, device: Any = None,
                      progress: bool = True) -> SplitRatioSweep:
    """Generate ``num_images`` images of ``class_index`` at each split ratio and measure them.

    ``pipeline`` defaults to the store's model (``load_generation_pipeline``); one
    given must be that model (its identity is checked). ``concepts`` defaults to the
    store's learned concepts (in its cache); a store made with given concepts needs them.
    The CLIP score is against ``a photo of a <class> <metaclass>``, LPIPS is the mean over
    all pairs of the generated images.
    """
    from tqdm.auto import tqdm

    from diffii_datasets.diffusion.pipeline import model_identity
    from diffii_datasets.diffusion.prompts import build_prompt
    from diffii_datasets.job import job_from_store
    from diffii_datasets.prepare import load_generation_pipeline, prepare
    from diffii_datasets.quality.diversity import mean_pairwise_lpips
    from diffii_datasets.quality.faithfulness import clip_image_embeddings, clip_score, clip_text_embeddings

    header = store.header
    _checks.check_int(class_index, "class_index", minimum=0, maximum=header.num_classes - 1)
    _checks.check_int(num_images, "num_images", minimum=2)
    ratios = _checked_ratios(split_ratios)
    settings = settings or QualitySettings()
    if header.method != "diff-ii":
        raise ValueError(f"the split ratio is Diff-II's; the store at {store.path} was made by {header.method}")
    if not store.is_committed(class_index):
        raise ValueError(f"class {class_index} is not generated in {store.path} yet: its inversions are missing")
    if not header.real_counts[class_index]:
        raise ValueError(f"class {class_index} has no real images in {store.path}: there is nothing to generate from")
    job = job_from_store(store, concepts=_concepts(concepts))
    pipe = pipeline if pipeline is not None else load_generation_pipeline(header.model, device=device)
    if model_identity(pipe) != header.model:
        raise ValueError(f"pipeline must be the store's model {header.model!r}, got {model_identity(pipe)!r}")
    generation = header.config.generation
    # The store's expansion rate keeps its random draws (so the store's split ratio repeats its images);
    # a larger one only when the store has fewer images than asked for.
    rate = max(generation.expansion_rate, (num_images + 0.5) / header.real_counts[class_index])
    name = header.classes[class_index]
    text = clip_text_embeddings(models, [build_prompt(name, header.metaclass)])[0]
    sweep = SplitRatioSweep(class_index, name, generation.split_ratio, [], models.describe(), settings.to_dict())
    for ratio in tqdm(ratios, desc=f"sweep {name[:24]}", unit="ratio", disable=not progress):
        point = dataclasses.replace(job, config=header.config.replace(split_ratio=ratio, expansion_rate=rate))
        made = prepare(point, cache_dir=store.path.parent, pipeline=pipe, classes=[class_index], progress=False).store
        images = [made.load_image(made.image_path(class_index, record.file))
                  for record in made.records(class_index)[:num_images]]
        embeddings = clip_image_embeddings(models, images, batch_size=settings.batch_size)
        diversity = mean_pairwise_lpips(models.lpips, images, size=settings.lpips_size,
                                        batch_size=settings.batch_size, max_images=settings.lpips_max_images,
                                        seed=settings.seed)
        sweep.points.append(SweepPoint(ratio, clip_score(embeddings, text), diversity, len(images)))
        sweep.images.append(images)
    return sweep


def write_sweep(sweep: SplitRatioSweep, output_dir: str | os.PathLike, real_images: Sequence[Any] = ()) -> Path:
    """Write ``sweep.json``, the curve ``sweep.png`` and ``sweep-images.png`` (a row of images per split ratio)."""
    from diffii_datasets.preview import preview_grid
    from diffii_datasets.quality.images import load_rgb
    from diffii_datasets.quality.plots import split_ratio_curve_png

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "sweep.json", sweep.to_dict())
    title = f"class {sweep.class_index}: {sweep.class_name} (store: s = {sweep.store_split_ratio:g})"
    if sweep.models.get("random_weights"):
        title += "; random-weight metric networks"
    points = sweep.points
    (output / "sweep.png").write_bytes(split_ratio_curve_png([p.split_ratio for p in points],
                                                             [p.clip_score for p in points],
                                                             [p.lpips for p in points], title))
    if sweep.images:
        real = [load_rgb(item) for item in real_images]
        rows = [(f"s = {point.split_ratio:g}", real, images) for point, images in zip(points, sweep.images)]
        preview_grid(rows).save(output / "sweep-images.png")
    return output / "sweep.json"
