"""Stanford Cars, few-shot: 196 car models (the paper's Table 1, printed as "Car")."""

from diffii_datasets.settings.base import Family, official_splits

FAMILY = Family(
    name="cars",
    kind="few-shot",
    metaclass="car",
    num_classes=196,
    train_split="Stanford Cars train",
    test_split="Stanford Cars test",
    published=(5, 10),
    load_pools=official_splits("StanfordCars", "train", "test"),
    paper_column="Car",
    authors_name="car",
    suffix_list="car",
    classifier_lr={"resnet50": 0.1, "vit_b_16": 1e-3},  # the authors' scripts/run.sh lines 19 and 47
)
