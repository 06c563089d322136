"""Issue 26, items 11 and 15: reads. A flipped byte in a stored image is an error naming the file, never other
pixels served quietly (from a store, from a prepared dataset, in DataLoader workers); every read error names the
file or the base item; each file's checksum is checked once per process; an extreme image is scanned, inverted and
served, with a warning naming it, or refused naming it, and never hangs."""

import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms.functional import pil_to_tensor

from diffii_datasets import DiffIIAugmented
from diffii_datasets.store import StoreDamageError, SyntheticStore
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import FAST_CONFIG, make_dataset, make_wrapper
from tests.helpers.damage import copy_cache


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def jpeg_cache(tmp_path_factory, pipe):
    """A prepared cache whose store keeps JPEG images (the format where a flipped byte still decodes)."""
    cache = tmp_path_factory.mktemp("jpeg")
    wrapper = make_wrapper(make_dataset(), cache, config=FAST_CONFIG.replace(image_format="jpeg"), pipeline=pipe)
    return cache, wrapper.prepare().store.path


@pytest.fixture
def jpeg_copy(tmp_path, jpeg_cache):
    cache, store = jpeg_cache
    copy = copy_cache(cache, tmp_path / "cache")
    return copy, copy / store.name


def _flip_keeping_it_decodable(path: Path) -> None:
    """Flip one byte of the image data of a JPEG so that it still decodes, to other pixels."""
    data = path.read_bytes()
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    start = data.index(b"\xff\xda") + 20  # inside the entropy-coded scan
    for offset in range(start, len(data) - 2):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        try:
            pixels = np.asarray(Image.open(io.BytesIO(bytes(damaged))).convert("RGB"))
        except OSError:
            continue
        if not np.array_equal(pixels, original):
            path.write_bytes(bytes(damaged))
            return
    raise AssertionError(f"no byte of {path} flips to other pixels that still decode")


def _synthetic_index(dataset, class_index, index):
    return [i for i, label in enumerate(dataset.synthetic.targets) if label == class_index][index]


def test_a_flipped_byte_in_a_stored_jpeg_is_an_error_naming_the_file_never_other_pixels(jpeg_copy, pipe):
    cache, store = jpeg_copy
    prepared = make_wrapper(make_dataset(), cache, config=FAST_CONFIG.replace(image_format="jpeg"),
                            pipeline=pipe).prepare()  # a training script's dataset, prepared before the damage
    served = DiffIIAugmented.from_store(store, mode="concat")
    image = store / "classes/00001/images/00002.jpg"
    _flip_keeping_it_decodable(image)
    for dataset in (served, prepared):
        with pytest.raises(StoreDamageError, match="images/00002.jpg: checksum mismatch; prepare") as caught:
            dataset.synthetic[_synthetic_index(dataset, 1, 2)]
        assert caught.value.path == image
    loader = DataLoader(pickle.loads(pickle.dumps(served)), batch_size=4, num_workers=2, collate_fn=list)
    with pytest.raises(Exception, match="StoreDamageError") as caught:
        list(loader)
    assert f"{image}: checksum mismatch" in str(caught.value)
    assert served.synthetic[_synthetic_index(served, 1, 1)][0].size == (32, 32)  # the other files still serve


def test_a_truncated_image_is_an_error_naming_the_file(jpeg_copy):
    _, store = jpeg_copy
    image = store / "classes/00000/images/00001.jpg"
    image.write_bytes(image.read_bytes()[:-100])
    served = DiffIIAugmented.from_store(store, mode="concat")
    with pytest.raises(StoreDamageError, match="images/00001.jpg: checksum mismatch") as caught:
        served.synthetic[1]
    assert caught.value.path == image
    real = store / "classes/00000/real/00000.png"
    real.write_bytes(real.read_bytes()[:-10])
    with pytest.raises(StoreDamageError, match="real/00000.png: checksum mismatch") as caught:
        served[0]
    assert caught.value.path == real


def test_each_file_is_checked_once_per_process(jpeg_copy, monkeypatch):
    import diffii_datasets.store.store as store_module

    _, store_path = jpeg_copy
    hashed = []
    real_sha256 = store_module.sha256_bytes
    monkeypatch.setattr(store_module, "sha256_bytes", lambda data: hashed.append(len(data)) or real_sha256(data))
    store = SyntheticStore.open(store_path)
    path = store.class_dir(0) / "images/00000.jpg"
    first = store.load_image(path)
    assert len(hashed) == 1
    for _ in range(3):
        assert store.load_image(path).tobytes() == first.tobytes()
    assert len(hashed) == 1
    copy = pickle.loads(pickle.dumps(store))  # a spawned DataLoader worker's copy checks what it reads itself
    copy.load_image(path)
    copy.load_image(path)
    assert len(hashed) == 2
    served = DiffIIAugmented.from_store(store, mode="concat", transform=pil_to_tensor)
    served.synthetic[0]
    path.write_bytes(path.read_bytes()[:-1])  # changed after this process checked it: a forked worker notices
    with pytest.raises(Exception, match="images/00000.jpg: checksum mismatch"):
        list(DataLoader(served.synthetic, batch_size=2, num_workers=1, multiprocessing_context="fork"))


