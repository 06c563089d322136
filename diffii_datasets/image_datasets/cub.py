"""Caltech-UCSD Birds-200-2011, the torchvision way (torchvision ships no CUB class)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torchvision.datasets.folder import default_loader
from torchvision.datasets.utils import download_and_extract_archive, verify_str_arg
from torchvision.datasets.vision import VisionDataset

from diffii_datasets.image_datasets._layout import check_layout

__all__ = ["CUB200", "readable_class_name"]


class CUB200(VisionDataset):
    """`CUB-200-2011 <https://www.vision.caltech.edu/datasets/cub_200_2011/>`_: 11,788 images of 200 bird species.

    Reads the official layout under ``root/CUB_200_2011/``: ``images.txt``,
    ``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt`` and
    ``images/<NNN.Name>/*.jpg``. The files number images and classes from 1; labels
    here are 0-based class indices. Class names are made readable
    (``001.Black_footed_Albatross`` becomes ``Black footed Albatross``) because
    they end up in prompts and model cards.

    Args:
        root: Folder that holds (or will hold) ``CUB_200_2011/``.
        split: ``"train"`` (5,994 images) or ``"test"`` (5,794 images), from ``train_test_split.txt``.
        transform: Applied to the PIL image.
        target_transform: Applied to the int label.
        download: Fetch and extract the official archive from CaltechDATA (MD5 checked) when the
            dataset is not under ``root`` yet.
        loader: Loads an image from its path (PIL RGB by default).

    Attributes:
        classes: Readable class names, in class-id order.
        class_to_idx: Class name to 0-based label.
        targets: The label of each item.
        sample_keys: Each item's image path relative to ``CUB_200_2011/`` (a stable sort key).
    """

    url = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
    filename = "CUB_200_2011.tgz"
    md5 = "97eceeb196236b17998738112f37df78"
    base_folder = "CUB_200_2011"
    required_files = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
        loader: Callable[[str], Any] = default_loader,
    ) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.split = verify_str_arg(split, "split", ("train", "test"))
        self.loader = loader
        self._base = Path(self.root) / self.base_folder

        if download:
            self.download()
        try:
            check_layout(self._base, self.required_files, "CUB-200-2011")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}. Delete the folder and use download=True, or extract the official "
                                    "CUB_200_2011.tgz there.") from None

        class_folders = self._read_table("classes.txt")
        paths = self._read_table("images.txt")
        labels = self._read_table("image_class_labels.txt")
        is_train = self._read_table("train_test_split.txt")
        for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train)):
            if table.keys() != paths.keys():
                raise ValueError(f"{self._base / name} does not list the same image ids as images.txt")

        class_ids = sorted(class_folders)
        if class_ids != list(range(1, len(class_ids) + 1)):
            raise ValueError(f"{self._base / 'classes.txt'} must number classes 1..N without gaps")
        self.classes = [readable_class_name(class_folders[i]) for i in class_ids]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

        wanted = "1" if self.split == "train" else "0"
        self._image_files: list[str] = []
        self.targets: list[int] = []
        for image_id in sorted(paths):
            if is_train[image_id] != wanted:
                continue
            label = int(labels[image_id]) - 1
            if not 0 <= label < len(self.classes):
                raise ValueError(
                    f"{self._base / 'image_class_labels.txt'}: image {image_id} has unknown class {label + 1}"
                )
            self._image_files.append(paths[image_id])
            self.targets.append(label)
        self.sample_keys = [f"images/{path}" for path in self._image_files]

    def _read_table(self, name: str) -> dict[int, str]:
        """``<1-based id> <value>`` lines into a dict."""
        table = {}
        with open(self._base / name, encoding="utf-8") as file:
            for line_number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                parts = line.split(maxsplit=1)
                if len(parts) != 2 or not parts[0].isdigit():
                    raise ValueError(f"{self._base / name}, line {line_number}: expected '<id> <value>', got {line!r}")
                table[int(parts[0])] = parts[1].strip()
        return table

    def __len__(self) -> int:
        return len(self._image_files)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self.loader(os.path.join(self._base, "images", self._image_files[index]))
        target = self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def download(self) -> None:
        """Download and extract the official archive unless ``CUB_200_2011/`` already exists."""
        if self._base.is_dir():
            return
        download_and_extract_archive(self.url, download_root=self.root, filename=self.filename, md5=self.md5)

    def extra_repr(self) -> str:
        return f"Split: {self.split}"


def readable_class_name(folder_name: str) -> str:
    """``001.Black_footed_Albatross`` -> ``Black footed Albatross``."""
    return folder_name.split(".", 1)[-1].replace("_", " ")
