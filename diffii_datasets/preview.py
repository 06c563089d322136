"""Preview grids: one row per class, real images next to synthetic ones, class names as labels."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = ["preview_grid"]

LABEL_WIDTH = 160
GAP = 4
SEPARATOR = 12


def preview_grid(
    rows: Sequence[tuple[str, Sequence[Image.Image], Sequence[Image.Image]]],
    tile: int = 96,
) -> Image.Image:
    """Render ``(class_name, real_images, synthetic_images)`` rows into one RGB image.

    Every image is resized to ``tile`` x ``tile``; real images come first, then a
    gap, then synthetic ones. The canvas is
    ``LABEL_WIDTH + max_real * (tile + GAP) + SEPARATOR + max_synthetic * (tile + GAP)``
    pixels wide and ``len(rows) * (tile + GAP) + header`` high.
    """
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
