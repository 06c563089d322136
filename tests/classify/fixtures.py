"""Complete stores written directly (no diffusion), whose images say what they are, and a tiny recipe.

Real images are solid blue; the synthetic images of class ``c`` are solid red with
green ``40 * c``, so a test reads from a pixel whether an item was replaced and by
which class (:func:`decode`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffii_datasets.classify import Recipe, Waterbirds
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.store import StoreHeader, SyntheticRecord, SyntheticStore

REAL_COLOUR = (0, 0, 255)


def synthetic_colour(label: int) -> tuple[int, int, int]:
    return (255, 40 * label, 0)


def decode(pixel: np.ndarray) -> int | None:
    """None for a real image, else the class of the synthetic image (``pixel``: RGB in [0, 1])."""
    red, green, _ = pixel
    return None if red < 0.5 else int(round(green * 255 / 40))


def write_store(path: Path, real_counts: list[int], synthetic_per_class: int = 2, size: int = 8,
                classes: list[str] | None = None, committed: int | None = None) -> SyntheticStore:
    """A store of ``len(real_counts)`` classes, written through the store's own writer.

    Complete, unless ``committed`` says how many classes (the first ones) are written.
    """
    classes = classes or [f"class {c}" for c in range(len(real_counts))]
    header = StoreHeader(config=DiffIIConfig(expansion_rate=1.0), classes=tuple(classes), metaclass="shape",
                         dataset="fixture", model="fixture", concepts="fixture", real_counts=tuple(real_counts),
                         expected_counts=(synthetic_per_class,) * len(real_counts))
    store = SyntheticStore.create(path, header)
    for label, count in enumerate(real_counts[:committed]):
        with store.writing(label) as writer:
            writer.write_inversions(torch.zeros(count, 4, 1, 1))
            for index in range(count):
                writer.add_real(index, Image.new("RGB", (size, size), REAL_COLOUR))
            for index in range(synthetic_per_class):
                writer.add(Image.new("RGB", (size, size), synthetic_colour(label)), SyntheticRecord(index, label))
    if committed is None:
        store.finalize(range(len(real_counts)), versions={})
    return SyntheticStore.open(path)


def tiny_recipe(**changes) -> Recipe:
    """A small ShuffleNet from random weights on 32-pixel images: a few cheap CPU steps per epoch."""
    base = dict(model="shufflenet_v2_x0_5", weights=None, image_size=32, resize=32, epochs=2, batch_size=8, lr=0.05,
                synthetic_probability=0.0, seed=0)
    return Recipe(**{**base, **changes})


def write_waterbirds(root, rows):
    """A fake Waterbirds folder: ``rows`` of (class number, split, y, place)."""
    base = root / Waterbirds.folder
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    names = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross", 3: "003.Sooty_Albatross"}
    for i, (number, split, y, place) in enumerate(rows):
        filename = f"{names[number]}/{i:04d}.jpg"
        (base / names[number]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (60 * number, 40 * place, 100 * y)).save(base / filename)
        lines.append(f"{i},{filename},{y},{split},{place},x.jpg")
    (base / "metadata.csv").write_text("\n".join(lines) + "\n")
