"""The provenance summary counts what the records say; the flag rules flag what they promise."""

import pytest

from diffii_datasets.quality.flags import FLAG_RULES, flag_classes
from diffii_datasets.quality.provenance import NO_SUFFIX, lambda_edges, summarize_provenance
from diffii_datasets.store import SyntheticRecord

RECORDS = [
    SyntheticRecord(0, 0, lam=0.0, suffix="in the snow"),
    SyntheticRecord(1, 0, lam=1.0, suffix="in the snow"),
    SyntheticRecord(2, 0, lam=2.0, suffix="on a branch"),
    SyntheticRecord(3, 0, lam=4.0, suffix=""),
    SyntheticRecord(4, 0, lam=None, suffix="in the snow"),
]


def test_provenance_summary():
    edges = lambda_edges(RECORDS, bins=4)
    assert edges == [0.0, 1.0, 2.0, 3.0, 4.0]
    summary = summarize_provenance(RECORDS, edges)
    assert summary["count"] == 5
    assert summary["noise_started"] == 1 and summary["noise_started_share"] == 0.2
    assert (summary["lam_min"], summary["lam_mean"], summary["lam_max"]) == (0.0, 1.75, 4.0)
    assert summary["lam_counts"] == [1, 1, 1, 1]  # the top edge falls in the last bin
    assert list(summary["suffix_counts"].items()) == [("in the snow", 3), (NO_SUFFIX, 1), ("on a branch", 1)]


def test_provenance_of_noise_started_images_only():
    noise = SyntheticRecord(0, 0, lam=None, suffix="")
    summary = summarize_provenance([noise] * 2, lambda_edges([noise], bins=2))
    assert summary["noise_started_share"] == 1.0
    assert summary["lam_mean"] is None and summary["lam_counts"] == [0, 0]


def rows(**columns):
    count = len(next(iter(columns.values())))
    return [{key: values[i] for key, values in columns.items()} for i in range(count)]


def test_absolute_rules():
    found = flag_classes(rows(own_nearest_share=[0.4, 0.5, None], lpips_synthetic=[0.2, 0.09, 0.1],
                              lpips_real=[0.3, 0.2, None]))
    assert found == [["drifted"], ["collapsed"], []]


def test_relative_rules_flag_the_bad_side_only_with_enough_classes():
    scores = [30.0, 31.0, 29.0, 30.5, 29.5, 10.0, 50.0]
    found = flag_classes(rows(clip_score=scores, kid=[0.01, 0.012, 0.011, 0.013, 0.009, 0.01, 0.5]))
    assert found[5] == ["low-clip-score"]
    assert found[6] == ["far-from-real"]  # a high CLIP score is no flag; a KID above the rest is
    assert not any(found[:5])
    assert flag_classes(rows(clip_score=scores[:4] + [10.0])) != [[]] * 5
    assert flag_classes(rows(clip_score=scores[:3] + [10.0])) == [[]] * 4  # too few classes to compare
    assert flag_classes(rows(clip_score=[30.0] * 5 + [10.0])) == [[]] * 6  # MAD 0: no scale to compare with


def test_every_flag_has_a_rule():
    found = flag_classes(rows(own_nearest_share=[0.0] * 6, lpips_synthetic=[0.1, 0.11, 0.12, 0.1, 0.11, 0.0],
                              lpips_real=[0.5] * 6, clip_score=[30, 31, 29, 30, 31, 0],
                              kid=[0.1, 0.11, 0.12, 0.1, 0.11, 5], own_similarity=[0.9, 0.91, 0.92, 0.9, 0.91, 0]))
    assert sorted(set(sum(found, []))) == sorted(FLAG_RULES)
    with pytest.raises(KeyError):
        FLAG_RULES["no-such-flag"]