def test_a_file_that_is_not_the_stores_is_refused_naming_it(jpeg_copy, tmp_path):
    _, store_path = jpeg_copy
    store = SyntheticStore.open(store_path)
    outside = tmp_path / "00000" / "images" / "00000.jpg"
    outside.parent.mkdir(parents=True)
    outside.write_bytes((store.class_dir(0) / "images/00000.jpg").read_bytes())
    with pytest.raises(StoreDamageError, match="not a file of a committed class of this store"):
        store.load_image(outside)
    with pytest.raises(StoreDamageError, match="images/00099.jpg: unreadable"):
        store.load_image(store.class_dir(0) / "images/00099.jpg")


# -- the base dataset ----------------------------------------------------------------------------------------------


def _folder(root: Path) -> ImageFolder:
    for index, (image, label) in enumerate(make_dataset()):
        (root / f"{label}").mkdir(parents=True, exist_ok=True)
        image.save(root / f"{label}" / f"{index:03d}.png")
    return ImageFolder(str(root))


def test_an_unreadable_base_item_names_its_index_and_file(tmp_path, pipe):
    folder = _folder(tmp_path / "folder")
    wrapper = make_wrapper(folder, tmp_path / "cache", pipeline=pipe, synthetic_probability=0.0).prepare()
    path = Path(folder.samples[4][0])
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(OSError, match=rf"base_dataset\[4\] \({path}\) cannot be read: image file is truncated"):
        wrapper[4]
    wrapper.transform = pil_to_tensor
    loader = DataLoader(wrapper, batch_size=2, num_workers=2)
    with pytest.raises(Exception, match=rf"base_dataset\[4\] \({path}\) cannot be read"):
        list(loader)
    # A new run notices the file changed and reads it again: the scan names the item too.
    with pytest.raises(OSError, match=rf"base_dataset\[4\] \({path}\) cannot be read: image file is truncated"):
        make_wrapper(ImageFolder(str(tmp_path / "folder")), tmp_path / "cache", pipeline=pipe).prepare()


# -- item 15: an extreme image -------------------------------------------------------------------------------------


class _WithExtreme(torch.utils.data.Dataset):
    """The tests' dataset with item ``EXTREME`` replaced by a 10000 x 10 image of its class."""

    EXTREME = 1

    def __init__(self):
        self.base = make_dataset()
        self.classes, self.targets = self.base.classes, self.base.targets

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        image, label = self.base[index]
        return (image.resize((10000, 10)) if index == self.EXTREME else image), label


def test_a_10000_by_10_image_is_refused_by_concept_learning_naming_it(tmp_path, pipe):
    with pytest.warns(UserWarning, match=r"base_dataset\[1\] is 10000 x 10 pixels, an aspect ratio of 1e\+03:1"):
        with pytest.raises(ValueError, match=r"base_dataset\[1\] is 10000 x 10 pixels.*max_aspect_ratio"):
            make_wrapper(_WithExtreme(), tmp_path / "cache", pipeline=pipe).prepare()


def test_a_10000_by_10_image_is_inverted_and_served_with_given_concepts(tmp_path, pipe):
    from diffii_datasets.diffusion.concepts import ConceptSet

    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    concepts = ConceptSet(make_dataset().classes, "shape", torch.zeros(3, 1, 32),
                          {f"{key}.lora_A.weight": torch.zeros(2, 32), f"{key}.lora_B.weight": torch.zeros(32, 2)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapper = make_wrapper(_WithExtreme(), tmp_path / "cache", pipeline=pipe, concepts=concepts,
                               mode="concat").prepare()
    named = [str(w.message) for w in caught if "base_dataset[1] is 10000 x 10 pixels" in str(w.message)]
    assert len(named) == 1 and "Crop it to its subject" in named[0]
    assert wrapper.report.complete and len(wrapper.synthetic) == 12
    assert wrapper[1][0].size == (10000, 10) and wrapper.synthetic[0][0].size == (32, 32)
    assert SyntheticStore.open(wrapper.store.path).problems() == []
