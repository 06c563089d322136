"""Thin adapters over torchvision's own Aircraft, Cars, Pet and Flowers classes.

Each adds what the paper's settings need on top of torchvision (see
:mod:`~diffii_datasets.image_datasets._layout`): ``targets`` everywhere (``class_to_idx``
for Flowers), ``sample_keys``, and a layout check that names a missing file.
Loading itself stays torchvision's code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torchvision.datasets as tvd
from torchvision.datasets.utils import verify_str_arg

from diffii_datasets.image_datasets._layout import check_layout, expand_root, relative_keys

__all__ = ["FGVCAircraft", "Flowers102", "OxfordIIITPet", "StanfordCars", "STANFORD_CARS_MANUAL_DOWNLOAD"]

STANFORD_CARS_MANUAL_DOWNLOAD = (
    "Stanford Cars can no longer be downloaded automatically: its original URL is gone "
    "(https://github.com/pytorch/vision/issues/7545). Download it by hand as torchvision's documentation "
    "describes (https://github.com/pytorch/vision/issues/7545#issuecomment-1631441616, or the ready-made "
    "https://www.kaggle.com/datasets/rickyyyyyyy/torchvision-stanford-cars) so that <root>/stanford_cars/ holds "
    "devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, cars_test_annos_withlabels.mat and cars_test/."
)


class FGVCAircraft(tvd.FGVCAircraft):
    """torchvision's ``FGVCAircraft`` at the ``variant`` level (100 classes), the paper's Aircraft.

    Layout: ``root/fgvc-aircraft-2013b/data/{variants.txt, images_variant_<split>.txt, images/}``.
    Adds ``targets`` and ``sample_keys``; ``split`` is ``train``, ``val``, ``trainval`` (default,
    the few-shot pool) or ``test``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        verify_str_arg(split, "split", ("train", "val", "trainval", "test"))
        base = expand_root(root) / "fgvc-aircraft-2013b"
        if not download:
            required = ("data/variants.txt", f"data/images_variant_{split}.txt", "data/images")
            check_layout(base, required, "FGVC-Aircraft")
        super().__init__(root, split=split, annotation_level="variant", transform=transform,
                         target_transform=target_transform, download=download)
        self.targets = list(self._labels)
        self.sample_keys = relative_keys(self._image_files, Path(self._data_path))


