"""Oxford-IIIT Pet, few-shot: 37 cat and dog breeds (the paper's Table 1)."""

from diffii_datasets.settings.base import Family, official_splits

FAMILY = Family(
    name="pet",
    kind="few-shot",
    metaclass="animal",
    num_classes=37,
    train_split="Oxford-IIIT Pet trainval",
    test_split="Oxford-IIIT Pet test",
    published=(5, 10),
    load_pools=official_splits("OxfordIIITPet", "trainval", "test"),
    paper_column="Pet",
    authors_name="pet",
    suffix_list="animal",
    classifier_lr={"resnet50": 0.01, "vit_b_16": 1e-4},  # the authors' scripts/run.sh lines 76 and 104
)
