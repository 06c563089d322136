"""Preview grids: one row per class, real images next to synthetic ones, class names as labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

    from diffii_datasets.store import SyntheticStore

__all__ = ["PER_CLASS", "TILE", "preview_grid", "preview_store"]

PER_CLASS = 4
"""Real and synthetic images shown per class, by default."""
TILE = 96
"""The side of each image in pixels, by default."""
LABEL_WIDTH = 160
GAP = 4
SEPARATOR = 12


def preview_grid(
    rows: Sequence[tuple[str, Sequence[Image.Image], Sequence[Image.Image]]],
    tile: int = TILE,
) -> Image.Image:
    """Render ``(class_name, real_images, synthetic_images)`` rows into one RGB image.

    Every image is resized to ``tile`` x ``tile``; real images come first, then a
    gap, then synthetic ones. The canvas is
    ``LABEL_WIDTH + max_real * (tile + GAP) + SEPARATOR + max_synthetic * (tile + GAP)``
    pixels wide and ``len(rows) * (tile + GAP) + header`` high.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not rows:
        raise ValueError("rows must hold at least one (class_name, real, synthetic) row")
    if tile < 8:
        raise ValueError(f"tile must be at least 8 pixels, got {tile}")
    n_real = max(len(real) for _, real, _ in rows)
    n_synth = max(len(synth) for _, _, synth in rows)
    font = ImageFont.load_default()
    header = 16
    width = LABEL_WIDTH + n_real * (tile + GAP) + SEPARATOR + n_synth * (tile + GAP)
    height = header + len(rows) * (tile + GAP)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    synth_x = LABEL_WIDTH + n_real * (tile + GAP) + SEPARATOR
    draw.text((LABEL_WIDTH, 2), "real", fill="black", font=font)
    draw.text((synth_x, 2), "synthetic", fill="black", font=font)
    for r, (name, real, synth) in enumerate(rows):
        y = header + r * (tile + GAP)
        draw.text((4, y + tile // 2 - 6), _fit(name, draw, font), fill="black", font=font)
        for c, image in enumerate(real):
            canvas.paste(image.convert("RGB").resize((tile, tile)), (LABEL_WIDTH + c * (tile + GAP), y))
        for c, image in enumerate(synth):
            canvas.paste(image.convert("RGB").resize((tile, tile)), (synth_x + c * (tile + GAP), y))
    return canvas


def _fit(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont) -> str:
    """Shorten ``text`` with an ellipsis until it fits in the label column."""
    limit = LABEL_WIDTH - 8
    if draw.textlength(text, font=font) <= limit:
        return text
    while text and draw.textlength(text + "...", font=font) > limit:
        text = text[:-1]
    return text + "..."


def preview_store(store: SyntheticStore, classes: Sequence[int] | None = None, per_class: int = PER_CLASS,
                  tile: int = TILE) -> Image.Image:
    """A :func:`preview_grid` of a store: up to ``per_class`` real and synthetic images of each class."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    names = store.header.classes
    classes = list(range(len(names))) if classes is None else list(classes)
    bad = [c for c in classes if not 0 <= c < len(names)]
    if bad:
        raise ValueError(f"classes must be class indices in [0, {len(names) - 1}], got {bad}")
    rows = []
    for c in classes:
        if not store.is_committed(c):
            continue
        real = [store.load_image(path) for path in store.real_images(c)[:per_class]]
        synthetic = [store.load_image(store.image_path(c, r.file)) for r in store.records(c)[:per_class]]
        rows.append((f"{c}: {names[c]}", real, synthetic))
    if not rows:
        raise ValueError(f"none of the requested classes is committed in {store.path} yet")
    return preview_grid(rows, tile=tile)
