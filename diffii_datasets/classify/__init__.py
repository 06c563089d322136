"""The paper's classifier protocol: recipes, the trainer, evaluation and the accuracy report.

Joint training on :class:`~diffii_datasets.augmented.DiffIIAugmented` (each real item
replaced by a synthetic one with probability p = 0.5; class-balanced for the long
tail; p = 0 is the "Original" baseline), with the published recipe of each setting::

    from diffii_datasets import classify

    recipe = classify.recipe_for("cub-5shot", backbone="resnet50")
    train_set = classify.joint_training_set(store, recipe)        # or any dataset of (PIL image, label)
    result = classify.train(train_set, test_set, recipe, output_dir="runs/cub-5shot/seed-2020")
    result.figures()   # {"best_test": ..., "final_test": ...}: the authors' figure and the honest one
    print(classify.format_table(classify.build_report([result], setting="cub-5shot", backbone="resnet50")))

Mixup and CutMix (``recipe.replace(mixup=True, cutmix=True)``, Table 1's baselines) and soft
labels (a training set whose targets are probability vectors, e.g. :func:`diffmix_soft_label`)
train through the same loop.

Names load lazily: ``recipes``, ``paper`` and ``soft_labels`` import no torch.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.classify.recipes": ("BACKBONES", "OOD_SETTING", "Recipe", "recipe_for", "recipe_settings"),
    "diffii_datasets.classify.models": ("WeightsNotAvailable", "build_model"),
    "diffii_datasets.classify.transforms": ("eval_transform", "train_transform"),
    "diffii_datasets.classify.schedule": ("lr_factor", "warmup_cosine"),
    "diffii_datasets.classify.loss": ("smoothed_cross_entropy",),
    "diffii_datasets.classify.soft_labels": ("DIFFMIX_GAMMA", "DIFFMIX_SCRIPT_GAMMA", "diffmix_soft_label"),
    "diffii_datasets.classify.mixing": ("CutMixed", "mixup"),
    "diffii_datasets.classify.batchnorm": ("group_batch_norm",),
    "diffii_datasets.classify.data": ("joint_training_set",),
    "diffii_datasets.classify.trainer": ("train",),
    "diffii_datasets.classify.evaluate": ("Evaluation", "evaluate"),
    "diffii_datasets.classify.results": ("EpochRecord", "TrainResult", "summarize"),
    "diffii_datasets.classify.report": ("build_report", "format_table"),
    "diffii_datasets.classify.paper": ("PaperCell", "paper_cell", "published_accuracy"),
    "diffii_datasets.classify.waterbirds": ("Waterbirds",),
    "diffii_datasets.classify.protocol": ("describe_test_split", "evaluate_setting", "load_test_split",
                                          "train_setting"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
