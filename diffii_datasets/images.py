"""The one image-conversion path: PIL, ndarray or tensor in, RGB out.

Every entry point that accepts user images (the wrapper, the engine, concept
learning, captioning) goes through these two functions, so grayscale, RGBA,
palette, uint8, float, HWC and CHW inputs are handled the same way everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["to_pil_rgb", "to_rgb_tensor"]


def to_pil_rgb(image: Any, *, name: str = "image") -> Image.Image:
    """Return ``image`` as an RGB ``PIL.Image``.

    Accepts a PIL image of any mode, a ``numpy`` array ``[H, W]`` or ``[H, W, C]``
    (PIL's layout) or a ``torch`` tensor ``[H, W]`` or ``[C, H, W]`` (torchvision's
    layout) with C in {1, 3, 4}, either uint8 in [0, 255] or floating point in
    [0, 1]. Alpha is dropped, a single channel is repeated.
    """
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
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
    if array.dtype == np.uint8:
        pass
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(f"{name} is floating point, so its values must lie in [0, 1]; "
                             f"got [{array.min():.3g}, {array.max():.3g}]")
        array = np.round(array * 255).astype(np.uint8)
    else:
        raise TypeError(f"{name} must be uint8 or floating point, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    pil = Image.fromarray(np.ascontiguousarray(array))
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def to_rgb_tensor(image: Any, *, name: str = "image") -> torch.Tensor:
    """Return ``image`` as a float32 tensor ``[3, H, W]`` in [0, 1] (any input :func:`to_pil_rgb` takes)."""
    array = np.asarray(to_pil_rgb(image, name=name), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
