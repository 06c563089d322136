"""The one image-conversion path: PIL, ndarray or tensor in, RGB out.

Every entry point that accepts user images (the wrapper, the engine, concept
learning, captioning) goes through these two functions, so grayscale, RGBA,
palette, 16-bit, uint8, float, HWC and CHW inputs are handled the same way
everywhere, each by its real range: nothing is clipped silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["to_pil_rgb", "to_rgb_tensor"]


def to_pil_rgb(image: Any, *, name: str = "image") -> Image.Image:
    """Return ``image`` as an RGB ``PIL.Image``.

    Accepts a PIL image of any 8-bit mode, a 16-bit one (``I;16``: 0..65535 scaled to
    0..255), a float one (``F``, values in [0, 1]) or a 32-bit integer one (``I``, values
    in [0, 255]); a ``numpy`` array ``[H, W]`` or ``[H, W, C]`` (PIL's layout) or a
    ``torch`` tensor ``[H, W]`` or ``[C, H, W]`` (torchvision's layout) with C in
    {1, 3, 4}, uint8 in [0, 255], uint16 in [0, 65535] or floating point in [0, 1].
    Alpha is dropped, a single channel is repeated. Values are never clipped: anything
    outside its range (and NaN, and an image without pixels) is an error naming ``name``.
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image, name)
    if isinstance(image, torch.Tensor):
        shape = tuple(image.shape)
        array = image.detach().cpu()
        array = (array.float() if array.is_floating_point() else array).numpy()
        if array.ndim == 3:  # torchvision convention: channels first
            array = np.moveaxis(array, 0, -1)
        layout = "[H, W] or [C, H, W]"
    elif isinstance(image, np.ndarray):
        shape, array, layout = image.shape, image, "[H, W] or [H, W, C]"  # numpy/PIL convention
    else:
        raise TypeError(f"{name} must be a PIL image, numpy array or torch tensor, got {type(image).__name__}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"{name} must have shape {layout} with C in (1, 3, 4), got {tuple(shape)}")
    _check_not_empty(array.shape[1], array.shape[0], name)
    array = _to_uint8(array, name)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    pil = Image.fromarray(np.ascontiguousarray(array))
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def _check_not_empty(width: int, height: int, name: str) -> None:
    if width == 0 or height == 0:
        raise ValueError(f"{name} must have at least one pixel, got a {width}x{height} image")


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """uint8 as is, uint16 by its full range, floating point from [0, 1]; anything else is refused."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16 or array.dtype == np.dtype(">u2"):
        return np.round(array.astype(np.float64) / 257).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if np.isnan(array).any():
            raise ValueError(f"{name} contains NaN values; expected floating point values in [0, 1]")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"{name} is floating point, so its values must lie in [0, 1]; "
                             f"got [{array.min():.3g}, {array.max():.3g}]")
        return np.round(array * 255).astype(np.uint8)
    raise TypeError(f"{name} must be uint8, uint16 or floating point, got dtype {array.dtype}")


def _pil_to_rgb(image: Image.Image, name: str) -> Image.Image:
    _check_not_empty(image.width, image.height, name)
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "F":
        return to_pil_rgb(np.asarray(image), name=f"{name} (PIL mode {image.mode!r})")
    if image.mode == "I":
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"{name} is a 32-bit integer image (PIL mode 'I') with values in [{array.min()}, "
                             f"{array.max()}]: its range is unknown, so it is not converted (clipping would change "
                             "it); scale it to 8 bits, e.g. Image.fromarray((np.asarray(image) / 257).round()"
                             ".astype('uint8')) for 16-bit data")
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ValueError(f"{name} has PIL mode {image.mode!r}, which cannot be converted to RGB ({error})") from None


def to_rgb_tensor(image: Any, *, name: str = "image") -> torch.Tensor:
    """Return ``image`` as a float32 tensor ``[3, H, W]`` in [0, 1] (any input :func:`to_pil_rgb` takes)."""
    array = np.asarray(to_pil_rgb(image, name=name), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
