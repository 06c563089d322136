"""What a quality evaluation compares: per class, real and synthetic images, read lazily (one class at a time)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks
from diffii_datasets.quality.images import LazyImages

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticRecord

__all__ = ["ImageSets"]


@dataclass
class ImageSets:
    """Per class: its name, real images and synthetic images (paths or image-like values).

    ``class_indices`` are the classes' indices in their dataset (default 0, 1, ...);
    ``records`` the synthetic images' provenance (:class:`~diffii_datasets.store.SyntheticRecord`), when known;
    ``source`` describes where the images come from, for the report.
    """

    class_names: Sequence[str]
    metaclass: str
    real: Sequence[Sequence[Any]]
    synthetic: Sequence[Sequence[Any]]
    class_indices: Sequence[int] | None = None
    records: Sequence[Sequence[SyntheticRecord]] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.class_names = list(_checks.check_str_sequence(self.class_names, "class_names"))
        _checks.check_str(self.metaclass, "metaclass")
        count = len(self.class_names)
        self.class_indices = list(range(count)) if self.class_indices is None else list(self.class_indices)
        lists = {"real": self.real, "synthetic": self.synthetic, "class_indices": self.class_indices}
        if self.records is not None:
            lists["records"] = self.records
        for name, value in lists.items():
            if len(value) != count:
                _checks.fail(ValueError, f"len({name})", f"{count} (one entry per class)", len(value))
        if self.records is not None and any(len(r) != len(s) for r, s in zip(self.records, self.synthetic)):
            raise ValueError("records must hold one record per synthetic image of each class")

    @classmethod
    def from_store(cls, store: Any, classes: Sequence[int] | None = None) -> ImageSets:
        """The committed classes of a :class:`~diffii_datasets.store.SyntheticStore` (of ``classes``, default all)."""
        header = store.header
        wanted = range(header.num_classes) if classes is None else classes
        bad = [c for c in wanted if not 0 <= c < header.num_classes]
        if bad:
            raise ValueError(f"classes must be class indices in [0, {header.num_classes - 1}], got {bad}")
        committed = [c for c in wanted if store.is_committed(c)]
        if not committed:
            raise ValueError(f"none of the requested classes is committed in {store.path} yet")
        records = [store.records(c) for c in committed]
        config = header.config
        return cls(
            class_names=[header.classes[c] for c in committed],
            metaclass=header.metaclass,
            real=[store.real_images(c) for c in committed],
            synthetic=[[store.image_path(c, r.file) for r in rows] for c, rows in zip(committed, records)],
            class_indices=committed,
            records=records,
            source={"kind": "store", "path": str(store.path), "method": store.method.title, "model": header.model,
                    "concepts": header.concepts, "config": config.to_dict(), "config_hash": config.hash(),
                    "missing_classes": [c for c in wanted if c not in committed]},
        )

    @classmethod
    def from_datasets(cls, real: Any, synthetic: Any, metaclass: str) -> ImageSets:
        """Two map-style datasets of ``(image, label)`` items sharing class indices; names from ``real``.

        Images are read when their class is evaluated; they must be images, not
        normalised tensors (put no normalising transform on the datasets).
        """
        from diffii_datasets.base_dataset import class_names, dataset_targets, parse_item

        names = class_names(real)

        def by_class(dataset: Any, name: str) -> list[LazyImages]:
            targets = dataset_targets(dataset)
            bad = sorted({t for t in targets if not 0 <= t < len(names)})
            if bad:
                raise ValueError(f"{name} has labels {bad[:5]} outside the {len(names)} classes of the real dataset")
            indices = [[i for i, t in enumerate(targets) if t == c] for c in range(len(names))]
            return [LazyImages(lambda k, rows=rows: parse_item(dataset[rows[k]], rows[k], name=name)[0], len(rows))
                    for rows in indices]

        return cls(names, metaclass, by_class(real, "real"), by_class(synthetic, "synthetic"),
                   source={"kind": "datasets", "real": type(real).__name__, "synthetic": type(synthetic).__name__})
