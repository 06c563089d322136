"""``Recipe``: every knob of classifier training, declared once, and the published recipe of each setting.

The values are the authors' (Diff-II ``scripts/run.sh`` at commit 8c0fa1a, and the
defaults of ``train_classifier.py`` / ``train_classifier_imb.py`` where ``run.sh``
passes nothing; see :func:`recipe_for`), except the few-shot replacement probability
p = 0.5, which is the paper's text (§4.1: "We fixed the replacement probability with 0.5
for all methods"): ``run.sh``'s few-shot lines pass ``--syn_p=0``, its "Original" runs.
Pure Python: the command line builds its flags from these declarations without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from diffii_datasets import _checks
from diffii_datasets._knobs import Knob, choice, knob, knobs_of, number, optional, positive_int, seed, validate

__all__ = ["BACKBONES", "OOD_SETTING", "PUBLISHED_WEIGHTS", "SAMPLE_SETTING", "TRANSFORMS", "Recipe", "recipe_for",
           "recipe_settings"]

TRANSFORMS = ("few-shot", "long-tail")
"""The two published image pipelines (see :mod:`diffii_datasets.classify.transforms`)."""

BACKBONES = ("resnet50", "vit_b_16")
"""The backbones of the paper's Table 1 (ResNet-50 at 224, ViT-B/16 at 384); long tail and OOD use ResNet-50."""

PUBLISHED_WEIGHTS = {"resnet50": "IMAGENET1K_V1", "vit_b_16": "IMAGENET1K_SWAG_E2E_V1"}
"""torchvision weights the authors load (``train_classifier.py`` lines 263 and 268)."""

OOD_SETTING = "waterbirds"
"""The OOD experiment (Table 3): trained as ``cub-5shot`` with ResNet-50, evaluated on the four Waterbirds groups."""

SAMPLE_SETTING = "sample"
"""Not the paper's: the bundled 3-class sample of ``diffii-datasets demo``, sized for a CPU in a few minutes."""


def _model(value: Any, name: str) -> str:
    return _checks.check_one_line(value, name, expected="a torchvision model name or timm:<name>")


def _weights(value: Any, name: str) -> str | None:
    """A weights name, or None (also spelled ``"none"``, as the command line writes it) for random weights."""
    if value is None:
        return None
    value = _checks.check_one_line(value, name, expected="a weights name (IMAGENET1K_V1, ...), 'pretrained' or None")
    return None if value.strip().lower() == "none" else value


def _bool(value: Any, name: str) -> bool:
    return _checks.check_bool(value, name)


