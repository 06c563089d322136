"""CUB-LT: a long-tailed subset of CUB-200-2011's training split (the paper's Table 2)."""

from diffii_datasets.settings.base import Family, official_splits

FAMILY = Family(
    name="cub-lt",
    kind="long-tail",
    metaclass="bird",
    num_classes=200,
    train_split="CUB-200-2011 train",
    test_split="CUB-200-2011 test",
    published=(100, 20, 10),
    load_pools=official_splits("CUB200", "train", "test"),
    paper_column="CUB-LT",
    authors_name="cub",
    suffix_list="bird",
    card="cub-lt",
)
