"""``Method``: what a way of making synthetic images declares, so that one preparation path runs them all.

A method declares its knobs (its :class:`~diffii_datasets.methods.MethodConfig`), the
stages it needs before generating (class concepts, a shared suffix stage, a per-class
inversion pool), how many images a class gets, what each image costs in UNet
evaluations (for the plan), and which provenance fields its
:class:`~diffii_datasets.store.SyntheticRecord` s carry; :meth:`Method.generate_class`
makes one class's images and writes them through the store's writer. Everything
else (the store and its key, resuming, locks, repair, sharding over ranks, bars,
concept learning and caching, the wrapper, the Hub, the report) is shared.

Besides Diff-II, the seam carries image-to-image methods that need concepts but no
inversion pool (DA-Fusion, Diff-Aug: ``inversion = False``), methods that mix two
classes (Real-Mix, Diff-Mix: ``soft_labels = True``, their records carry a ``target``
and a ``strength``, and :meth:`Method.soft_label` weighs the two classes), and filters
of another method's store (Real-Filter: :meth:`Method.source_config`, ``diffusion = False``).
Pure Python: importing this module loads no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from diffii_datasets.methods.config import MethodConfig
    from diffii_datasets.progress import StageProgress
    from diffii_datasets.store import ClassWriter, SyntheticRecord

__all__ = ["ClassJob", "ImageStage", "Method", "unet_evaluations"]


def unet_evaluations(steps: int, guidance_scale: float) -> int:
    """UNet evaluations of one latent through ``steps`` steps: twice with classifier-free guidance (the
    unconditional branch runs in the same UNet call, but costs a latent's worth of it)."""
    return steps * (2 if guidance_scale > 1 else 1)


def guidance_detail(steps: int, guidance_scale: float, what: str = "images") -> str:
    """How :func:`unet_evaluations` counts, in words for the plan."""
    twice = f" x 2 (guidance {guidance_scale:g})" if guidance_scale > 1 else ""
    return f"{what} x {steps} steps{twice}"


@dataclass(frozen=True)
class ImageStage:
    """A per-class stage that runs UNet evaluations: ``per_real`` for each real image, ``per_synthetic`` for each
    synthetic one; ``detail`` says how (for the plan), ``unit`` what its bar counts."""

    name: str
    per_real: int
    per_synthetic: int
    detail: str
    unit: str = "image"


@dataclass
class ClassJob:
    """What :meth:`Method.generate_class` gets for one class.

    ``pipe`` has the concepts applied (when the method has concepts; ``None`` for a method that
    runs no diffusion); ``images`` are the class's real images (PIL, in class order); ``source``
    is the complete store of the method's :meth:`~Method.source_config` (or ``None``);
    ``writer`` commits the class;
    ``previous`` is what the method kept of this class last time (:meth:`Method.reusable`),
    or ``None``; ``stages[name]`` is the progress of each :class:`ImageStage`
    (:class:`~diffii_datasets.progress.StageProgress`: ``resume()`` before working on it,
    ``advance`` as a UNet step callback, ``skip(images)`` for images not run).
    """

    pipe: Any
    config: MethodConfig
    class_index: int
    class_names: Sequence[str]
    metaclass: str
    images: Sequence[Any]
    concepts: Any
    suffixes: Sequence[str]
    writer: ClassWriter
    previous: Any
    stages: Mapping[str, StageProgress]
    source: Any = None


class Method:
    """A method of making synthetic images; subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    """Its registered name (``"diff-ii"``); also the ``method`` of its config."""
    title: ClassVar[str]
    """How people write it (``"Diff-II"``)."""
    config_class: ClassVar[type[MethodConfig]]
    concepts: ClassVar[bool] = False
    """Whether it needs class concepts (learned into the cache with the config's ``concepts`` recipe, or given)."""
    suffixes: ClassVar[bool] = False
    """Whether it draws from a suffix list derived once per store (the config's ``suffixes`` provider)."""
    inversion: ClassVar[bool] = False
    """Whether a class keeps an inversion pool (``inversions.safetensors``) next to its images."""
    soft_labels: ClassVar[bool] = False
    """Whether its images weigh two classes (records with a ``target``; see :meth:`soft_label`)."""
    record_fields: ClassVar[tuple[str, ...]] = ()
    """The provenance fields its records carry (:data:`~diffii_datasets.store.record.PROVENANCE`)."""
    diffusion: ClassVar[bool] = True
    """Whether :meth:`generate_class` runs the diffusion pipeline (a filter of another method's store does not)."""

    def source_config(self, config: MethodConfig) -> MethodConfig | None:
        """The config of another method whose complete store of the same images this one reads (a filter reads
        what it filters), prepared first through the same path; ``None`` (the default): none."""
        return None

    def expected_count(self, real_count: int, config: MethodConfig) -> int:
        """How many synthetic images a class with ``real_count`` real images gets."""
        raise NotImplementedError

    def image_stages(self, config: MethodConfig) -> list[ImageStage]:
        """The per-class stages, in the order they run, with their cost in UNet evaluations."""
        raise NotImplementedError

    def reusable(self, store: Any, class_index: int) -> Any:
        """What of a committed class being regenerated can be kept (Diff-II: its inversion pool); ``None``."""
        return None

    def generate_class(self, job: ClassJob) -> None:
        """Make the class's images and :meth:`ClassWriter.add <diffii_datasets.store.ClassWriter.add>` them in
        order (the caller commits)."""
        raise NotImplementedError

    def soft_label(self, record: SyntheticRecord, num_classes: int, gamma: float | None = None) -> list[float]:
        """The probability vector a classifier trains on for ``record`` (one-hot on its label by default).

        ``gamma``: the exponent of Diff-Mix's rule for a method that mixes two classes, an option of the
        training that serves the images, not of the images (``None``: the method's default); a method that
        does not mix ignores it.
        """
        vector = [0.0] * num_classes
        vector[record.label] = 1.0
        return vector

    def __repr__(self) -> str:
        return f"<method {self.name!r} ({self.title})>"