class StanfordCars(tvd.StanfordCars):
    """torchvision's ``StanfordCars`` (196 classes); ``split`` is ``train`` (the few-shot pool) or ``test``.

    Layout: ``root/stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/,
    cars_test_annos_withlabels.mat, cars_test/}``. There is no working download any more:
    ``download=True`` raises a ``ValueError`` that explains the manual route
    (:data:`STANFORD_CARS_MANUAL_DOWNLOAD`). Adds ``targets`` and ``sample_keys``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        verify_str_arg(split, "split", ("train", "test"))
        if download:
            self.download()
        if split == "train":
            required = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train")
        else:
            required = ("devkit/cars_meta.mat", "cars_test_annos_withlabels.mat", "cars_test")
        base = expand_root(root) / "stanford_cars"
        check_layout(base, required, "Stanford Cars", STANFORD_CARS_MANUAL_DOWNLOAD)
        # torchvision's StanfordCars builds its paths from the root as given, without expanding "~".
        super().__init__(base.parent, split=split, transform=transform, target_transform=target_transform)
        self.targets = [int(target) for _, target in self._samples]
        self.sample_keys = relative_keys([path for path, _ in self._samples], self._base_folder)

    def download(self) -> None:
        raise ValueError(STANFORD_CARS_MANUAL_DOWNLOAD)


class OxfordIIITPet(tvd.OxfordIIITPet):
    """torchvision's ``OxfordIIITPet`` with category targets (37 breeds); ``split`` is ``trainval`` or ``test``.

    Layout: ``root/oxford-iiit-pet/{images/, annotations/<split>.txt}``. ``trainval``
    (3,680 images) is the few-shot pool. Adds ``targets`` and ``sample_keys``.

    torchvision takes the class list from the split's own annotation file, so a partial
    download would load with classes missing (and labels beyond the list) and fail
    later; here it is refused at once, naming the breeds the split lacks (compared with
    the other split's annotations when present) and the image files that are missing.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        verify_str_arg(split, "split", ("trainval", "test"))
        base = expand_root(root) / "oxford-iiit-pet"
        if not download:
            check_layout(base, ("images", f"annotations/{split}.txt"), "Oxford-IIIT Pet")
        super().__init__(root, split=split, target_types="category", transform=transform,
                         target_transform=target_transform, download=download)
        self._check_complete(split)
        self.targets = list(self._labels)
        self.sample_keys = relative_keys(self._images, self._base_folder)

    def _check_complete(self, split: str) -> None:
        """Every breed in this split (the other split's, when its file is there) and every image file on disk."""
        problems = []
        breeds = _pet_breeds(self._anns_folder / f"{split}.txt")
        other = "test" if split == "trainval" else "trainval"
        if (self._anns_folder / f"{other}.txt").is_file():
            expected = _pet_breeds(self._anns_folder / f"{other}.txt")
            missing = {label: name for label, name in expected.items() if label not in breeds}
            extra = {label: name for label, name in breeds.items() if label not in expected}
            if missing:
                problems.append(f"annotations/{split}.txt has no image of {len(missing)} of the "
                                f"{len(expected)} breeds in annotations/{other}.txt: {_named(missing)}")
            if extra:
                problems.append(f"annotations/{other}.txt has no image of {_named(extra)}, which "
                                f"annotations/{split}.txt lists")
        gaps = sorted(set(range(max(breeds) + 1)) - set(breeds)) if breeds else []
        if gaps and not problems:
            problems.append(f"annotations/{split}.txt has no image of the breeds numbered "
                            f"{', '.join(str(label + 1) for label in gaps)}")
        absent = [path for path in self._images if not path.is_file()]
        if absent:
            shown = ", ".join(path.relative_to(self._base_folder).as_posix() for path in absent[:5])
            problems.append(f"{len(absent)} of the {len(self._images)} images of the {split} split are missing "
                            f"({shown}{', ...' if len(absent) > 5 else ''})")
        if problems:
            raise FileNotFoundError(f"{self._base_folder} is not a complete Oxford-IIIT Pet layout (a partial "
                                    f"download?): {'; '.join(problems)}")


def _pet_breeds(annotations: Path) -> dict[int, str]:
    """``{0-based label: breed}`` of an Oxford-IIIT Pet annotation file (``<breed>_<n> <label> ...`` lines)."""
    breeds = {}
    for line in annotations.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            image_id, label = line.split()[:2]
            breeds[int(label) - 1] = image_id.rsplit("_", 1)[0]
    return breeds


def _named(breeds: dict[int, str]) -> str:
    return ", ".join(f"{name} ({label + 1})" for label, name in sorted(breeds.items()))


class Flowers102(tvd.Flowers102):
    """torchvision's ``Flowers102`` (102 classes); ``split`` is ``train``, ``val`` or ``test``.

    Layout: ``root/flowers-102/{jpg/, imagelabels.mat, setid.mat}`` (torchvision checks the two
    ``.mat`` files' MD5). Adds ``class_to_idx``, ``targets`` and ``sample_keys``. Flower-LT pools
    all three splits (see :mod:`diffii_datasets.settings.loading`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        verify_str_arg(split, "split", ("train", "val", "test"))
        base = expand_root(root) / "flowers-102"
        if not download:
            check_layout(base, ("jpg", "imagelabels.mat", "setid.mat"), "Flowers-102")
        super().__init__(root, split=split, transform=transform, target_transform=target_transform,
                         download=download)
        self.classes = list(self.classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.targets = list(self._labels)
        self.sample_keys = relative_keys(self._image_files, self._base_folder)
