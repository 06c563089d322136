"""Waterbirds (Sagawa et al., 2019) as the paper's OOD test set: CUB birds pasted on land or water scenes.

Read from ``root/waterbird_complete95_forest2water2/`` (the released archive:
``metadata.csv`` with ``img_filename, y, split, place`` and the images). Each image
keeps its CUB-200 class, taken from its folder (``001.Black_footed_Albatross``), so a
classifier trained on CUB is scored on it directly; ``groups`` puts each image in one
of the four (bird, background) groups of the paper's Table 3, ``2 * y + place``: the
order of the authors' lists ``test00``, ``test01``, ``test10``, ``test11``.

:meth:`Waterbirds.from_lists` takes those lists instead (``datasets/waterbird/test<y><place>.txt``
of the authors' ``datasets.zip``, which their ``scripts/run.sh`` lines 346-393 test on, one run
per group): the listed images, found in the same ``metadata.csv`` by file name, each in the
group of its list.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from diffii_datasets import _checks
from diffii_datasets.image_datasets.cub import readable_class_name

__all__ = ["GROUP_NAMES", "WATERBIRDS_URL", "Waterbirds"]

logger = logging.getLogger(__name__)

WATERBIRDS_URL = "https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz"
GROUP_NAMES = ("landbird on land", "landbird on water", "waterbird on land", "waterbird on water")
_SPLITS = {"train": "0", "val": "1", "test": "2"}


class Waterbirds(Dataset):
    """One split of Waterbirds, labelled with the CUB-200 classes; ``groups[i]`` indexes :data:`GROUP_NAMES`."""

    folder = "waterbird_complete95_forest2water2"

    def __init__(self, root: str | Path, split: str = "test", transform: Any = None) -> None:
        _checks.check_choice(split, "split", tuple(_SPLITS))
        rows = self._read(root)
        chosen = [row for row in rows if row["split"] == _SPLITS[split]]
        self._keep(chosen, [_group(row) for row in chosen], transform)

    @classmethod
    def from_lists(cls, root: str | Path, lists: Sequence[str | Path], *, sources: Sequence[str] | None = None,
                   transform: Any = None) -> Waterbirds:
        """The images of the authors' four group lists (``test00`` ... ``test11``, in :data:`GROUP_NAMES` order).

        Each listed ``<path> <label>`` line is matched to ``metadata.csv`` by its file name
        (by ``<folder>/<file>`` where a file name occurs twice); the class comes from the
        image's folder, as for a split, and the group from the list. ``sources`` names the
        lists in messages (default: their paths). A listed image that is not in the
        metadata is an error naming the list and line.
        """
        from diffii_datasets.released.lists import read_image_list

        if len(lists) != len(GROUP_NAMES):
            raise ValueError(f"lists must be the {len(GROUP_NAMES)} group lists test00, test01, test10, test11; "
                             f"got {len(lists)}")
        sources = [str(path) for path in lists] if sources is None else list(sources)
        dataset = cls.__new__(cls)
        rows = dataset._read(root)
        by_file: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            by_file.setdefault(row["img_filename"].rsplit("/", 1)[-1], []).append(row)
        chosen, groups = [], []
        for group, (path, source) in enumerate(zip(lists, sources)):
            for image in read_image_list(Path(path)):
                found = [row for row in by_file.get(image.file, [])
                         if len(by_file[image.file]) == 1 or row["img_filename"].split("/")[0] == image.category]
                if len(found) != 1:
                    raise ValueError(f"{source}, line {image.line}: {image.path} is not an image of "
                                     f"{dataset.base / 'metadata.csv'}")
                chosen.append(found[0])
                groups.append(group)
        moved = sum(_group(row) != group for row, group in zip(chosen, groups))
        if moved:
            logger.warning("%d of the %d images the authors' Waterbirds lists name are in another group in "
                           "metadata.csv (2 * y + place); scored in the group of their list", moved, len(chosen))
        dataset._keep(chosen, groups, transform)
        return dataset

    def _read(self, root: str | Path) -> list[dict[str, str]]:
        """The rows of ``metadata.csv``; sets ``base`` and the classes (every CUB folder, numbered without gaps)."""
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
        return rows

    def _keep(self, rows: list[dict[str, str]], groups: list[int], transform: Any) -> None:
        self.samples = [(self.base / row["img_filename"], _class_number(row["img_filename"].split("/")[0]) - 1)
                        for row in rows]
        self.targets = [label for _, label in self.samples]
        self.groups = groups
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            image = image.convert("RGB")
        return (self.transform(image) if self.transform is not None else image), label


def _group(row: dict[str, str]) -> int:
    return 2 * int(row["y"]) + int(row["place"])


def _class_number(folder: str) -> int:
    number = folder.split(".", 1)[0]
    if not number.isdigit():
        raise ValueError(f"Waterbirds image folder {folder!r} does not start with a CUB class number (001.<name>)")
    return int(number)
