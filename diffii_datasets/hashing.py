"""Content digests of images and tensors: the same pixels or values give the same digest on any machine.

JSON-able values are fingerprinted by :func:`diffii_datasets._io.fingerprint`; this
module adds what needs the imaging libraries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from diffii_datasets._io import fingerprint

__all__ = ["image_digest", "images_fingerprint", "tensor_digest"]


def image_digest(image: Any) -> str:
    """Digest of an image's RGB pixels and size (independent of file format or PIL mode)."""
    from diffii_datasets.images import to_pil_rgb

    rgb = to_pil_rgb(image)
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def images_fingerprint(images: Iterable[Any], length: int = 16) -> str:
    """Digest of an ordered collection of images."""
    return fingerprint([image_digest(image) for image in images], length)


def tensor_digest(tensor: Any) -> str:
    """Digest of a torch tensor's dtype, shape and bytes."""
    import torch

    tensor = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
