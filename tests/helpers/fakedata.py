"""Writers of tiny fake copies of the benchmark datasets in their official on-disk layouts.

Every image is a solid 8x8 JPEG whose colour encodes its 0-based label
(:func:`label_of`), so a test can check that the label a loader returns belongs to the
image it returns. Each writer returns ``{key: label}`` for the split(s) it wrote, with
keys as the loaders' ``sample_keys`` (paths relative to the dataset folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

SIZE = 8

# The fake CUB: class folder -> (train images, test images); the last class is short of 5 shots.
CUB_CLASSES = {
    "001.Black_footed_Albatross": (12, 4),
    "002.Laysan_Albatross": (11, 3),
    "003.Sooty_Albatross": (12, 5),
    "004.Groove_billed_Ani": (3, 2),
}


def colour_of(label: int) -> tuple[int, int, int]:
    return (8 + 16 * (label % 15), 8 + 16 * (label // 15 % 15), 128)


def label_of(image: Image.Image) -> int:
    red, green, _ = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return int(round((red - 8) / 16)) + 15 * int(round((green - 8) / 16))


def write_image(path: Path, label: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (SIZE, SIZE), colour_of(label)).save(path, quality=95)


def write_cub(root: Path, per_class: dict[str, tuple[int, int]], order_seed: int | None = None) -> dict[str, dict]:
    """``per_class``: class folder name (``NNN.Name``) -> (train images, test images).

    Image ids follow class order unless ``order_seed`` shuffles them (the on-disk listing
    order must not matter). Returns ``{"train": {key: label}, "test": {key: label}}``.
    """
    base = root / "CUB_200_2011"
    items = []
    for label, (folder, (n_train, n_test)) in enumerate(per_class.items()):
        for j in range(n_train + n_test):
            relative = f"{folder}/{folder.split('.', 1)[1]}_{j:04d}_{label}.jpg"
            write_image(base / "images" / relative, label)
            items.append((relative, label, j < n_train))
    if order_seed is not None:
        items = [items[i] for i in np.random.default_rng(order_seed).permutation(len(items))]
    lines = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    for image_id, (relative, label, is_train) in enumerate(items, 1):
        lines["images.txt"].append(f"{image_id} {relative}")
        lines["image_class_labels.txt"].append(f"{image_id} {label + 1}")
        lines["train_test_split.txt"].append(f"{image_id} {int(is_train)}")
    lines["classes.txt"] = [f"{i} {folder}" for i, folder in enumerate(per_class, 1)]
    for name, content in lines.items():
        (base / name).write_text("\n".join(content) + "\n")
    return {
        split: {f"images/{rel}": label for rel, label, is_train in items if is_train == (split == "train")}
        for split in ("train", "test")
    }


def write_aircraft(root: Path, per_class: dict[str, tuple[int, int, int]]) -> dict[str, dict]:
    """``per_class``: variant name -> (train, val, test) image counts. Writes all four split files."""
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("".join(f"{name}\n" for name in per_class))
    splits: dict[str, dict] = {"train": {}, "val": {}, "test": {}}
    image_number = 1000000
    for label, (name, counts) in enumerate(per_class.items()):
        for split, count in zip(("train", "val", "test"), counts):
            for _ in range(count):
                image_number += 7
                write_image(data / "images" / f"{image_number}.jpg", label)
                splits[split][f"data/images/{image_number}.jpg"] = (label, name)
    splits["trainval"] = {**splits["train"], **splits["val"]}
    for split, entries in splits.items():
        lines = [f"{Path(key).stem} {name}\n" for key, (_, name) in entries.items()]
        (data / f"images_variant_{split}.txt").write_text("".join(lines))
    return {split: {key: label for key, (label, _) in entries.items()} for split, entries in splits.items()}


def _annotations(fnames: list[str], labels: list[int]) -> np.ndarray:
    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    records = np.zeros((1, len(fnames)), dtype=[(field, "O") for field in fields])
    for i, (fname, label) in enumerate(zip(fnames, labels)):
        box = [np.array([[v]], dtype=np.uint16) for v in (0, 0, SIZE - 1, SIZE - 1)]
        records[0, i] = (*box, np.array([[label + 1]], dtype=np.uint8), np.array([fname]))
    return records


def write_cars(root: Path, per_class: dict[str, tuple[int, int]]) -> dict[str, dict]:
    """``per_class``: class name -> (train, test) counts; devkit ``.mat`` files written with scipy."""
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.array(list(per_class), dtype=object).reshape(1, -1)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    result = {}
    for split, column, mat_path in (("train", 0, base / "devkit" / "cars_train_annos.mat"),
                                    ("test", 1, base / "cars_test_annos_withlabels.mat")):
        labels = [label for label, counts in enumerate(per_class.values()) for _ in range(counts[column])]
        # Interleave classes, as the real annotation files do.
        labels = [labels[i] for i in np.random.default_rng(column).permutation(len(labels))]
        fnames = [f"{i:05d}.jpg" for i in range(1, len(labels) + 1)]
        for fname, label in zip(fnames, labels):
            write_image(base / f"cars_{split}" / fname, label)
        scipy.io.savemat(mat_path, {"annotations": _annotations(fnames, labels)})
        result[split] = {f"cars_{split}/{fname}": label for fname, label in zip(fnames, labels)}
    return result


def write_pet(root: Path, per_class: dict[str, tuple[int, int]]) -> dict[str, dict]:
    """``per_class``: breed file prefix (``Abyssinian``, ``american_bulldog``) -> (trainval, test) counts."""
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    result: dict[str, dict] = {"trainval": {}, "test": {}}
    lines: dict[str, list] = {"trainval": [], "test": []}
    for label, (breed, counts) in enumerate(per_class.items()):
        species = 1 if breed[0].isupper() else 2
        number = 0
        for split, count in zip(("trainval", "test"), counts):
            for _ in range(count):
                number += 1
                image_id = f"{breed}_{number}"
                write_image(base / "images" / f"{image_id}.jpg", label)
                lines[split].append(f"{image_id} {label + 1} {species} {number}\n")
                result[split][f"images/{image_id}.jpg"] = label
    for split, content in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(content))
    return result


def write_flowers(root: Path, counts: list[tuple[int, int, int]]) -> dict[str, dict]:
    """``counts[c]``: (train, val, test) images of class ``c`` (torchvision knows 102 flower classes)."""
    base = root / "flowers-102"
    labels, split_ids = [], {"trnid": [], "valid": [], "tstid": []}
    # Images are numbered in an order unrelated to classes, as in the real jpg/ folder.
    slots = [(label, split) for label, per_split in enumerate(counts)
             for split, count in zip(split_ids, per_split) for _ in range(count)]
    slots = [slots[i] for i in np.random.default_rng(1).permutation(len(slots))]
    result: dict[str, dict] = {"train": {}, "val": {}, "test": {}}
    names = {"trnid": "train", "valid": "val", "tstid": "test"}
    for image_id, (label, split) in enumerate(slots, 1):
        write_image(base / "jpg" / f"image_{image_id:05d}.jpg", label)
        labels.append(label + 1)
        split_ids[split].append(image_id)
        result[names[split]][f"jpg/image_{image_id:05d}.jpg"] = label
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    scipy.io.savemat(base / "setid.mat", {key: np.array([ids], dtype=np.uint16) for key, ids in split_ids.items()})
    return result
