"""Image conversion, fingerprints and prompt assembly."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffii_datasets.diffusion.prompts import build_prompt, normalize_suffix
from diffii_datasets._io import fingerprint
from diffii_datasets.hashing import image_digest, images_fingerprint
from diffii_datasets.images import to_pil_rgb, to_rgb_tensor


def _rgb():
    return np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("convert", [
    lambda a: Image.fromarray(a),
    lambda a: a,
    lambda a: torch.from_numpy(a).permute(2, 0, 1),
    lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255,
    lambda a: a.astype(np.float64) / 255,
])
def test_all_rgb_forms_convert_to_the_same_pixels(convert):
    array = _rgb()
    assert np.array_equal(np.asarray(to_pil_rgb(convert(array))), array)
    tensor = to_rgb_tensor(convert(array))
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert torch.allclose(tensor * 255, torch.from_numpy(array).permute(2, 0, 1).float(), atol=1e-3)


def test_grayscale_and_rgba_are_converted_not_rejected():
    gray = np.full((4, 4), 100, dtype=np.uint8)
    assert np.asarray(to_pil_rgb(gray)).shape == (4, 4, 3)
    assert to_rgb_tensor(torch.zeros(1, 4, 4)).shape == (3, 4, 4)
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert to_pil_rgb(rgba).getpixel((0, 0)) == (10, 20, 30)
    assert to_rgb_tensor(np.zeros((4, 4, 4), dtype=np.uint8)).shape == (3, 4, 4)


def test_bad_images_get_errors_naming_the_argument():
    with pytest.raises(TypeError, match="photo must be"):
        to_pil_rgb("not an image", name="photo")
    with pytest.raises(ValueError, match=r"image must have shape"):
        to_pil_rgb(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_pil_rgb(np.full((4, 4, 3), 2.0))


def test_fingerprints_are_stable_and_content_based():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    array = _rgb()
    assert image_digest(Image.fromarray(array)) == image_digest(array)
    assert image_digest(Image.fromarray(array).convert("RGBA")) == image_digest(array)
    other = array.copy()
    other[0, 0, 0] ^= 1
    assert images_fingerprint([array, other]) != images_fingerprint([other, array])
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint({"x": object()})


@pytest.mark.parametrize("raw", [
    "perched on a branch", " perched on a branch. ", '"A photo of a bird perched on a branch."',
    "a photo of a bird perched on a branch", "“perched   on a branch.”",
])
def test_suffixes_normalise_to_one_form(raw):
    assert normalize_suffix(raw, "bird") == "perched on a branch"
    assert build_prompt("<class_0>", "bird", raw) == "a photo of a <class_0> bird perched on a branch."


def test_prompt_without_suffix_and_empty_suffix():
    assert build_prompt("<class_3> <class_3>_1", "aircraft") == "a photo of a <class_3> <class_3>_1 aircraft"
    with pytest.raises(ValueError, match="suffix"):
        build_prompt("<class_0>", "bird", "a photo of a bird.")
