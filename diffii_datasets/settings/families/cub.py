"""CUB-200-2011, few-shot: 200 bird species (the paper's Table 1, and the OOD experiment's training set)."""

from diffii_datasets.settings.base import Family, official_splits

FAMILY = Family(
    name="cub",
    kind="few-shot",
    metaclass="bird",
    num_classes=200,
    train_split="CUB-200-2011 train",
    test_split="CUB-200-2011 test",
    published=(5, 10),
    load_pools=official_splits("CUB200", "train", "test"),
    paper_column="CUB",
    authors_name="cub",
    suffix_list="bird",
    classifier_lr={"resnet50": 0.05, "vit_b_16": 1e-3},  # the authors' scripts/run.sh lines 192 and 221
    scripts_split_ratio=1.0,  # scripts/run.sh trains on ours_1.0_5.0 (the paper's text: 0.3 / 0.1)
)
