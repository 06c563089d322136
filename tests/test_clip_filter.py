"""Diff-Mix's CLIP filter side by side with a port of scripts/filter_syn_data.py (tests/reference), on the tiny CLIP.

Same batch size, same arithmetic: the scores are bit-identical and the kept set is the
same. Another batch size changes float reductions in the vision tower (about 1e-7).
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from diffii_datasets.methods.clip_filter import (
    DIFF_MIX_CAPTIONS,
    FILTER_PERCENTILE,
    clip_scores,
    filter_captions,
    keep_mask,
    score_threshold,
)
from diffii_datasets.testing import tiny_image_dataset
from diffii_datasets.testing.metrics import tiny_clip
from tests.reference.diff_mix_filter import FILTER_CAPTIONS_MAPPING, filter_scores, split


@pytest.fixture(scope="module")
def clip():
    return tiny_clip(seed=0)


@pytest.fixture(scope="module")
def images():
    dataset = tiny_image_dataset(num_classes=4, per_class=6, size=40)
    return [dataset.draw(i) for i in range(len(dataset))]


@pytest.mark.parametrize("dataset", sorted(FILTER_CAPTIONS_MAPPING))
def test_scores_and_kept_set_match_diff_mix(clip, images, dataset):
    model, processor = clip
    expected = filter_scores(model, processor, images, dataset, batch_size=7)
    scores = clip_scores(model, processor, images, DIFF_MIX_CAPTIONS[dataset], batch_size=7)
    assert scores.dtype == np.float64 and scores.shape == (len(images),)
    assert np.array_equal(scores, expected)
    kept, dropped, _ = split(expected)
    assert np.array_equal(keep_mask(scores), kept)
    assert np.array_equal(~keep_mask(scores), dropped)
    assert score_threshold(scores) == np.percentile(expected, 10)


def test_captions(clip):
    assert DIFF_MIX_CAPTIONS == {name: tuple(pair) for name, pair in FILTER_CAPTIONS_MAPPING.items()}
    assert filter_captions("bird") == DIFF_MIX_CAPTIONS["cub"]
    assert filter_captions("aircraft") == ("a photo with an aircraft on it", "a photo without an aircraft on it")
    assert filter_captions("car") == ("a photo with a car on it", "a photo without a car on it")
    with pytest.raises(ValueError, match="metaclass must be"):
        filter_captions(" ")


def test_scores_are_probabilities_of_the_first_caption(clip, images):
    model, processor = clip
    with_first = clip_scores(model, processor, images[:9], filter_captions("bird"), batch_size=4)
    swapped = clip_scores(model, processor, images[:9], filter_captions("bird")[::-1], batch_size=4)
    assert ((with_first > 0) & (with_first < 1)).all()
    np.testing.assert_allclose(with_first + swapped, 1.0, atol=1e-6)
    whole = clip_scores(model, processor, images[:9], filter_captions("bird"), batch_size=200)
    np.testing.assert_allclose(whole, with_first, atol=1e-6)
    assert clip_scores(model, processor, [], filter_captions("bird")).shape == (0,)
    as_tensors = [torch.from_numpy(np.asarray(image)).permute(2, 0, 1) for image in images[:4]]
    assert np.array_equal(clip_scores(model, processor, as_tensors, filter_captions("bird"), batch_size=4),
                          with_first[:4])


def test_keep_rule_is_the_dataset_wide_percentile():
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.05, 0.95])
    threshold = score_threshold(scores)
    # numpy's linear interpolation: position 0.1 * (11 - 1) = 1 -> the second smallest score exactly
    assert threshold == pytest.approx(0.1) and FILTER_PERCENTILE == 10.0
    assert keep_mask(scores).tolist() == (scores >= 0.1).tolist()  # a score equal to the threshold is kept
    between = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # position 0.5 -> halfway between 0 and 1
    assert score_threshold(between) == pytest.approx(0.5)
    assert keep_mask(between).tolist() == [False, True, True, True, True, True]
    assert keep_mask(between, percentile=0).all()
    assert keep_mask([0.3, 0.3, 0.3]).all()
    assert keep_mask(list(between), 50).tolist() == [False, False, False, True, True, True]


@pytest.mark.parametrize("call, error, match", [
    (lambda m, p, i: clip_scores(m, p, i, ["only one"]), ValueError, "captions must be two captions"),
    (lambda m, p, i: clip_scores(m, p, i, "a photo"), TypeError, "captions must be"),
    (lambda m, p, i: clip_scores(m, p, i, ["a", "b"], batch_size=0), ValueError, "batch_size must be"),
    (lambda m, p, i: clip_scores(m, p, "x.png", ["a", "b"]), TypeError, "images must be a sequence"),
    (lambda m, p, i: clip_scores(m, p, [object()], ["a", "b"]), TypeError, r"images\[0\]"),
    (lambda m, p, i: keep_mask([]), ValueError, "scores must be a non-empty"),
    (lambda m, p, i: keep_mask([0.2, float("nan")]), ValueError, "scores must be"),
    (lambda m, p, i: keep_mask([[0.2, 0.3]]), ValueError, "1-D"),
    (lambda m, p, i: keep_mask(["high"]), TypeError, "scores must be"),
    (lambda m, p, i: score_threshold([0.2], percentile=101), ValueError, "percentile must be"),
])
def test_arguments_are_checked_by_name(clip, images, call, error, match):
    with pytest.raises(error, match=match):
        call(*clip, images[:2])


def test_module_loads_no_heavy_library():
    code = ("import sys; import diffii_datasets.methods.clip_filter as f; f.filter_captions('bird'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'PIL', 'transformers'}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
