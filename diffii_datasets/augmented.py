"""``DiffIIAugmented``: wrap any map-style image dataset; on first use Diff-II (or another method) fills a cache.

No diffusion code lives here: preparation is :func:`diffii_datasets.prepare.prepare`
of a job built by :func:`diffii_datasets.job.build_job`, writing through
:class:`diffii_datasets.store.SyntheticStore`; this module only finds (or fills) the
store and serves items like a torchvision dataset.
"""

from __future__ import annotations

import logging
import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets.base_dataset import (
    Columns,
    check_columns,
    check_deterministic_source,
    dataset_targets,
    find_classes,
    parse_item,
    read_base_item,
)
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.diffusion.concepts import ConceptSet
from diffii_datasets.diffusion.concepts.apply import check_pipeline
from diffii_datasets.distributed import World
from diffii_datasets.images import to_pil_rgb
from diffii_datasets.job import build_job, job_config
from diffii_datasets.methods import MethodConfig
from diffii_datasets.prepare import PreparationReport, prepare
from diffii_datasets.replacement import EPOCHS_AHEAD, ITEMS_AHEAD, replace_draws
from diffii_datasets.store import SyntheticRecord, SyntheticStore, default_cache_dir
from diffii_datasets.store.cache import utf8_path

logger = logging.getLogger(__name__)

__all__ = ["DiffIIAugmented", "StoreRealImages", "SyntheticDataset"]

MODES = ("replace", "concat")


_SERVING_OPTIONS = ("synthetic_probability", "mode", "class_balanced", "sampling_seed", "soft_labels",
                    "soft_label_gamma", "transform", "target_transform")
"""The constructor's arguments that say how items are served (all :meth:`DiffIIAugmented.from_store` takes)."""


