"""``PreparationJob``: everything that determines a synthetic set, built in one place.

:func:`build_job` turns what a caller has (a base dataset, its classes and metaclass,
a method's config, a ready pipeline or a model id, ready concepts or the authors'
released artifacts) into a job; :func:`~diffii_datasets.prepare.prepare` runs it. The
wrapper, the Hub builder, every command (``generate``, ``plan``, ``compare``) and the
split-ratio sweep build their jobs here, so the same inputs always name the same
store (:meth:`PreparationJob.header`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from diffii_datasets import _checks
from diffii_datasets._io import fingerprint
from diffii_datasets.methods import get_method
from diffii_datasets.methods.config import MethodConfig

if TYPE_CHECKING:
    from PIL import Image

    from diffii_datasets.base_dataset import Columns
    from diffii_datasets.diffusion.concepts import ConceptSet
    from diffii_datasets.methods import Method
    from diffii_datasets.released import ReleasedSetting
    from diffii_datasets.store import StoreHeader

__all__ = ["PreparationJob", "build_job", "job_config", "job_from_store"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparationJob:
    """Everything that determines a synthetic set, besides the pipeline's weights.

    ``images_by_class[c]`` reads class ``c``'s real images (lazily, as
    :func:`~diffii_datasets.base_dataset.scan_dataset` gives them); ``config`` is the
    method's config (its ``method`` names the method); ``concepts`` are given concepts,
    or ``None`` to learn them (methods with concepts) into the cache; ``targets`` is the
    label of every item of the base dataset, in its order.
    """

    images_by_class: Sequence[Sequence[Image.Image]]
    class_names: Sequence[str]
    metaclass: str
    config: MethodConfig
    dataset_fingerprint: str
    model: str
    concepts: ConceptSet | None = None
    targets: Sequence[int] = ()

    @property
    def method(self) -> Method:
        return get_method(self.config.method)

    def concepts_key(self) -> str:
        """Learned concepts depend on the data, the model, the metaclass and the concept recipe (its seed
        included) only: not on the generation knobs, nor on the method, so methods share them."""
        return fingerprint({
            "dataset": self.dataset_fingerprint,
            "model": self.model,
            "metaclass": self.metaclass,
            "recipe": self.config.concepts.to_dict(),
        })

    def concepts_identity(self) -> str:
        """How the store header names the concepts: given ones by their digest, learned ones by their key."""
        from diffii_datasets.store.concepts import learned_identity

        if not self.method.concepts:
            return "none"
        return self.concepts.identity() if self.concepts is not None else learned_identity(self.concepts_key())

    def concepts_origin(self) -> dict[str, Any]:
        """What learned concepts were learned from, besides their recipe (saved beside them in the cache)."""
        return {"dataset": self.dataset_fingerprint, "model": self.model, "metaclass": self.metaclass}

    def expected_counts(self) -> list[int]:
        return [self.method.expected_count(len(images), self.config) for images in self.images_by_class]

    def header(self) -> StoreHeader:
        """The header of the store this job fills (its :meth:`~StoreHeader.key` names the store's directory)."""
        from diffii_datasets.store import StoreHeader

        return StoreHeader(
            config=self.config,
            classes=tuple(self.class_names),
            metaclass=self.metaclass,
            dataset=self.dataset_fingerprint,
            model=self.model,
            concepts=self.concepts_identity(),
            real_counts=tuple(len(images) for images in self.images_by_class),
            expected_counts=tuple(self.expected_counts()),
        )


def job_config(config: MethodConfig, *, classes: Sequence[str] | None = None, pipeline: Any = None,
               concepts: ConceptSet | None = None, released: ReleasedSetting | None = None) -> MethodConfig:
    """The config a job runs with: the model named by a ready ``pipeline``, the suffixes of ``released``
    artifacts, and, when concepts are given, the concept-learning knobs at their defaults (they are not used,
    so they must not tell two stores of the same images apart). Given concepts must be of ``classes``."""
    if not isinstance(config, MethodConfig):
        _checks.fail(TypeError, "config", "a method's config (DiffIIConfig, ...)", config)
    method = get_method(config.method)
    if concepts is not None and classes is not None and list(concepts.class_names) != list(classes):
        raise ValueError(f"concepts were learned for classes {list(concepts.class_names)}, but the dataset has "
                         f"{list(classes)}")
    if pipeline is not None:
        from diffii_datasets.diffusion.pipeline import model_identity

        config = config.replace(model=model_identity(pipeline))
    if released is not None:
        if not method.suffixes:
            raise ValueError(f"released: the authors' artifacts are Diff-II's; method {method.name!r} does not use "
                             "them (pass concepts=released.concepts instead)")
        config = config.replace(suffixes=released.suffixes.spec())
    if (concepts is not None or released is not None) and method.concepts:
        unused = type(config)().concepts
        if config.concepts != unused:
            logger.info("concepts are given: the concept-learning knobs are not used (%s)",
                        ", ".join(f"concept_{k}" for k, v in config.concepts.to_dict().items()
                                  if v != unused.to_dict()[k]))
            config = config.with_parts(concepts=unused)
    return config


def build_job(
    dataset: Any,
    metaclass: str,
    config: MethodConfig,
    *,
    classes: Sequence[str] | None = None,
    columns: Columns | None = None,
    pipeline: Any = None,
    concepts: ConceptSet | None = None,
    released: ReleasedSetting | None = None,
    cache_dir: str | os.PathLike | None = None,
    name: str = "base_dataset",
) -> PreparationJob:
    """The job of making ``config``'s synthetic set from ``dataset``: the one place a job is built.

    ``dataset`` is read once to fingerprint it (its images are read again class by class
    when generating; with ``cache_dir`` a dataset that lists its files is fingerprinted
    once, see :func:`~diffii_datasets.base_dataset.scan_dataset`). ``classes`` default to
    the dataset's own; ``pipeline`` names the model; ``concepts`` are used instead of
    learning them; ``released`` (the authors' artifacts of a paper setting,
    :func:`~diffii_datasets.released.load_released`) brings the training subset (when
    ``dataset`` is ``None``), the metaclass, the concepts and the suffixes.
    """
    from diffii_datasets.base_dataset import DEFAULT_COLUMNS, class_names, scan_dataset

    if released is not None:
        if concepts is not None:
            raise ValueError("pass concepts= or released=, not both: the released artifacts bring the concepts")
        concepts = released.concepts
        dataset = released.splits.train if dataset is None else dataset
        metaclass = metaclass or released.splits.metaclass
    columns = columns or DEFAULT_COLUMNS
    names = list(classes) if classes is not None else class_names(dataset, columns.label)
    config = job_config(config, classes=names, pipeline=pipeline, concepts=concepts, released=released)
    scan = scan_dataset(dataset, names, name=name, cache_dir=cache_dir, columns=columns)
    return PreparationJob(scan.images_by_class, names, metaclass, config, scan.fingerprint, config.model,
                          concepts if get_method(config.method).concepts else None, scan.targets)


def job_from_store(store: Any, *, concepts: ConceptSet | None = None) -> PreparationJob:
    """The job that made ``store`` (a :class:`~diffii_datasets.store.SyntheticStore`), from the store alone.

    Its images are the store's copy of the real images; with ``dataclasses.replace(job,
    config=...)`` it makes a store of the same images with other knobs (the split-ratio
    sweep does). ``concepts``: the store's given concepts (learned ones are found in the
    cache next to the store).
    """
    header = store.header
    method = get_method(header.method)
    names = list(header.classes)
    committed = [c for c in range(header.num_classes) if store.is_committed(c)]
    if len(committed) < header.num_classes:
        raise ValueError(f"the store at {store.path} holds the real images of committed classes only; classes "
                         f"{[c for c in range(header.num_classes) if c not in committed][:10]} are not committed yet")
    images = [_StoredImages(store, c) for c in range(header.num_classes)]
    targets = [c for c in range(header.num_classes) for _ in range(header.real_counts[c])]
    job = PreparationJob(images, names, header.metaclass, header.config, header.dataset, header.model,
                         concepts if method.concepts else None, targets)
    if job.concepts_identity() != header.concepts:
        given = "" if concepts is None else f" (the given ones are {concepts.identity()})"
        raise ValueError(f"the store at {store.path} was made with the concepts {header.concepts}{given}; pass "
                         "those as concepts (a ConceptSet)")
    return job


class _StoredImages(Sequence[Any]):
    """The real images of one committed class of a store, read on access."""

    def __init__(self, store: Any, class_index: int) -> None:
        self._store, self._paths = store, store.real_images(class_index)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, position: int) -> Any:  # type: ignore[override]
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        return self._store.load_image(self._paths[position])
