"""Where everything lives on disk: the one place that spells a store's and a cache's file names.

A cache directory holds stores, the concept sets learned for them and the scans of
base datasets::

    <cache>/
      <store key>/               one store (a 16-hex-digit digest of its header)
      concepts/<concept key>/    a learned concept set, with learned-from.json beside concepts.json
      locks/                     concepts-<key>.lock (one per concept key, shared by every store),
                                 store-<store key>.lock (held to make, open for writing or remove a store)
      scans/<signature>.json     the digests of a base dataset's images (skips decoding them again)

and a store::

    <store>/
      store.json                 header: what this store is for (method, config, classes, identities)
      manifest.json              written last, when every class is committed (counts, checksums)
      shared/                    suffixes.json, checksums.json (its SHA-256), the captioned suffixes' caches
      work/                      scratch (concept-learning checkpoints, the shared-filesystem check)
      classes/00003/             one committed class (the class *index*, never its name)
        inversions.safetensors   the DDIM inversion pool x_T of the class's real images (methods that invert)
        real/00000.png ...       the class's real images (PNG), in the order ``source_indices`` refer to
        images/00000.png ...     synthetic images (PNG, or JPEG when configured)
        metadata.jsonl           provenance: one :class:`~diffii_datasets.store.SyntheticRecord` a line
        class.json               commit record: count and SHA-256 of every file above
      locks/                     inter-process locks (one per class, one for the shared stage) and
                                 user-<pid>.lock of each process that has the store open for writing

Pure Python.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CLASSES_DIR",
    "CLASS_RECORD",
    "CONCEPTS_DIR",
    "HEADER",
    "IMAGES_DIR",
    "INVERSIONS",
    "LOCKS_DIR",
    "MANIFEST",
    "METADATA",
    "REAL_DIR",
    "SCANS_DIR",
    "SHARED_CHECKSUMS",
    "SHARED_DIR",
    "SHARED_SUFFIXES",
    "WORK_DIR",
    "class_dir_name",
    "image_file",
    "is_store",
    "real_file",
]

HEADER = "store.json"
MANIFEST = "manifest.json"
CLASSES_DIR = "classes"
SHARED_DIR = "shared"
WORK_DIR = "work"
LOCKS_DIR = "locks"
SHARED_SUFFIXES = "suffixes.json"
SHARED_CHECKSUMS = "checksums.json"

CLASS_RECORD = "class.json"
METADATA = "metadata.jsonl"
INVERSIONS = "inversions.safetensors"
REAL_DIR = "real"
IMAGES_DIR = "images"

CONCEPTS_DIR = "concepts"
SCANS_DIR = "scans"


def class_dir_name(class_index: int) -> str:
    """``00003``: a class directory is named by the class index, never its name."""
    return f"{class_index:05d}"


def real_file(index: int) -> str:
    """Real image ``index`` of a class, relative to the class directory (always lossless PNG)."""
    return f"{REAL_DIR}/{index:05d}.png"


def image_file(index: int, extension: str) -> str:
    """Synthetic image ``index`` of a class, relative to the class directory."""
    return f"{IMAGES_DIR}/{index:05d}{extension}"


def is_store(path: Path) -> bool:
    """Whether ``path`` looks like a store directory (it has a header file)."""
    return (path / HEADER).is_file()
