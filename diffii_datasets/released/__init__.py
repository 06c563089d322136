"""The authors' released artifacts of every paper setting: concepts, suffixes, training and test lists.

Diff-II's authors publish, in the Hugging Face dataset repository ``Luka-Wang/Diff-II``,
three archives: ``ft_ti_db.zip`` (the learned concepts of every setting, hours on four GPUs
each), ``suffix.zip`` (the suffix lists their language model wrote) and ``datasets.zip``
(the few-shot and long-tail training lists and the test lists). For a paper setting:

- :func:`load_released` downloads what the setting needs (through the Hub cache), extracts
  it safely once, and returns a :class:`ReleasedSetting`: the concepts as a ``ConceptSet``, the
  suffixes as a suffix provider, and the lists mapped onto the user's copy of the dataset;
  ``released.augmented(cache_dir=...)`` is the wrapper that generates from them, with no
  concept learning;
- :func:`released_splits` (also ``load_setting(name, root, subset="released")``) gives the
  lists alone, for a classifier;
- :func:`fetch_released` gives the files (torch-free).

Every one of them takes ``released_from``: a local copy of the authors' files (the folder their
download script unzipped the archives into, or the zips), read instead of the Hub.

Where the files are inside the archives: :mod:`~diffii_datasets.released.layout`; how the
archives are extracted: :mod:`~diffii_datasets.released.archives`; how files are found in a copy:
:mod:`~diffii_datasets.released.locating`; a local copy: :mod:`~diffii_datasets.released.local`;
how class names are matched: :mod:`~diffii_datasets.released.names`. Names load lazily.
"""

from diffii_datasets._lazy import lazy_exports

_P = "diffii_datasets.released."
_EXPORTS = {
    _P + "layout": ("ARCHIVES", "EMBEDDINGS_LAST", "PARTS", "REPO_ID", "WATERBIRDS_LISTS", "ReleasedPaths",
                    "released_paths", "released_settings"),
    _P + "archives": ("MAX_EXTRACTED_BYTES", "DamagedArchiveError", "UnsafeArchiveError"),
    _P + "names": ("FLOWER_NAMES", "match_categories"),
    _P + "fetch": ("ReleasedFiles", "ReleasedWaterbirdsLists", "fetch_released", "fetch_waterbirds_lists",
                   "released_cache_dir"),
    _P + "setting": ("ReleasedSetting", "load_released", "released_splits"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
