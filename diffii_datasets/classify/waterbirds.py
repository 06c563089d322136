"""Waterbirds (Sagawa et al., 2019) as the paper's OOD test set: CUB birds pasted on land or water scenes.

Read from ``root/waterbird_complete95_forest2water2/`` (the released archive:
``metadata.csv`` with ``img_filename, y, split, place`` and the images). Each image
keeps its CUB-200 class, taken from its folder (``001.Black_footed_Albatross``), so a
classifier trained on CUB is scored on it directly; ``groups`` puts each image in one
of the four (bird, background) groups of the paper's Table 3, ``2 * y + place``: the
order of the authors' lists ``test00``, ``test01``, ``test10``, ``test11``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets.datasets.cub import readable_class_name

__all__ = ["GROUP_NAMES", "WATERBIRDS_URL", "Waterbirds"]

WATERBIRDS_URL = "https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz"
GROUP_NAMES = ("landbird on land", "landbird on water", "waterbird on land", "waterbird on water")
_SPLITS = {"train": "0", "val": "1", "test": "2"}


class Waterbirds(Dataset):
    """One split of Waterbirds, labelled with the CUB-200 classes; ``groups[i]`` indexes :data:`GROUP_NAMES`."""

    folder = "waterbird_complete95_forest2water2"

    def __init__(self, root: str | Path, split: str = "test", transform: Any = None) -> None:
        _checks.check_choice(split, "split", tuple(_SPLITS))
        self.base = Path(root).expanduser() / self.folder
        metadata = self.base / "metadata.csv"
        if not metadata.is_file():
            raise FileNotFoundError(f"Waterbirds not found: {metadata} is missing. Download {WATERBIRDS_URL} and "
                                    f"extract it into {Path(root).expanduser()}")
        with open(metadata, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        folders = sorted({row["img_filename"].split("/")[0] for row in rows}, key=_class_number)
        if [_class_number(folder) for folder in folders] != list(range(1, len(folders) + 1)):
            raise ValueError(f"{metadata}: the image folders must be numbered 001.<name> ... without gaps")
        self.classes = [readable_class_name(folder) for folder in folders]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.group_names = list(GROUP_NAMES)
        chosen = [row for row in rows if row["split"] == _SPLITS[split]]
        self.samples = [(self.base / row["img_filename"], _class_number(row["img_filename"].split("/")[0]) - 1)
                        for row in chosen]
        self.targets = [label for _, label in self.samples]
        self.groups = [2 * int(row["y"]) + int(row["place"]) for row in chosen]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            image = image.convert("RGB")
        return (self.transform(image) if self.transform is not None else image), label


def _class_number(folder: str) -> int:
    number = folder.split(".", 1)[0]
    if not number.isdigit():
        raise ValueError(f"Waterbirds image folder {folder!r} does not start with a CUB class number (001.<name>)")
    return int(number)
