"""Hugging Face datasets whose columns are not ``image`` / ``label``: image_column, label_column, and the errors."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from tests.helpers.augment import make_dataset, make_wrapper

COARSE = ["round", "angular"]


def cifar_like(base, image_column="img", label_column="fine_label", label_feature=None):
    """``base`` as CIFAR-100-style rows: ``{"img", "fine_label", "coarse_label"}`` with ClassLabel features."""
    images = [image for image, _ in base]
    labels = [label for _, label in base]
    features = datasets.Features({
        image_column: datasets.Image(),
        label_column: label_feature or datasets.ClassLabel(names=list(base.classes)),
        "coarse_label": datasets.ClassLabel(names=COARSE),
    })
    return datasets.Dataset.from_dict({image_column: images, label_column: labels,
                                       "coarse_label": [label % 2 for label in labels]}, features=features)


def test_other_column_names_read_the_same_images_and_classes(tiny_pipe, tmp_path):
    """{"img", "fine_label"} rows: the ClassLabel of label_column names the classes; the store is the tuple one's."""
    base = make_dataset()
    rows = cifar_like(base)
    wrapped = make_wrapper(rows, tmp_path, pipeline=tiny_pipe, image_column="img", label_column="fine_label",
                           mode="concat").prepare()
    assert wrapped.classes == list(base.classes) and wrapped.columns == ("img", "fine_label")
    assert wrapped.targets[:len(base)] == [label for _, label in base]
    plain = make_wrapper(base, tmp_path, pipeline=tiny_pipe, mode="concat").prepare()
    assert plain.report.generated == []  # same images, labels and classes: the same store, found, not regenerated
    assert plain.store.path == wrapped.store.path
    for index in (0, len(base) - 1, len(base)):  # real items and the first synthetic one
        (image, label), (expected, expected_label) = wrapped[index], plain[index]
        assert label == expected_label and np.array_equal(np.asarray(image), np.asarray(expected))
    coarse = make_wrapper(rows, tmp_path / "coarse", pipeline=tiny_pipe, image_column="img",
                          label_column="coarse_label")
    assert coarse.classes == COARSE
    # replace mode: the label column's values, read without preparing (no store yet)
    assert coarse.targets == [label % 2 for _, label in base] and not coarse.prepared


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    rows = cifar_like(make_dataset())
    with pytest.raises(ValueError, match=r"base_dataset has no column for image_column='image' and "
                                         r"label_column='label': its columns are 'img' \(Image\), 'fine_label' "
                                         r"\(ClassLabel of 3 classes\), 'coarse_label' \(ClassLabel of 2 classes\); "
                                         r"name the image and label columns with image_column= and label_column="):
        make_wrapper(rows, tmp_path)
    with pytest.raises(ValueError, match=r"no column for label_column='labels': its columns are 'img'"):
        make_wrapper(rows, tmp_path, image_column="img", label_column="labels")
    # Through a Subset, as the samplers return them.
    from torch.utils.data import Subset

    with pytest.raises(ValueError, match=r"no column for image_column='image': its columns are 'img'"):
        make_wrapper(Subset(rows, [0, 1]), tmp_path, label_column="fine_label")


def test_mapping_items_without_features_name_their_keys(tiny_pipe, tmp_path):
    """A plain dataset of dicts has no features: the first item read says which keys it has."""
    base = make_dataset()
    items = [{"picture": image, "target": label} for image, label in base]
    with pytest.raises(ValueError, match=r"base_dataset\[0\] has no key for image_column='image' and "
                                         r"label_column='label': its keys are 'picture', 'target'"):
        make_wrapper(items, tmp_path, pipeline=tiny_pipe, classes=base.classes).prepare()
    wrapped = make_wrapper(items, tmp_path, pipeline=tiny_pipe, classes=base.classes, image_column="picture",
                           label_column="target").prepare()
    assert wrapped.targets == [label for _, label in base]


def test_a_label_column_without_class_names_asks_for_classes(tmp_path):
    rows = cifar_like(make_dataset(), label_feature=datasets.Value("int64"))
    with pytest.raises(ValueError, match=r"no \.classes or ClassLabel column 'fine_label'\); pass classes="):
        make_wrapper(rows, tmp_path, image_column="img", label_column="fine_label")
    wrapped = make_wrapper(rows, tmp_path, image_column="img", label_column="fine_label", classes=["a", "b", "c"])
    assert wrapped.classes == ["a", "b", "c"]


@pytest.mark.parametrize(("keyword", "value", "error"),
                         [("image_column", 3, TypeError), ("label_column", " ", ValueError)])
def test_column_arguments_are_checked(tmp_path, keyword, value, error):
    with pytest.raises(error, match=f"^{keyword} must be a non-empty string, got"):
        make_wrapper(make_dataset(), tmp_path, **{keyword: value})
