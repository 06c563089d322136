"""Diff-II on the Hugging Face side: ``datasets`` conversion, the builder, and Hub publishing.

- :func:`to_dataset_dict`: a complete synthetic store as a ``DatasetDict`` with ``train``
  (real), ``synthetic`` and optionally ``test``;
- :class:`DiffIIBuilder` and :func:`load`: the paper's settings as a ``datasets`` builder,
  generated through the same store or downloaded prebuilt;
- :func:`export_to_folder` and :func:`push_to_hub`: a plain Parquet dataset repository with
  a card rendered from ``hub_cards/``; several configs share one repository.

Names load lazily.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "DiffIIBuilder": "diffii_datasets.hf.builder",
    "DiffIIBuilderConfig": "diffii_datasets.hf.builder",
    "load": "diffii_datasets.hf.builder",
    "cards_dir": "diffii_datasets.hf.cards",
    "IncompleteStoreError": "diffii_datasets.hf.convert",
    "open_store": "diffii_datasets.hf.convert",
    "to_dataset_dict": "diffii_datasets.hf.convert",
    "SPLITS": "diffii_datasets.hf.features",
    "check_features": "diffii_datasets.hf.features",
    "diffii_features": "diffii_datasets.hf.features",
    "check_config_name": "diffii_datasets.hf.hub",
    "check_repo_id": "diffii_datasets.hf.hub",
    "export_to_folder": "diffii_datasets.hf.hub",
    "prebuilt_files": "diffii_datasets.hf.hub",
    "push_to_hub": "diffii_datasets.hf.hub",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
