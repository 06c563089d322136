"""Image datasets in torchvision's style, and the few-shot and long-tail subsets drawn from them.

- :class:`CUB200` (own loader) and thin adapters over torchvision's :class:`FGVCAircraft`,
  :class:`StanfordCars`, :class:`OxfordIIITPet`, :class:`Flowers102` that add
  ``targets``/``class_to_idx`` and stable ``sample_keys``;
- samplers: :func:`few_shot`, :func:`long_tail` (and :func:`long_tail_counts`,
  :func:`split_per_class`), returning a :class:`LabeledSubset`; :func:`listed_subset` maps a
  list of files onto a dataset.

Which of them make the paper's settings is :mod:`diffii_datasets.settings`. This package
does not import the diffusion code. Names load lazily.
"""

from diffii_datasets._lazy import lazy_exports

_P = "diffii_datasets.image_datasets."
_EXPORTS = {
    _P + "listed": ("listed_subset",),
    _P + "cub": ("CUB200",),
    _P + "torchvision_adapters": (
        "FGVCAircraft", "Flowers102", "OxfordIIITPet", "STANFORD_CARS_MANUAL_DOWNLOAD", "StanfordCars",
    ),
    _P + "labeled": ("LabeledConcat", "LabeledSubset"),
    _P + "sampling": ("few_shot", "long_tail", "long_tail_counts", "split_per_class"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
