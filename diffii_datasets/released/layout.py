"""Where the authors' released artifacts are: the Hub repository, its three archives, the paths inside them.

Facts read from Diff-II's public code (github.com/scuwyh2000/Diff-II, commit 8c0fa1a); the
scripts run from the repository root after ``scripts/download.sh`` (lines 1-6) unzipped
``datasets.zip``, ``ft_ti_db.zip`` and ``suffix.zip`` of the dataset repository
``Luka-Wang/Diff-II`` there:

- concepts: ``ft_ti_db/<folder>/learned_embeds-steps-35000.bin`` and
  ``ft_ti_db/<folder>/pytorch_lora_weights.safetensors`` (``interpolation_le.py`` lines 163-168,
  ``get_inversion.py`` lines 84-89);
- suffixes: ``suffix/<folder>/suffix.txt`` (long tail) or ``suffix/<dataset>/<shot>.txt``
  (``interpolation_le.py`` lines 172-180);
- training lists: ``datasets/<dataset>/<shot>/train.txt`` (``train_classifier.py`` line 334) or
  ``datasets/imb_<dataset>_<f>/train.txt`` (``train_classifier_imb.py`` lines 83 and 414);
- test lists: ``datasets/<dataset>/test.txt`` (``train_classifier.py`` line 336) or
  ``datasets/<dataset>/test_imb.txt`` (``train_classifier_imb.py`` line 416).

Concepts learned with Diff-Mix's ``train_lora.py`` end in ``learned_embeds-steps-last.bin``
(line 1189, written after the last step) besides the step-numbered checkpoints; a copy holding
that name instead of the 35,000-step one is read too (:meth:`ReleasedPaths.candidates`).

``<dataset>`` is ``cub``, ``aircraft``, ``car``, ``pet`` or ``flower``; ``<shot>`` ``5shot`` or
``10shot``; ``<folder>`` is ``<dataset>/<shot>`` few-shot and ``imb_<dataset>_<f>`` long-tail,
with ``f = str(1 / IF)`` (``0.01``, ``0.05``, ``0.1``; ``scripts/run.sh``'s ``--imb_f``).
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffii_datasets.settings.base import FAMILIES, Setting, get_setting, list_settings

__all__ = ["ARCHIVES", "EMBEDDINGS_LAST", "PARTS", "REPO_ID", "WATERBIRDS_LISTS", "ReleasedPaths", "released_paths",
           "released_settings"]

REPO_ID = "Luka-Wang/Diff-II"
"""The Hugging Face *dataset* repository the authors' ``scripts/download.sh`` downloads from."""

ARCHIVES = ("datasets.zip", "ft_ti_db.zip", "suffix.zip")

PARTS = {
    "concepts": ("embeddings", "lora"),
    "suffixes": ("suffixes",),
    "subsets": ("train_list", "test_list"),
}
"""What a caller may ask for, and the files (roles) each part needs."""

ARCHIVE_OF_ROLE = {
    "embeddings": "ft_ti_db.zip",
    "lora": "ft_ti_db.zip",
    "suffixes": "suffix.zip",
    "train_list": "datasets.zip",
    "test_list": "datasets.zip",
}

EXTRACTED = {"datasets.zip": ("lists", lambda name: name.endswith(".txt"))}
"""``{archive: (selection name, which members to extract)}`` where not all: ``datasets.zip`` also holds the
subsets' images, but only its lists are read (the images come from the user's copy of the dataset)."""

WATERBIRDS_LISTS = tuple(f"datasets/waterbird/test{y}{place}.txt" for y in (0, 1) for place in (0, 1))
"""The authors' Waterbirds test lists in ``datasets.zip``, one per group ``2 * y + place`` (landbird/waterbird on
land/water): ``scripts/run.sh`` lines 346, 361, 377 and 393 train one OOD run per list."""

EMBEDDINGS_LAST = "learned_embeds-steps-last.bin"
"""Diff-Mix's name for the token embeddings after the last training step (``train_lora.py`` line 1189)."""

# Imbalance factor -> the authors' ``imb_f`` as ``str(args.imb_f)`` spells it in their paths.
_IMB_F = {100: "0.01", 20: "0.05", 10: "0.1"}


@dataclass(frozen=True)
class ReleasedPaths:
    """The files of one paper setting inside the archives, as Diff-II's scripts read them (role -> path)."""

    setting: str
    dataset: str  # the authors' dataset name: cub, aircraft, car, pet, flower
    folder: str  # cub/5shot, imb_cub_0.01, ...
    files: dict[str, str]

    def archive(self, role: str) -> str:
        return ARCHIVE_OF_ROLE[role]

    def candidates(self, role: str) -> tuple[str, ...]:
        """The paths ``role``'s file may have, preferred first: the scripts' path, then (embeddings only)
        Diff-Mix's final :data:`EMBEDDINGS_LAST` in the same folder."""
        path = self.files[role]
        if role == "embeddings":
            return path, f"{path.rsplit('/', 1)[0]}/{EMBEDDINGS_LAST}"
        return (path,)


def released_settings() -> list[str]:
    """The paper's settings whose artifacts the authors released: all of :func:`list_settings`."""
    return [setting.name for setting in list_settings()]


def released_paths(setting: str | Setting) -> ReleasedPaths:
    """The relative paths of ``setting``'s released files; ``ValueError`` for a setting the authors did not release."""
    if not isinstance(setting, Setting):
        setting = get_setting(setting)
    dataset = FAMILIES[setting.family].authors_name
    kind = FAMILIES[setting.family].kind
    if setting.name not in released_settings():
        raise ValueError(f"the authors released artifacts for the paper's settings only "
                         f"({', '.join(released_settings())}); {setting.name!r} is not one of them")
    if kind == "few-shot":
        shot = f"{setting.shots}shot"
        folder = f"{dataset}/{shot}"
        suffixes = f"suffix/{dataset}/{shot}.txt"
        test_list = f"datasets/{dataset}/test.txt"
    else:
        folder = f"imb_{dataset}_{_IMB_F[int(setting.imbalance_factor)]}"
        suffixes = f"suffix/{folder}/suffix.txt"
        test_list = f"datasets/{dataset}/test_imb.txt"
    files = {
        "embeddings": f"ft_ti_db/{folder}/learned_embeds-steps-35000.bin",
        "lora": f"ft_ti_db/{folder}/pytorch_lora_weights.safetensors",
        "suffixes": suffixes,
        "train_list": f"datasets/{folder}/train.txt",
        "test_list": test_list,
    }
    return ReleasedPaths(setting.name, dataset, folder, files)
