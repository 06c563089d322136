"""The paper's benchmark datasets, samplers and settings (torchvision style).

- datasets: :class:`CUB200` (own loader) and thin adapters over torchvision's
  :class:`FGVCAircraft`, :class:`StanfordCars`, :class:`OxfordIIITPet`, :class:`Flowers102`
  that add ``targets``/``class_to_idx`` and stable ``sample_keys``;
- samplers: :func:`few_shot`, :func:`long_tail` (and :func:`long_tail_counts`,
  :func:`split_per_class`), returning a :class:`LabeledSubset`;
- registry: :func:`load_benchmark`, :func:`load_setting`, :func:`list_benchmarks`.

This package does not import the diffusion code.
"""

from diffii_datasets.benchmarks.cub import CUB200
from diffii_datasets.benchmarks.labeled import LabeledConcat, LabeledSubset
from diffii_datasets.benchmarks.registry import (
    BENCHMARKS,
    FLOWER_LT_SPLIT_SEED,
    Benchmark,
    BenchmarkSetting,
    list_benchmarks,
    load_benchmark,
    load_setting,
)
from diffii_datasets.benchmarks.sampling import (
    LONG_TAIL_PROFILES,
    few_shot,
    long_tail,
    long_tail_counts,
    split_per_class,
)
from diffii_datasets.benchmarks.torchvision_adapters import (
    STANFORD_CARS_MANUAL_DOWNLOAD,
    FGVCAircraft,
    Flowers102,
    OxfordIIITPet,
    StanfordCars,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkSetting",
    "CUB200",
    "FGVCAircraft",
    "FLOWER_LT_SPLIT_SEED",
    "Flowers102",
    "LONG_TAIL_PROFILES",
    "LabeledConcat",
    "LabeledSubset",
    "OxfordIIITPet",
    "STANFORD_CARS_MANUAL_DOWNLOAD",
    "StanfordCars",
    "few_shot",
    "list_benchmarks",
    "load_benchmark",
    "load_setting",
    "long_tail",
    "long_tail_counts",
    "split_per_class",
]
