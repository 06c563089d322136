"""Diff-II on the Hugging Face side: ``datasets`` conversion, the builder, and Hub publishing.

- :func:`to_dataset_dict`: a complete synthetic store (or a prepared ``DiffIIAugmented``)
  as a ``DatasetDict`` with ``train`` (real), ``synthetic`` and optionally ``test``;
- :class:`DiffIIBuilder` and :func:`load`: the paper's settings as a ``datasets`` builder,
  generated through the same store or downloaded prebuilt;
- :func:`export_to_folder` and :func:`push_to_hub`: a plain Parquet dataset repository with
  a card rendered from ``hub_cards/``; several configs share one repository.
"""

from diffii_datasets.hf.builder import KNOBS, DiffIIBuilder, DiffIIBuilderConfig, load
from diffii_datasets.hf.cards import FAMILIES, cards_dir
from diffii_datasets.hf.convert import IncompleteStoreError, open_store, to_dataset_dict
from diffii_datasets.hf.features import SPLITS, check_features, diffii_features
from diffii_datasets.hf.hub import check_config_name, check_repo_id, export_to_folder, prebuilt_files, push_to_hub

__all__ = [
    "DiffIIBuilder",
    "DiffIIBuilderConfig",
    "FAMILIES",
    "IncompleteStoreError",
    "KNOBS",
    "SPLITS",
    "cards_dir",
    "check_config_name",
    "check_features",
    "check_repo_id",
    "diffii_features",
    "export_to_folder",
    "load",
    "open_store",
    "prebuilt_files",
    "push_to_hub",
    "to_dataset_dict",
]
