"""Images as the quality measures read them: files or image-like values, loaded one class at a time."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from diffii_datasets.images import to_pil_rgb

__all__ = ["LazyImages", "load_rgb", "square_crop"]


def load_rgb(item: Any, name: str = "image") -> Image.Image:
    """An RGB PIL image from a path or anything :func:`~diffii_datasets.images.to_pil_rgb` takes."""
    if isinstance(item, (str, os.PathLike)):
        with Image.open(item) as image:
            return image.convert("RGB")
    return to_pil_rgb(item, name=name)


def square_crop(image: Image.Image, size: int) -> Image.Image:
    """``image`` with its shorter side resized to ``size`` (bicubic) and centre-cropped to ``size`` x ``size``."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


class LazyImages(Sequence):
    """``count`` images read on access by ``read(i)``, so a large set is held one class at a time."""

    def __init__(self, read: Callable[[int], Any], count: int) -> None:
        self._read = read
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(f"image index {index} out of range for {self._count} images")
        return self._read(index % self._count)
