"""few_shot / long_tail / split_per_class on synthetic labelled datasets and on fake CUB."""

import pickle
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.fakedata import CUB_CLASSES, write_cub
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder

import diffii_datasets
from diffii_datasets.image_datasets import (
    CUB200,
    LabeledSubset,
    few_shot,
    long_tail,
    long_tail_counts,
    split_per_class,
)


class KeyedDataset(Dataset):
    """Items ``(key, label)``; ``order_seed`` lists the same items in another order."""

    def __init__(self, counts, order_seed=None, with_keys=True):
        items = [(f"class{c:02d}/img{j:04d}.jpg", c) for c, n in enumerate(counts) for j in range(n)]
        if order_seed is not None:
            items = [items[i] for i in np.random.default_rng(order_seed).permutation(len(items))]
        self.classes = [f"class {c}" for c in range(len(counts))]
        self.targets = [label for _, label in items]
        self._keys = [key for key, _ in items]
        if with_keys:
            self.sample_keys = list(self._keys)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self._keys[index], self.targets[index]


def keys_of(subset):
    return [subset[i][0] for i in range(len(subset))]


def per_class(subset, num_classes):
    counts = Counter(subset.targets)
    return [counts[c] for c in range(num_classes)]


def round_half_up(x):
    return int(np.floor(x + 0.5))


@pytest.mark.parametrize("shots", [5, 10])
def test_few_shot_exact_counts(shots):
    dataset = KeyedDataset([30 + c for c in range(20)])
    subset = few_shot(dataset, shots, seed=0)
    assert per_class(subset, 20) == [shots] * 20
    assert [dataset.targets[i] for i in subset.indices] == subset.targets
    assert all(key.startswith(f"class{label:02d}/") for key, label in (subset[i] for i in range(len(subset))))


@pytest.mark.parametrize("imbalance_factor", [100, 20, 10])
def test_long_tail_exponential_counts_and_ratio(imbalance_factor):
    dataset = KeyedDataset([200] * 20)
    subset = long_tail(dataset, imbalance_factor, seed=0)
    counts = per_class(subset, 20)
    # Balanced dataset: rank = class index, n_i = round(200 * IF^(-i/19)), class 0 the head.
    assert counts == [round_half_up(200 * imbalance_factor ** (-i / 19)) for i in range(20)]
    assert counts[0] == 200 and counts[-1] == 200 // imbalance_factor
    assert counts == sorted(counts, reverse=True)
    assert max(counts) / min(counts) == imbalance_factor


def test_long_tail_ranks_classes_by_size_then_index():
    sizes = [50, 120, 80, 120, 10]
    counts = long_tail_counts(sizes, 10)
    # Ranking: class 1 (120), class 3 (120, later index), class 2, class 0, class 4.
    expected_by_rank = [round_half_up(120 * 10 ** (-r / 4)) for r in range(5)]
    assert [counts[c] for c in (1, 3, 2, 0, 4)] == expected_by_rank
    # Class 4 (rank 4) is asked round(120 / 10) = 12 but has 10; the achieved ratio is 120/10.
    with pytest.warns(UserWarning) as record:
        subset = long_tail(KeyedDataset(sizes), 10, seed=3)
    messages = [str(w.message) for w in record]
    assert any("1 classes have fewer images than asked" in m and "'class 4' (10 of 12)" in m for m in messages)
    assert any("120/10 = 12" in m for m in messages)
    assert per_class(subset, 5) == [min(n, s) for n, s in zip(counts, sizes)]


def test_diffmix_profile_reproduces_its_formula_and_ratio():
    # CUB's train split: 5,994 images, 194 classes of 30 and 6 of 29.
    sizes = [30] * 194 + [29] * 6
    counts = long_tail_counts(sizes, 10, profile="diffmix")
    assert max(counts) == 29 and min(counts) == 2  # METHOD-NOTES section 5: "f = 0.1 gives 29 vs 2"
    average = 5994 / 200
    ranked = sorted(range(200), key=lambda c: (-sizes[c], c))
    assert [counts[c] for c in ranked] == [max(int(average * 0.1 ** (r / 198)), 1) for r in range(200)]
    with pytest.warns(UserWarning, match="14.5"):
        subset = long_tail(KeyedDataset(sizes), 10, seed=0, profile="diffmix")
    assert per_class(subset, 200) == counts


def test_ratio_warning_when_head_class_is_smaller_than_the_factor():
    with pytest.warns(UserWarning, match="30/1"):
        subset = long_tail(KeyedDataset([30] * 20), 100, seed=0)
    assert per_class(subset, 20)[-1] == 1


def test_no_warning_when_the_profile_is_exact():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        long_tail(KeyedDataset([200] * 20), 20, seed=0)
        few_shot(KeyedDataset([10] * 20), 10, seed=0)


@pytest.mark.parametrize("draw", [lambda d, s: few_shot(d, 5, seed=s), lambda d, s: long_tail(d, 20, seed=s)])
def test_deterministic_across_runs_and_item_orders(draw):
    counts = [200] * 20
    reference = keys_of(draw(KeyedDataset(counts), 7))
    assert keys_of(draw(KeyedDataset(counts), 7)) == reference
    for order_seed in (1, 2):
        assert keys_of(draw(KeyedDataset(counts, order_seed=order_seed), 7)) == reference
    assert keys_of(draw(KeyedDataset(counts), 8)) != reference


