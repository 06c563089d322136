"""Diff-II on the Hugging Face side: ``datasets`` conversion, the builder, and Hub publishing.

- :func:`to_dataset_dict`: a complete synthetic store as a ``DatasetDict`` with ``train``
  (real), ``synthetic`` and optionally ``test``;
- :class:`DiffIIBuilder` and :func:`load`: the paper's settings as a ``datasets`` builder,
  generated through the same store or downloaded prebuilt;
- :func:`export_to_folder` and :func:`push_to_hub`: a plain Parquet dataset repository with
  a card rendered from ``hub_cards/``; several configs share one repository;
  :func:`preview_push` writes what a push would upload, offline.

Names load lazily.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.hf.builder": ("DiffIIBuilder", "DiffIIBuilderConfig", "load"),
    "diffii_datasets.hf.cards": ("cards_dir",),
    "diffii_datasets.hf.convert": ("IncompleteStoreError", "open_store", "to_dataset_dict"),
    "diffii_datasets.hf.features": ("SPLITS", "check_features", "diffii_features"),
    "diffii_datasets.hf.hub": ("export_to_folder", "prebuilt_files", "preview_push", "push_to_hub"),
    "diffii_datasets.hf.names": ("check_config_name", "check_repo_id"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
