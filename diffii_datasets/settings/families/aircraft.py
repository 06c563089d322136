"""FGVC-Aircraft (variant level), few-shot: 100 aircraft variants (the paper's Table 1)."""

from diffii_datasets.settings.base import Family, official_splits

FAMILY = Family(
    name="aircraft",
    kind="few-shot",
    metaclass="aircraft",
    num_classes=100,
    train_split="FGVC-Aircraft (variant) trainval",
    test_split="FGVC-Aircraft (variant) test",
    published=(5, 10),
    load_pools=official_splits("FGVCAircraft", "trainval", "test"),
    paper_column="Aircraft",
    authors_name="aircraft",
    suffix_list="aircraft",
    classifier_lr={"resnet50": 0.1, "vit_b_16": 1e-3},  # the authors' scripts/run.sh lines 133 and 161
    scripts_split_ratio=1.0,  # scripts/run.sh trains on ours_1.0_5.0 (the paper's text: 0.3 / 0.1)
)
