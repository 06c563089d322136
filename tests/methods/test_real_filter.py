"""Real-Filter end to end: a filter of the Real-Guidance store, side by side with Diff-Mix's filter_syn_data.py.

Diff-Mix's port scores the same images (the Real-Guidance store's, class by class) with the same
tiny CLIP, captions and batch size: the scores are bit-identical, so the kept set is the same.
The Real-Guidance store has ten images (two per real image; few steps: its images are tested
elsewhere), so the 10th percentile drops one.
"""

import hashlib

import numpy as np
import pytest
from transformers import CLIPModel, CLIPProcessor

from diffii_datasets.methods import get_method
from diffii_datasets.methods.real_filter import store_scores
from diffii_datasets.testing.metrics import tiny_clip
from tests.methods.helpers import METACLASS, prepare, stored
from tests.reference.diff_mix_filter import filter_scores, split

SOURCE = {"expansion_rate": 2.0, "denoising_steps": 6}
"""The Real-Guidance knobs (besides the published ones) of the store filtered here."""
FILTER = {"filter_captions": "cub", "clip_batch_size": 4}
"""Diff-Mix's CUB captions (its port looks them up by dataset name) and batches of 4 (two and a half batches)."""


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-clip")
    model, processor = tiny_clip(seed=0)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def source(pipe, dataset, cache):
    return prepare("real-guidance", dataset, pipe, cache, **SOURCE)


@pytest.fixture(scope="module")
def filtered(source, pipe, dataset, cache, clip_dir):
    return prepare("real-filter", dataset, pipe, cache, clip_model=str(clip_dir), **SOURCE, **FILTER)


def test_filtering_makes_the_source_store_first(pipe, dataset, tmp_path, clip_dir):
    alone = prepare("real-filter", dataset, pipe, tmp_path, clip_model=str(clip_dir), expansion_rate=1.0,
                    denoising_steps=2, **FILTER)
    source = prepare("real-guidance", dataset, pipe, tmp_path, expansion_rate=1.0, denoising_steps=2)
    assert source.report.generated == [] and len(source.report.skipped) == len(dataset.classes)
    assert {record.sha256 for record, _ in stored(alone)} <= {record.sha256 for record, _ in stored(source)}


def test_the_filter_reads_the_real_guidance_store_and_keeps_its_files(filtered, source):
    assert filtered.store.path != source.store.path
    assert filtered.config.source() == source.config
    kept, every = stored(filtered), stored(source)
    by_seed = {record.seed: (record, pixels) for record, pixels in every}
    assert 0.9 * len(every) <= len(kept) < len(every)
    for record, pixels in kept:
        original, original_pixels = by_seed[record.seed]
        assert (record.source_indices, record.strength, record.label) == \
               (original.source_indices, original.strength, original.label)
        assert record.sha256 == original.sha256  # the very file, not encoded again
        assert np.array_equal(pixels, original_pixels) and record.score is not None
        path = filtered.store.image_path(record.label, record.file)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == original.sha256
    assert [r.index for r, _ in kept if r.label == 0] == list(range(sum(r.label == 0 for r, _ in kept)))
    assert all(target == record.label for (record, _), (_, target) in zip(kept, filtered.synthetic))


def test_kept_set_and_scores_match_diff_mix_s_filter(filtered, source, clip_dir):
    records = stored(source)
    images = [source.synthetic[i][0] for i in range(len(records))]
    model, processor = CLIPModel.from_pretrained(clip_dir), CLIPProcessor.from_pretrained(clip_dir)
    scores = filter_scores(model, processor, images, "cub", batch_size=FILTER["clip_batch_size"])
    kept_mask, _, _ = split(scores)
    expected = [(record.seed, score) for (record, _), score, keep in zip(records, scores, kept_mask) if keep]
    assert [(record.seed, record.score) for record, _ in stored(filtered)] == expected


def test_scores_are_computed_once_per_process(filtered, source, monkeypatch):
    from diffii_datasets.methods import real_filter

    monkeypatch.setattr(real_filter, "_load_clip", lambda model: pytest.fail("scored again"))
    scores, threshold = store_scores(source.store, filtered.config, METACLASS)
    assert sum(len(s) for s in scores) == len(stored(source))
    assert threshold == pytest.approx(np.percentile(np.concatenate(scores), 10))


def test_another_percentile_is_another_store_of_the_same_source(filtered, source, pipe, dataset, cache, clip_dir):
    stricter = prepare("real-filter", dataset, pipe, cache, clip_model=str(clip_dir), filter_percentile=50.0,
                       **SOURCE, **FILTER)
    assert stricter.store.path != filtered.store.path
    assert len(stored(stricter)) < len(stored(filtered))
    assert get_method("real-filter").source_config(stricter.config) == source.config