@dataclass(frozen=True)
class Recipe:
    """How a classifier is trained; the defaults are the authors' few-shot CUB recipe with ResNet-50.

    Build the recipe of a published setting with :func:`recipe_for`, change knobs with
    :meth:`replace` (``recipe.replace(synthetic_probability=0)`` is the "Original" baseline).
    """

    model: str = knob("resnet50", "backbone: a torchvision model name (resnet50, vit_b_16, ...) or timm:<name>",
                      _model)
    weights: str | None = knob("IMAGENET1K_V1", "pretrained weights: a torchvision weights name, 'pretrained' for "
                                                "a timm model's default, or none for random initialisation",
                               _weights, parse=str)
    image_size: int = knob(224, "side of the square crop the network sees", positive_int)
    resize: int = knob(256, "side the images are resized to before cropping", positive_int)
    transforms: str = knob("few-shot", "image pipeline: few-shot (resize square, random crop with padding 8, flip) "
                                       "or long-tail (random resized crop, flip, colour jitter)",
                           choice(TRANSFORMS), choices=TRANSFORMS)
    epochs: int = knob(128, "training epochs", positive_int)
    batch_size: int = knob(256, "global batch size, shared out over the ranks", positive_int)
    lr: float = knob(0.05, "peak learning rate of SGD (reached after the warm-up)", number(above=0))
    momentum: float = knob(0.9, "SGD momentum", number(minimum=0, maximum=1))
    weight_decay: float = knob(5e-4, "SGD weight decay", number(minimum=0))
    label_smoothing: float = knob(0.1, "label smoothing as the authors write it: the true class gets 1 - s, "
                                       "every other class s / (C - 1); a soft target t (Mixup, CutMix, soft labels) "
                                       "becomes s / (C - 1) + (1 - s) t", number(minimum=0, maximum=1))
    warmup_fraction: float = knob(0.1, "fraction of the steps of linear warm-up before the cosine decay",
                                  number(minimum=0, maximum=1))
    synthetic_probability: float = knob(0.5, "chance that a training item is replaced by a synthetic image "
                                             "(0: the 'Original' baseline)", number(minimum=0, maximum=1))
    class_balanced: bool = knob(False, "draw the replacing class with probability proportional to 1 / (n_c + 1) "
                                       "(the long-tail recipe)", _bool)
    mixup: bool = knob(False, "Mixup as Diff-II's train_classifier.py --use_mixup runs it: each batch, with "
                              "probability mixup_probability, is blended with a random permutation of itself "
                              "(lambda ~ Beta(1, 1)), targets too", _bool)
    cutmix: bool = knob(False, "CutMix as Diff-II's train_classifier.py --use_cutmix runs it: each item, with "
                               "probability mixup_probability, gets a box of a random item pasted in (lambda ~ "
                               "Beta(1, 1)); its target mixes by the box's area. Mixup and CutMix may both be on",
                        _bool)
    mixup_probability: float = knob(0.3, "chance of CutMix per item and of Mixup per batch (the authors' "
                                         "--mixup_probability; Diff-Mix's train_hub.py uses 0.5)",
                                    number(minimum=0, maximum=1))
    bn_group_size: int | None = knob(None, "BatchNorm statistics over groups of this many images of a batch, as a "
                                           "per-GPU batch gives them (the authors' 8 GPUs: 32 few-shot, 16 long "
                                           "tail); default: the whole batch of each process",
                                     optional(positive_int), parse=int)
    soft_label_gamma: float | None = knob(None, "exponent of Diff-Mix's soft label for the images of a method that "
                                                "mixes two classes (default: 0.8, Diff-Mix's published runs; its "
                                                "train_hub.py default is 1.0)",
                                          optional(number(minimum=0)), parse=float)
    amp: bool = knob(False, "mixed precision on CUDA (bfloat16 autocast, float16 with loss scaling where bfloat16 "
                            "is missing): faster, not the published float32; no effect on the CPU", _bool)
    seed: int = knob(2020, "seed of initialisation, shuffling, augmentation and replacement draws "
                           "(the authors: 2020)", seed)

    def __post_init__(self) -> None:
        validate(self)

    @staticmethod
    def knobs() -> list[Knob]:
        return knobs_of(Recipe)

    def replace(self, **knobs: Any) -> Recipe:
        unknown = sorted(set(knobs) - {item.name for item in self.knobs()})
        if unknown:
            raise TypeError(f"Recipe has no knob {', '.join(map(repr, unknown))}; knobs: "
                            f"{', '.join(item.name for item in self.knobs())}")
        return dataclasses.replace(self, **knobs)

    def to_dict(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in self.knobs()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        if not isinstance(data, dict):
            _checks.fail(TypeError, "recipe", "a dict of knobs", data)
        return Recipe().replace(**data)


# Few-shot learning rates per family and backbone: run.sh lines 19/47 (car), 76/104 (pet), 133/161 (aircraft),
# 192/221 (cub).
_FEW_SHOT_LR = {
    "cub": {"resnet50": 0.05, "vit_b_16": 1e-3},
    "aircraft": {"resnet50": 0.1, "vit_b_16": 1e-3},
    "cars": {"resnet50": 0.1, "vit_b_16": 1e-3},
    "pet": {"resnet50": 0.01, "vit_b_16": 1e-4},
}
# Per backbone: run.sh lines 16-23 (ResNet-50: 128 epochs, batch 256, crop 224 from 256) and 44-51
# (ViT-B/16: 100 epochs, batch 32, crop 384 from 440); the weights are train_classifier.py's.
_FEW_SHOT_BACKBONE = {
    "resnet50": {"epochs": 128, "batch_size": 256, "image_size": 224, "resize": 256},
    "vit_b_16": {"epochs": 100, "batch_size": 32, "image_size": 384, "resize": 440},
}
# Long tail, ResNet-50: run.sh lines 249-259 (200 epochs, batch 128, crop 224 from 256, p 0.5); run.sh passes no
# --lr, so train_classifier_imb.py's default (line 185) applies: 0.005.
_LONG_TAIL = {"epochs": 200, "batch_size": 128, "image_size": 224, "resize": 256, "lr": 0.005}


# The bundled sample (64-pixel images, 4 per class): a random-weights ResNet-18 that a CPU trains in seconds per epoch.
_SAMPLE = {"model": "resnet18", "weights": None, "image_size": 64, "resize": 72, "epochs": 15, "batch_size": 12,
           "lr": 0.05, "synthetic_probability": 0.5}


def recipe_settings() -> list[str]:
    """The names :func:`recipe_for` knows: the paper's 14 settings, :data:`OOD_SETTING` and :data:`SAMPLE_SETTING`."""
    from diffii_datasets.settings.base import list_settings

    return [setting.name for setting in list_settings()] + [OOD_SETTING, SAMPLE_SETTING]


def recipe_for(setting: str, backbone: str = "resnet50") -> Recipe:
    """The published recipe of ``setting`` (``"cub-5shot"``, ``"flower-lt-if100"``, ``"waterbirds"``) and backbone.

    Few-shot: SGD (momentum 0.9, weight decay 5e-4), label smoothing 0.1, warm-up 10 %
    then cosine per step, with the per-family learning rate; the ResNet-50 schedule is 128
    epochs at batch 256, ViT-B/16's 100 epochs at batch 32; replacement p = 0.5 as the paper
    states (run.sh's few-shot lines pass 0: they are its "Original" runs).
    Long tail (ResNet-50 only): 200 epochs at batch 128, lr 0.005, the long-tail image
    pipeline, class-balanced replacement. ``waterbirds`` is the ``cub-5shot`` ResNet-50 recipe;
    ``sample`` (whatever the backbone) a small CPU recipe for the bundled sample, not the paper's.
    """
    from diffii_datasets.settings.base import FAMILIES, get_setting

    _checks.check_choice(backbone, "backbone", BACKBONES)
    if setting == SAMPLE_SETTING:
        return Recipe(**_SAMPLE)
    if setting == OOD_SETTING:
        if backbone != "resnet50":
            raise ValueError(f"the paper's OOD experiment (Table 3) uses resnet50, not {backbone}")
        return recipe_for("cub-5shot", "resnet50")
    try:
        family = FAMILIES[get_setting(setting).family]
    except ValueError:
        raise ValueError(f"setting must be one of {', '.join(recipe_settings())}; got {setting!r}") from None
    # p = 0.5: the paper's text (§4.1, §4.2); run.sh passes it on its long-tail and OOD lines, 0 on the few-shot ones.
    common = {"model": backbone, "weights": PUBLISHED_WEIGHTS[backbone], "synthetic_probability": 0.5}
    if family.kind == "long-tail":
        if backbone != "resnet50":
            raise ValueError(f"the paper trains its long-tail settings with resnet50 only (Table 2), not {backbone}")
        return Recipe(**common, **_LONG_TAIL, transforms="long-tail", class_balanced=True)
    return Recipe(**common, **_FEW_SHOT_BACKBONE[backbone], lr=_FEW_SHOT_LR[family.name][backbone])
