"""Hostile input: every case of issue 18 fails early, naming the argument or the item and what was expected;
images are converted by their real range or refused, never clipped; a base dataset must read the same twice."""

import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from diffii_datasets import DiffIIAugmented, DiffIIConfig
from diffii_datasets.images import to_pil_rgb
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import make_dataset, make_wrapper
from tests.helpers.cli import CLASSES, FAST_FLAGS
from tests.helpers.fakedata import write_cub


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sampling_seed": -1}, ValueError, r"sampling_seed must be a non-negative int below 2\*\*63, got -1"),
    ({"sampling_seed": "abc"}, TypeError, r"sampling_seed must be a non-negative int below 2\*\*63, got str 'abc'"),
    ({"synthetic_probability": "0.5"}, TypeError,
     r"synthetic_probability must be a finite number in \[0, 1\], got str '0.5'"),
    ({"pipeline": "str"}, TypeError, r"pipeline must be a Stable Diffusion pipeline with tokenizer, .*missing"),
    ({"classes": ["a", "a", "b"]}, ValueError, r"class names must be unique, repeated: \['a'\]"),
    ({"classes": ["a", " ", "b"]}, ValueError, r"classes must be a list of class names, got \['a', ' ', 'b'\]"),
    ({"classes": "ab"}, TypeError, r"classes must be a list of class names, got str 'ab'"),
])
def test_bad_arguments_fail_at_construction_naming_the_argument(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_wrapper(make_dataset(), tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_metaclass_seed_and_dataset_class_names_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"metaclass must be a one-line word such as 'bird', got 'bird\\nsitting'"):
        DiffIIAugmented(make_dataset(), "bird\nsitting", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"seed must be a non-negative int below 2\*\*63, got 18446744073709551616"):
        DiffIIConfig(seed=2**64)
    with pytest.raises(ValueError, match=r"base_dataset.classes must be a list of non-empty class names"):
        make_wrapper(make_dataset(classes=["a", "", "b"]), tmp_path)
    with pytest.raises(ValueError, match=r"class names must be unique, repeated: \['a'\]"):
        make_wrapper(make_dataset(classes=["a", "a", "b"]), tmp_path)


@pytest.mark.parametrize("image, match", [
    (torch.full((3, 8, 8), float("nan")), r"base_dataset\[1\] image contains NaN values"),
    (Image.new("RGB", (0, 0)), r"base_dataset\[1\] image must have at least one pixel, got a 0x0 image"),
    (np.zeros((0, 8, 3), np.uint8), r"base_dataset\[1\] image must have at least one pixel, got a 8x0 image"),
    (Image.fromarray(np.full((8, 8), 1000, np.int32)), r"base_dataset\[1\] image is a 32-bit integer image"),
    (Image.fromarray(np.full((8, 8), 2.0, np.float32)), r"base_dataset\[1\] image \(PIL mode 'F'\) is floating"),
])
def test_unusable_images_are_named_by_item_before_any_work(tmp_path, pipe, image, match):
    items = [(np.zeros((8, 8, 3), np.uint8), 0), (image, 0)]
    with pytest.raises(ValueError, match=match):
        make_wrapper(items, tmp_path, pipeline=pipe, classes=["a"]).prepare()
    assert list(tmp_path.iterdir()) == []  # found while scanning: no store was made


def test_deep_and_float_images_are_converted_by_their_real_range():
    def grey(image):
        return to_pil_rgb(image).getpixel((0, 0))

    assert grey(Image.fromarray(np.full((4, 4), 1000, np.uint16))) == (4, 4, 4)  # I;16: 1000 of 65535, not white
    assert Image.fromarray(np.full((4, 4), 1000, np.uint16)).mode == "I;16"
    assert grey(Image.fromarray(np.full((4, 4), 65535, np.uint16))) == (255, 255, 255)
    assert grey(Image.new("I;16B", (4, 4), 32896)) == (128, 128, 128)
    assert grey(Image.fromarray(np.full((4, 4), 0.5, np.float32))) == (128, 128, 128)  # F: 0.5 is grey, not black
    assert grey(Image.fromarray(np.full((4, 4), 200, np.int32))) == (200, 200, 200)  # I with 8-bit values: exact
    assert grey(np.full((4, 4, 3), 257 * 7, np.uint16)) == (7, 7, 7)
    assert grey(torch.full((3, 4, 4), 0.25)) == (64, 64, 64)
    with pytest.raises(ValueError, match=r"contains NaN"):
        to_pil_rgb(Image.fromarray(np.full((4, 4), np.nan, np.float32)))
    with pytest.raises(TypeError, match=r"must be uint8, uint16 or floating point, got dtype int64"):
        to_pil_rgb(np.zeros((4, 4), np.int64))


def test_a_base_dataset_with_a_transform_is_refused_saying_where_transforms_go(tmp_path):
    base = make_dataset(transform=lambda image: image)
    with pytest.raises(ValueError, match=r"base_dataset.transform is set .*Move the transform onto the wrapper"):
        make_wrapper(base, tmp_path)
    with pytest.raises(ValueError, match=r"base_dataset.dataset.transform is set"):
        make_wrapper(Subset(base, [0, 1, 2]), tmp_path, classes=base.classes)


class _Drifting(Dataset):
    """Reads differ from the ``first_stable``-th read of an item on (a random transform without the attribute)."""

    def __init__(self, changing_items):
        self.base, self.changing, self.reads = make_dataset(), changing_items, {}
        self.classes = self.base.classes

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        self.reads[index] = self.reads.get(index, 0) + 1
        image, label = self.base[index]
        if index in self.changing and self.reads[index] > 1:
            image = Image.eval(image, lambda value: 255 - value)
        return image, label


@pytest.mark.parametrize("changing, item", [({0, 3}, 0), ({4}, 4)])
def test_a_base_dataset_whose_items_change_between_reads_is_refused(tmp_path, pipe, changing, item):
    # Item 0 is read twice while scanning; any other item is checked when its class is read to learn or generate.
    with pytest.raises(ValueError, match=rf"base_dataset\[{item}\] changed between two reads.*move the transform"):
        make_wrapper(_Drifting(changing), tmp_path, pipeline=pipe).prepare()


def test_a_failed_cli_run_leaves_no_store_folder(tmp_path, monkeypatch):
    import diffii_datasets.prepare as prepare_module
    from diffii_datasets.cli import main

    def cannot_load(model, device=None):
        raise OSError(f"{model} cannot be loaded offline")

    monkeypatch.setattr(prepare_module, "load_generation_pipeline", cannot_load)
    write_cub(tmp_path / "data", CLASSES)
    cache = tmp_path / "cache"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["generate", "cub-5shot", "--root", str(tmp_path / "data"), "--cache-dir", str(cache),
                       "--model", "not-a-model", "--device", "cpu", "--quiet", *FAST_FLAGS])
    assert status == 1 and "not-a-model cannot be loaded offline" in err.getvalue()
    assert not [p for p in cache.rglob("store.json")] and not [p for p in cache.iterdir() if len(p.name) == 16]
