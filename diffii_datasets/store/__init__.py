"""The store: the only code that knows the disk.

A store is one directory of synthetic images and their provenance for one
(method, config, dataset, model, concepts) fingerprint, resumable, checked as it is
read and repaired when damaged; a cache directory holds stores, the concept sets
learned for them and the scans of base datasets. Everything else reads and writes
through this package: :class:`SyntheticStore` (a store), :class:`StoreHeader` (what it
is for), :class:`SyntheticRecord` (where one image came from), :class:`ConceptCache`
(learned concepts and their lock) and :func:`default_cache_dir`.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.store.store": ("SyntheticStore",),
    "diffii_datasets.store.header": ("FORMAT_VERSION", "StoreFormatError", "StoreHeader", "StoreMismatchError"),
    "diffii_datasets.store.record": ("SyntheticRecord",),
    "diffii_datasets.store.checks": ("StoreDamageError", "StoreProblem"),
    "diffii_datasets.store.writer": ("ClassWriter",),
    "diffii_datasets.store.concepts": ("ConceptCache",),
    "diffii_datasets.store.cache": ("RelatedStore", "default_cache_dir", "related_stores", "store_path",
                                    "stores_in"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