class DiffIIAugmented(Dataset):
    """A dataset of real images plus synthetic images (Diff-II's by default), generated once and cached.

    Args:
        base_dataset: any map-style dataset yielding ``(image, label)`` (or HF-style
            ``{"image", "label"}``), with PIL, tensor or ndarray images and int labels.
            Its items must read the same every time (they are fingerprinted, then read
            again class by class to generate): put transforms on this wrapper; a base
            dataset with a ``transform``, or whose items differ between reads, is refused.
        metaclass: the super-category word of the prompts (``"bird"``, ``"car"`` ...).
        config: every knob of the method (default: Diff-II's, the paper's values); another
            method's config (:func:`diffii_datasets.methods.get_method` ``(name).config_class``)
            makes that method's images.
        pipeline: a ready ``StableDiffusionPipeline``; default: ``config.model`` is loaded
            when (and only when) something must be generated.
        concepts: a ready :class:`~diffii_datasets.diffusion.ConceptSet`; default: learned.
        released: the authors' released artifacts of a paper setting
            (:func:`diffii_datasets.released.load_released`): their concepts and suffixes are used.
        cache_dir: where stores live (default :func:`default_cache_dir`).
        classes: class names, when the base dataset has no ``classes`` (nor a ``ClassLabel``
            label column).
        image_column, label_column: the keys of the image and the label in mapping items
            (Hugging Face rows such as CIFAR-100's ``{"img", "fine_label"}``); the label
            column's ``ClassLabel`` names the classes.
        synthetic_probability: in ``"replace"`` mode, the chance that item ``i`` is synthetic.
        mode: ``"replace"`` (``len`` = base; the paper's joint training) or ``"concat"``
            (real items followed by every synthetic item).
        class_balanced: in ``"replace"`` mode, draw the replacing class with probability
            proportional to ``1 / (n_c + 1)`` (the paper's long-tail variant) instead of
            keeping the class of item ``i``.
        sampling_seed: seed of the replace-mode draws (default ``config.seed``); they depend
            only on (seed, epoch, index), so DataLoader workers and reruns agree.
        soft_labels: yield every target as a float32 probability vector over the classes
            (one-hot for real images, the method's weights of two classes for a mixing method's
            images); default: when the method mixes classes (``Method.soft_labels``).
        soft_label_gamma: the exponent of Diff-Mix's soft label (``None``: the method's default,
            0.8 as Diff-Mix's published runs); a training option, so it keys no store.
        device: where a pipeline loaded from ``config.model`` runs.
        progress: show the plan, a bar per stage and the ETAs while generating (else they are logged at INFO).
    """

    def __init__(
        self,
        base_dataset: Any,
        metaclass: str,
        *,
        config: DiffIIConfig | None = None,
        pipeline: Any = None,
        concepts: ConceptSet | None = None,
        released: Any = None,
        cache_dir: str | os.PathLike | None = None,
        classes: Sequence[str] | None = None,
        image_column: str = "image",
        label_column: str = "label",
        synthetic_probability: float = 0.5,
        mode: str = "replace",
        class_balanced: bool = False,
        sampling_seed: int | None = None,
        soft_labels: bool | None = None,
        soft_label_gamma: float | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
    ) -> None:
        if not hasattr(base_dataset, "__getitem__") or not hasattr(base_dataset, "__len__"):
            _checks.fail(TypeError, "base_dataset", "a map-style dataset (with __getitem__ and __len__)",
                         base_dataset)
        metaclass = _checks.check_one_line(metaclass, "metaclass", expected="a one-line word such as 'bird'")
        _checks.check_choice(mode, "mode", MODES)
        synthetic_probability = _checks.check_number(synthetic_probability, "synthetic_probability", minimum=0,
                                                     maximum=1)
        _checks.check_bool(class_balanced, "class_balanced")
        if sampling_seed is not None:
            _checks.check_seed(sampling_seed, "sampling_seed")
        _checks.check_bool(progress, "progress")
        if soft_labels is not None:
            _checks.check_bool(soft_labels, "soft_labels")
        if soft_label_gamma is not None:
            from diffii_datasets.methods.soft_labels import check_gamma

            soft_label_gamma = check_gamma(soft_label_gamma, "soft_label_gamma")
        if config is not None and not isinstance(config, MethodConfig):
            _checks.fail(TypeError, "config", "a method's config (DiffIIConfig, ...)", config)
        if concepts is not None and not isinstance(concepts, ConceptSet):
            _checks.fail(TypeError, "concepts", "a ConceptSet", concepts)
        columns = Columns(_checks.check_str(image_column, "image_column"),
                          _checks.check_str(label_column, "label_column"))
        check_columns(base_dataset, columns)
        if classes is not None:
            names = list(_checks.check_str_sequence(classes, "classes", expected="a list of class names"))
        else:
            names = find_classes(base_dataset, columns.label)
            if not names:
                raise ValueError(f"could not find class names on base_dataset (no .classes or ClassLabel column "
                                 f"{columns.label!r}); pass classes=[...]")
            names = list(_checks.check_str_sequence(names, "base_dataset.classes",
                                                    expected="a list of non-empty class names"))
        check_deterministic_source(base_dataset)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"class names must be unique, repeated: {repeated}")
        if pipeline is not None:
            check_pipeline(pipeline, "pipeline", loaders=False)
        if released is not None:
            if concepts is not None:
                raise ValueError("pass concepts= or released=, not both: the released artifacts bring the concepts")
            concepts = released.concepts
        config = job_config(config or DiffIIConfig(), classes=names, pipeline=pipeline, concepts=concepts,
                            released=released)
        self.original = base_dataset
        self.metaclass = metaclass.strip()
        self.config = config
        self.classes = names
        self.class_to_idx = {name: i for i, name in enumerate(names)}
        self.columns = columns
        self.cache_dir = utf8_path(cache_dir if cache_dir is not None else default_cache_dir())
        self.synthetic_probability = synthetic_probability
        self.mode = mode
        self.class_balanced = class_balanced
        self.sampling_seed = config.seed if sampling_seed is None else int(sampling_seed)
        self.soft_labels = soft_labels
        self.soft_label_gamma = soft_label_gamma
        self.transform = transform
        self.target_transform = target_transform
        self.device = device
        self.progress = progress
        # Shared memory: DataLoader workers (persistent ones too) see every set_epoch of this process.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._epoch_view = self._epoch.numpy()  # the same memory, read faster by every item
        self._pipeline = pipeline
        self._concepts = concepts
        self._learned_concepts: ConceptSet | None = None
        self._store: SyntheticStore | None = None
        self.report: PreparationReport | None = None  # what the last prepare() generated, skipped or repaired
        self._base_targets: list[int] = []
        self._synthetic_records: list[SyntheticRecord] = []
        self._synthetic_by_class: list[list[int]] = []
        self._synthetic_paths: list[str] = []  # resolved once: a DataLoader reads each one every epoch
        self._replacement_weights: np.ndarray | None = None
        self._draws: list[int] = []  # the replace-mode draws of one epoch (-1: the real item), for _draw_key
        self._draw_key: tuple[Any, ...] | None = None
        self._drawn_ahead: tuple[Any, int, np.ndarray] | None = None  # (settings, first epoch, [epochs, items])
        self._base_length = 0
        self._pools: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # targets, pool sizes and starts

    @classmethod
    def from_store(cls, store: SyntheticStore | str | os.PathLike, **options: Any) -> DiffIIAugmented:
        """The real and synthetic images of a complete ``store``, without the dataset it was made from.

        The base dataset is the store's own copy of the real images (:class:`StoreRealImages`);
        nothing is scanned or generated. ``store`` is a :class:`SyntheticStore` or its directory;
        ``options`` are the constructor's that say how items are served: ``synthetic_probability``,
        ``mode``, ``class_balanced``, ``sampling_seed``, ``soft_labels``, ``transform``,
        ``target_transform``.
        """
        if isinstance(store, (str, os.PathLike)):
            store = SyntheticStore.open(store)
        if not isinstance(store, SyntheticStore):
            _checks.fail(TypeError, "store", "a SyntheticStore or a store directory", store)
        other = sorted(set(options) - set(_SERVING_OPTIONS))
        if other:
            raise TypeError(f"from_store takes only the options {', '.join(_SERVING_OPTIONS)}; got {other} (the "
                            "store fixes the dataset, classes, config and concepts)")
        if store.manifest() is None:
            missing = [c for c in range(store.header.num_classes) if not store.is_committed(c)]
            raise ValueError(f"the store at {store.path} is incomplete (classes not generated yet: {missing[:10]}); "
                             "finish it with the command that made it")
        header = store.header
        real = StoreRealImages(store)
        augmented = cls(real, header.metaclass, config=header.config, cache_dir=store.path.parent,
                        classes=header.classes, progress=False, **options)
        augmented._index(store, real.targets)
        return augmented

    # -- preparation -----------------------------------------------------------------------

    @property
    def prepared(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> SyntheticStore:
        """The store behind this dataset (prepares it first)."""
        self.prepare()
        assert self._store is not None
        return self._store

    def prepare(self, *, world: World | None = None) -> DiffIIAugmented:
        """Find the store for this (dataset, config, model, concepts) or generate it. Idempotent.

        ``world``: the ranks of a ``torchrun`` launch that prepare this dataset together
        (see :func:`diffii_datasets.distributed.distributed_world`); every rank must call
        ``prepare`` and each generates its share of the classes. Default: this process alone.
        """
        if self._store is not None:
            return self
        job = build_job(self.original, self.metaclass, self.config, classes=self.classes, columns=self.columns,
                        concepts=self._concepts, cache_dir=self.cache_dir)  # the config names the pipeline's model
        report = prepare(job, cache_dir=self.cache_dir, pipeline=self._pipeline, device=self.device,
                         progress=self.progress, world=world)
        self.report = report
        if report.generated:
            logger.info("generated %d classes into %s", len(report.generated), report.store.path)
        else:
            logger.info("reusing complete store %s", report.store.path)
        self._index(report.store, list(job.targets))
        self._pipeline = None  # generation is over: hold no pipeline (pickles stay small)
        return self

    def _index(self, store: SyntheticStore, targets: list[int]) -> None:
        records, by_class = [], []
        for class_index in range(len(self.classes)):
            class_records = store.records(class_index)
            by_class.append(list(range(len(records), len(records) + len(class_records))))
            records += class_records
        real_counts = np.bincount(targets, minlength=len(self.classes))
        weights = np.array([1.0 / (n + 1) if by_class[c] else 0.0 for c, n in enumerate(real_counts)])
        self._store, self._base_targets = store, targets
        self._synthetic_records, self._synthetic_by_class = records, by_class
        self._synthetic_paths = [str(store.image_path(record.label, record.file)) for record in records]
        self._base_length = len(targets)
        self._pools = (np.array(targets, dtype=np.int64), np.array([len(pool) for pool in by_class], dtype=np.int64),
                       np.array([pool[0] if pool else 0 for pool in by_class], dtype=np.int64))
        self._replacement_weights = weights / weights.sum() if weights.sum() > 0 else None
        if self.soft_labels is None:
            self.soft_labels = store.method.soft_labels

    # -- the Dataset interface ---------------------------------------------------------------

    @property
    def targets(self) -> list[int]:
        """The label of every item: the base dataset's in ``"replace"`` mode (read without generating anything),
        followed by every synthetic item's in ``"concat"`` mode (which generates them first)."""
        if self.mode == "concat":
            self.prepare()
            return self._base_targets + [record.label for record in self._synthetic_records]
        if not self._base_targets:
            self._base_targets = dataset_targets(self.original, self.columns)
        return list(self._base_targets)

    @property
    def concepts(self) -> ConceptSet | None:
        """The class concepts behind the synthetic images: the ones given, else the learned ones (prepares first).

        ``None`` when the learned concepts are no longer in the cache (``<cache_dir>/concepts``).
        """
        if self._concepts is not None:
            return self._concepts
        if self._learned_concepts is None:
            directory = self.store.learned_concepts_dir()
            if directory is not None and (directory / "concepts.json").is_file():
                self._learned_concepts = ConceptSet.load(directory)
        return self._learned_concepts

    @property
    def synthetic(self) -> SyntheticDataset:
        """The synthetic images alone, with provenance through ``.metadata(i)``."""
        self.prepare()
        return SyntheticDataset(self)

    @property
    def epoch(self) -> int:
        """The epoch of the replace-mode draws (see :meth:`set_epoch`)."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Change the replace-mode draws; call it before each epoch's DataLoader iterator.

        The epoch lives in shared memory, so the workers of a ``DataLoader`` see it too,
        including ``persistent_workers=True`` ones that keep their copy of the dataset
        across epochs. A pickled copy (``pickle.dumps``) has an epoch of its own.
        """
        self._epoch.fill_(_checks.check_int(epoch, "epoch", minimum=0))

    def __len__(self) -> int:
        if self.mode == "replace":
            return len(self.original)
        self.prepare()
        return len(self.original) + len(self._synthetic_records)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if self._store is None:
            self.prepare()
        base = self._base_length
        if type(index) is not int or not 0 <= index < base:  # noqa: E721 - the fast path: a base item, a plain int
            size = len(self)
            index = _position(index, size, f"a dataset of {size} items")
        drawn = index - base if index >= base else self._drawn(index)
        image, target = self._synthetic_item(drawn) if drawn >= 0 else self._real_item(index)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _drawn(self, index: int) -> int:
        """The synthetic item that replaces base item ``index`` this epoch, or -1
        (:func:`~diffii_datasets.replacement.replace_draws`)."""
        key = (self.sampling_seed, int(self._epoch_view), self.synthetic_probability, self.class_balanced, self.mode)
        if key != self._draw_key:  # a new epoch (or new settings): every item's draw at once
            self._draws = self._draw(*key)
            self._draw_key = key
        return self._draws[index]

    def _draw(self, seed: int, epoch: int, probability: float, balanced: bool, mode: str) -> list[int]:
        """The draws of ``epoch``; a small dataset's next epochs are drawn with it (the cost is mostly per call)."""
        targets, pool_sizes, pool_starts = self._pools
        if mode != "replace":
            return [-1] * len(targets)
        ahead = self._drawn_ahead
        if ahead is None or ahead[0] != (seed, probability, balanced) or not 0 <= epoch - ahead[1] < len(ahead[2]):
            epochs = range(epoch, epoch + max(1, min(EPOCHS_AHEAD, ITEMS_AHEAD // max(len(targets), 1))))
            weights = self._replacement_weights if balanced else None
            labels, positions = replace_draws(seed, epochs, targets, probability, pool_sizes, weights)
            ahead = (seed, probability, balanced), epoch, np.where(positions >= 0, pool_starts[labels] + positions, -1)
            self._drawn_ahead = ahead
        return ahead[2][epoch - ahead[1]].tolist()

    def _real_item(self, index: int) -> tuple[Image.Image, Any]:
        item = read_base_item(self.original, index)
        image = item[0] if type(item) is tuple and len(item) == 2 else parse_item(item, index, columns=self.columns)[0]
        if type(image) is not Image.Image or image.mode != "RGB":  # an ImageFolder's RGB image is served as it is
            image = to_pil_rgb(image, name=f"base_dataset[{index}] image")
        return image, self._target(self._base_targets[index], None)

    def _synthetic_item(self, synthetic_index: int) -> tuple[Image.Image, Any]:
        record = self._synthetic_records[synthetic_index]
        return self._store.load_image(self._synthetic_paths[synthetic_index]), self._target(record.label, record)

    def _target(self, label: int, record: SyntheticRecord | None) -> Any:
        """``label``, or with ``soft_labels`` the probability vector of the item (``record``: a synthetic one's)."""
        if not self.soft_labels:
            return label
        if record is None:
            vector = torch.zeros(len(self.classes))
            vector[label] = 1.0
            return vector
        return torch.tensor(self._store.method.soft_label(record, len(self.classes), self.soft_label_gamma),
                            dtype=torch.float32)

    def __getstate__(self) -> dict[str, Any]:
        self.prepare()  # workers must never generate: prepare before the dataset is copied to them
        state = self.__dict__.copy()
        state["_pipeline"] = state["_learned_concepts"] = None  # workers need neither; concepts load again
        state["_draws"], state["_draw_key"], state["_drawn_ahead"] = [], None, None  # drawn by whoever serves items
        del state["_epoch_view"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if not self._epoch.is_shared():  # a pickled copy: its own epoch, shared with its own workers
            self._epoch.share_memory_()
        self._epoch_view = self._epoch.numpy()

    def __repr__(self) -> str:
        """As torchvision's datasets print themselves; reading it generates nothing."""
        from torchvision.datasets.vision import StandardTransform

        if self.mode == "replace" or self._store is not None:
            count = str(len(self))
        else:
            count = f"{len(self.original)} real + the synthetic ones (not generated yet)"
        body = [f"Number of datapoints: {count}"]
        root = getattr(self.original, "root", None)
        if root is not None:
            body.append(f"Root location: {root}")
        body.append(f"Base dataset: {type(self.original).__name__} of {len(self.original)} images in "
                    f"{len(self.classes)} classes (metaclass {self.metaclass!r})")
        if self.mode == "replace":
            balanced = ", class-balanced" if self.class_balanced else ""
            body.append(f"Mode: replace (synthetic probability {self.synthetic_probability:g}{balanced})")
        else:
            body.append("Mode: concat (the real items, then every synthetic item)")
        if self._store is not None:
            body.append(f"Store: {self._store.path} ({len(self._synthetic_records)} synthetic images)")
        else:
            body.append(f"Store: not prepared yet (under {self.cache_dir})")
        if self.transform is not None or self.target_transform is not None:
            body.append(repr(StandardTransform(self.transform, self.target_transform)))
        return "\n".join([f"Dataset {type(self).__name__}", *(" " * 4 + line for line in body)])


def _position(index: int, length: int, what: str) -> int:
    """``index`` as a position ``0 .. length - 1``: negative ones count from the end, as in a list."""
    index = operator.index(index)
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for {what}")
    return index % length


class SyntheticDataset(Dataset):
    """The synthetic items of a prepared :class:`DiffIIAugmented`, with the parent's transforms."""

    def __init__(self, parent: DiffIIAugmented) -> None:
        self._parent = parent
        self.classes = parent.classes
        self.class_to_idx = parent.class_to_idx
        self.targets = [record.label for record in parent._synthetic_records]

    def __len__(self) -> int:
        return len(self._parent._synthetic_records)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        index = _position(index, len(self), f"{len(self)} synthetic items")
        image, target = self._parent._synthetic_item(index)
        if self._parent.transform is not None:
            image = self._parent.transform(image)
        if self._parent.target_transform is not None:
            target = self._parent.target_transform(target)
        return image, target

    def record(self, index: int) -> SyntheticRecord:
        """Where item ``index`` came from (its :class:`~diffii_datasets.store.SyntheticRecord`)."""
        return self._parent._synthetic_records[_position(index, len(self), f"{len(self)} synthetic items")]

    def metadata(self, index: int) -> dict[str, Any]:
        """Provenance of item ``index`` as a dict: :meth:`record`'s fields, its class name and its path."""
        record = self.record(index)
        return {**record.to_dict(), "class_name": self.classes[record.label],
                "path": str(self._parent.store.image_path(record.label, record.file))}


class StoreRealImages(Dataset):
    """The real images a store keeps (``classes/<c>/real/``), class by class, as ``(PIL image, label)``."""

    def __init__(self, store: SyntheticStore) -> None:
        self._store = store
        self.classes = list(store.header.classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = [(str(path), label) for label in range(len(self.classes))
                        for path in store.real_images(label)]
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return self._store.load_image(path), label
