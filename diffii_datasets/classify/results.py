"""What a training run measured, epoch by epoch, and the figures read from it, alone or over seeds.

Three figures per run, all on the test split:

- ``best_test``: the best test accuracy over all epochs, the figure the authors report
  (the epoch is chosen on the test set itself, so it is optimistic);
- ``final_test``: the accuracy after the last epoch, the honest one;
- ``test_at_best_val``: the test accuracy at the epoch of the best validation accuracy,
  when a validation set was given.

Per class, each figure reads the class accuracies at its epoch. Per group (Waterbirds),
``best_test`` is each group's own best epoch: the authors train one run per group and
report each run's best. Accuracies are percentages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from diffii_datasets.classify.recipes import Recipe

__all__ = ["FIGURES", "EpochRecord", "TrainResult", "mean_std", "summarize"]

FIGURES = ("best_test", "final_test", "test_at_best_val")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: training loss and accuracy (over all ranks), speed, and the evaluation after it."""

    epoch: int  # from 1
    train_loss: float
    train_accuracy: float
    images_per_second: float
    lr: float  # the last step's
    test_accuracy: float
    test_class_correct: list[int]
    test_group_correct: list[int] | None = None
    val_accuracy: float | None = None


@dataclass
class TrainResult:
    """One seed's run: its recipe, the test set's class (and group) sizes, and its history."""

    recipe: Recipe
    classes: list[str]
    class_totals: list[int]
    groups: list[str] | None = None
    group_totals: list[int] | None = None
    history: list[EpochRecord] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def has_validation(self) -> bool:
        return bool(self.history) and self.history[0].val_accuracy is not None

    def figure_epoch(self, figure: str) -> int | None:
        """Index into ``history`` of the epoch a figure reads (earliest on ties); None when it does not apply."""
        if not self.history:
            return None
        if figure == "best_test":
            return _argmax([record.test_accuracy for record in self.history])
        if figure == "final_test":
            return len(self.history) - 1
        if figure == "test_at_best_val":
            return _argmax([record.val_accuracy for record in self.history]) if self.has_validation else None
        raise ValueError(f"figure must be one of {', '.join(FIGURES)}, got {figure!r}")

    def figures(self) -> dict[str, float]:
        """``{figure: test accuracy}`` for the figures that apply."""
        return {name: self.history[index].test_accuracy for name in FIGURES
                if (index := self.figure_epoch(name)) is not None}

    def class_accuracy(self, figure: str) -> list[float | None]:
        """Per class accuracy at the figure's epoch (None for a class without test images)."""
        record = self.history[self.figure_epoch(figure)]
        return [_percent(hit, total) for hit, total in zip(record.test_class_correct, self.class_totals)]

    def group_accuracy(self, figure: str) -> list[float | None]:
        """Per group accuracy: each group's best epoch for ``best_test``, the figure's epoch otherwise."""
        if self.groups is None:
            raise ValueError("this run was not evaluated by groups")
        per_epoch = [[_percent(hit, total) for hit, total in zip(record.test_group_correct, self.group_totals)]
                     for record in self.history]
        if figure == "best_test":
            return [None if column[0] is None else max(column) for column in zip(*per_epoch)]
        return per_epoch[self.figure_epoch(figure)]

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "classes": list(self.classes), "class_totals": list(self.class_totals),
                "groups": self.groups, "group_totals": self.group_totals,
                "history": [asdict(record) for record in self.history], "figures": self.figures()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        return cls(Recipe.from_dict(data["recipe"]), list(data["classes"]), list(data["class_totals"]),
                   data.get("groups"), data.get("group_totals"),
                   [EpochRecord(**record) for record in data["history"]])


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def _percent(hit: int, total: int) -> float | None:
    return 100.0 * hit / total if total else None


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "values"}``: the sample standard deviation (n - 1), None for one value or none."""
    present = [value for value in values if value is not None]
    mean = sum(present) / len(present) if present else None
    std = (math.sqrt(sum((value - mean) ** 2 for value in present) / (len(present) - 1))
           if len(present) > 1 else None)
    return {"mean": mean, "std": std, "values": list(values)}


def summarize(results: Sequence[TrainResult], figures: Sequence[str] = FIGURES) -> dict[str, Any]:
    """Mean ± std over seeds of ``figures`` (those that apply), overall, per group and per class (JSON-able)."""
    if not results:
        raise ValueError("results must hold at least one run")
    first = results[0]
    if any(result.classes != first.classes or result.groups != first.groups for result in results):
        raise ValueError("results must be runs of the same classes (and groups) to be summarised together")
    unknown = [name for name in figures if name not in FIGURES]
    if unknown:
        raise ValueError(f"figures must be among {', '.join(FIGURES)}, got {unknown}")
    names = [name for name in figures if all(result.figure_epoch(name) is not None for result in results)]
    summary: dict[str, Any] = {
        "seeds": [result.seed for result in results],
        "epochs": [len(result.history) for result in results],
        "figures": {name: mean_std([result.figures()[name] for result in results]) for name in names},
        "classes": list(first.classes),
        "per_class": {name: _columns([result.class_accuracy(name) for result in results]) for name in names},
    }
    if first.groups is not None:
        summary["groups"] = list(first.groups)
        summary["per_group"] = {name: _columns([result.group_accuracy(name) for result in results])
                                for name in names}
    return summary


def _columns(rows: Sequence[Sequence[float | None]]) -> list[dict[str, Any]]:
    return [mean_std(column) for column in zip(*rows)]
