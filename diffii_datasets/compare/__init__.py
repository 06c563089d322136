"""``compare``: augmentation methods side by side on the same data, each trained the same way, beside the paper.

:func:`compare` runs a comparison end to end (``diffii-datasets compare`` is this function):

1. each method's synthetic set, through :func:`~diffii_datasets.prepare.prepare`: a store already in the
   cache is reused, an interrupted one completed, and a store that several settings or backbones read (the
   Waterbirds runs read ``cub-5shot``'s) is made once;
2. one classifier run per setting, backbone, method and seed, through
   :func:`~diffii_datasets.classify.protocol.train_setting`: a finished run is read back, a killed one resumed;
3. the table, :func:`~diffii_datasets.classify.comparison.build_comparison` of every finished group of runs,
   written as ``comparison.json``, ``comparison.md`` and ``comparison.html`` after each group, so the table
   fills in as the runs finish. Running the same call again skips what is done.

Every run of a setting and backbone has the same recipe (the published one, with the caller's
``recipe_knobs``) but for what its method changes: ``original``, ``mixup`` and ``cutmix`` make no
images and train on the real images alone (replacement probability 0; Mixup or CutMix on); every
method that makes images trains with the same replacement probability (0.5, the paper's text, §4.1:
"for all methods") on its own store of the same real images. Each method's config is its defaults
with the setting's own knobs where it declares them (Diff-II's split ratio and suffix list,
:meth:`~diffii_datasets.settings.Setting.default_knobs`), then the caller's ``method_knobs``; the
seeds are the classifier's (each method makes one synthetic set per setting, with its config's seed).
:func:`plan_comparison` lists the stores and runs with what they still cost, running nothing. Layout::

    <output_dir>/comparison.json, comparison.md, comparison.html
    <output_dir>/runs/<setting>/<backbone>/<method>/   report.json, seed-<s>/ (one run each)

Importing this package loads no torch.
"""

from diffii_datasets._lazy import lazy_exports

_EXPORTS = {
    "diffii_datasets.compare.plan": (
        "CLASSIFIER_METHODS", "COMPARISON_FILES", "OWN_DATA_RECIPE", "RUNS_DIR", "TABLES", "ComparisonPlan", "OwnData",
        "PlannedRun", "PlannedStore", "known_methods", "method_config", "plan_comparison", "table_settings",
    ),
    "diffii_datasets.compare.run": ("compare", "run_comparison"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