def test_without_keys_the_draw_follows_item_order():
    subset = few_shot(KeyedDataset([20] * 3, with_keys=False), 4, seed=0)
    assert subset.sample_keys is None
    assert keys_of(subset) == keys_of(few_shot(KeyedDataset([20] * 3, with_keys=False), 4, seed=0))


def test_smaller_draws_nest_in_larger_ones():
    dataset = KeyedDataset([200] * 20)
    assert set(keys_of(few_shot(dataset, 5, seed=1))) < set(keys_of(few_shot(dataset, 10, seed=1)))
    assert set(keys_of(long_tail(dataset, 100, seed=1))) < set(keys_of(long_tail(dataset, 10, seed=1)))


def test_fewer_images_than_shots_keep_all_with_a_warning():
    with pytest.warns(UserWarning, match=r"2 classes .*'class 1' \(3 of 5\), 'class 3' \(0 of 5\)"):
        subset = few_shot(KeyedDataset([8, 3, 9, 0]), 5, seed=0)
    assert per_class(subset, 4) == [5, 3, 5, 0]
    assert subset.classes == ["class 0", "class 1", "class 2", "class 3"]


def test_subset_keeps_the_label_interface_and_wraps_again():
    dataset = KeyedDataset([60] * 6)
    tail = long_tail(dataset, 10, seed=0)
    assert isinstance(tail, Subset) and isinstance(tail, LabeledSubset)
    assert tail.classes == dataset.classes and tail.class_to_idx == {n: i for i, n in enumerate(dataset.classes)}
    again = few_shot(tail, 6, seed=0)
    assert again.dataset is dataset, "nested subsets compose their indices onto the base dataset"
    assert set(keys_of(again)) <= set(keys_of(tail)) and per_class(again, 6) == [6] * 6
    plain = Subset(dataset, list(range(0, 360, 2)))
    from_plain = few_shot(plain, 3, seed=0)
    assert from_plain.dataset is dataset and set(from_plain.indices) <= set(plain.indices)
    assert pickle.loads(pickle.dumps(again)).targets == again.targets
    keys, labels = next(iter(DataLoader(again, batch_size=len(again))))
    assert labels.tolist() == again.targets and list(keys) == again.sample_keys


def test_split_per_class_is_disjoint_and_complete():
    dataset = KeyedDataset([9, 10, 1])
    first, rest = split_per_class(dataset, 0.5, seed=0)
    assert per_class(first, 3) == [4, 5, 0] and per_class(rest, 3) == [5, 5, 1]
    assert set(first.indices).isdisjoint(rest.indices)
    assert sorted(first.indices + rest.indices) == list(range(len(dataset)))


def test_few_shot_of_cub_train_is_disjoint_from_cub_test(fake_cub):
    train, test = CUB200(fake_cub.root, "train"), CUB200(fake_cub.root, "test")
    with pytest.warns(UserWarning, match=r"'Groove billed Ani' \(3 of 5\)"):
        subset = few_shot(train, 5, seed=0)
    assert set(subset.sample_keys).isdisjoint(test.sample_keys)
    assert set(subset.sample_keys) <= set(fake_cub.splits["train"])


def test_real_loader_is_order_independent(fake_cub, tmp_path):
    # The same files listed with other image ids give the same draw.
    write_cub(tmp_path, CUB_CLASSES, order_seed=5)
    listed_differently = CUB200(tmp_path, "train")
    original = CUB200(fake_cub.root, "train")
    assert listed_differently.sample_keys != original.sample_keys
    with pytest.warns(UserWarning, match="Groove billed Ani"):
        a = few_shot(original, 5, seed=3)
    with pytest.warns(UserWarning, match="Groove billed Ani"):
        b = few_shot(listed_differently, 5, seed=3)
    assert a.sample_keys == b.sample_keys


def test_image_folder_keys_are_relative_paths():
    root = Path(diffii_datasets.__file__).parent / "data" / "sample"
    subset = few_shot(ImageFolder(root), 2, seed=0)
    assert all(key.count("/") == 1 and key.endswith(".png") for key in subset.sample_keys)
    assert per_class(subset, 3) == [2, 2, 2]


@pytest.mark.parametrize("shots, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError),
                                          ("5", TypeError)])
def test_bad_shots(shots, error):
    with pytest.raises(error, match="^shots must be a positive int"):
        few_shot(KeyedDataset([5, 5]), shots)


@pytest.mark.parametrize("imbalance_factor, error", [(0.5, ValueError), (0, ValueError), (float("nan"), ValueError),
                                                     (float("inf"), ValueError), ("10", TypeError),
                                                     (None, TypeError)])
def test_bad_imbalance_factor(imbalance_factor, error):
    with pytest.raises(error, match="^imbalance_factor must be a finite number >= 1"):
        long_tail(KeyedDataset([5, 5, 5]), imbalance_factor)


def test_bad_seed_profile_and_dataset():
    with pytest.raises(ValueError, match="seed"):
        few_shot(KeyedDataset([5, 5]), 2, seed=-1)
    with pytest.raises(ValueError, match="profile"):
        long_tail(KeyedDataset([5, 5, 5]), 10, profile="linear")
    with pytest.raises(ValueError, match="at least 3 classes"):
        long_tail(KeyedDataset([5, 5]), 10, profile="diffmix")
    with pytest.raises(ValueError, match="fraction"):
        split_per_class(KeyedDataset([5, 5]), 1.0)

    class Unnamed(Dataset):
        targets = [0, 1]

    with pytest.raises(TypeError, match="classes"):
        few_shot(Unnamed(), 1)
