"""What a long run shows while it works: its plan, one bar per stage advancing per image, and ETA lines.

With ``show`` on, lines are written to stderr between the bars (``tqdm.write``); with it
off there are no bars and the lines are logged at INFO instead. When stderr is not a
terminal (a log file, a pipe, a batch system's output) there are no bars either: no
carriage returns or cursor moves, only whole lines (the plan, the ETAs, a stage's progress
every :data:`LINE_EVERY_SECONDS` and its total at the end). A stage measures its own
speed over its own working time only (inversion and generation alternate class by class),
and after its first few steps announces when it will be done; once every stage still
running has been measured, so is the whole run.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from diffii_datasets.plan import format_duration

__all__ = ["ETA_AFTER_STEPS", "LINE_EVERY_SECONDS", "RunProgress", "StageProgress"]

logger = logging.getLogger(__name__)

ETA_AFTER_STEPS = 5
"""A stage announces its ETA after this many steps past its first (which pays the warm-up)."""
LINE_EVERY_SECONDS = 60.0
"""Without a terminal, a stage writes a line of its progress at most this often (and one when it ends)."""

_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {done}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _Bar(tqdm):
    """A bar advanced by fractions of an image (one UNet step of a batch) that shows whole images done."""

    @property
    def format_dict(self) -> dict[str, Any]:
        values = super().format_dict
        values["done"] = int(round(values["n"] or 0, 6))
        return values


class StageProgress:
    """One stage of a run: its bar (images, or none) and its speed, measured over its own working time."""

    def __init__(self, run: RunProgress, name: str, total: float, unit: str, bar: bool, position: int,
                 on_measured: Callable[[StageProgress], None] | None) -> None:
        self.run, self.name, self.unit, self.on_measured = run, name, unit, on_measured
        self.total, self.done = float(total), 0.0
        self.rate: float | None = None  # units per second of working time, once measured
        self._working = 0.0  # seconds spent in this stage so far
        self._last: float | None = None
        self._steps = 0
        self._first: tuple[float, float] | None = None  # (done, working seconds) after the first step
        self._short_unit = "img" if unit == "image" else unit
        self._bar = _Bar(total=total, unit=self._short_unit, desc=f"{run.prefix}{name}",
                         disable=not (bar and run.show), position=position, bar_format=_BAR_FORMAT,
                         dynamic_ncols=True) if bar and run.terminal else None
        self._lines = bar and run.show and not run.terminal  # whole lines instead of a bar
        self._what = ""  # what the stage works on now (a class name)
        self._line_at: float | None = None  # working seconds at the last progress line

    def resume(self) -> None:
        """The stage works again from now on (the time since its last step was spent elsewhere)."""
        self._last = time.perf_counter()
        if self._bar is not None:
            self._bar.unpause()

    def advance(self, amount: float) -> None:
        """``amount`` units done (a UNet step of ``b`` images out of ``s``: ``b / s`` images)."""
        now = time.perf_counter()
        if self._last is not None:
            self._working += now - self._last
        self._last = now
        self.done = round(self.done + amount, 9)  # b / s per step sums to b images, not b plus a rounding error
        self._steps += 1
        if self._bar is not None:
            self._bar.update(min(self.done, self.total) - self._bar.n)
            self._bar.n = min(self._bar.n, self.total)
        if self._lines and self._working - (self._line_at or 0.0) >= LINE_EVERY_SECONDS:
            self._write_line()
        if self._first is None:
            self._first = (self.done, self._working)
        elif self.rate is None and self._steps > ETA_AFTER_STEPS:
            work, seconds = self.done - self._first[0], self._working - self._first[1]
            if work > 0 and seconds > 0:
                self.rate = work / seconds
                self.run.measured(self)

    def advance_to(self, done: float) -> None:
        """``done`` units done in all (a resumed run's first step counts from where it resumed)."""
        self.advance(done - self.done)

    def skip(self, amount: float) -> None:
        """``amount`` units need not be done after all (another process did them, or they were kept)."""
        self.total -= amount
        if self._bar is not None:
            self._bar.total = max(self.total, 0)
            self._bar.refresh()

    def describe(self, text: str) -> None:
        """What the stage works on now, after its name on the bar (a class name), shown from its next step."""
        if self._bar is not None:
            self._bar.set_description_str(f"{self.run.prefix}{self.name}: {text}", refresh=False)
        self._what = text

    def remaining_seconds(self) -> float | None:
        """Working time still needed at the measured speed; None until measured."""
        return None if self.rate is None else max(self.total - self.done, 0) / self.rate

    def speed(self) -> str:
        """The measured speed as a person reads it: ``"2.50 images/s"`` or ``"19.90 s/image"``."""
        if self.rate is None:
            return "not measured yet"
        return f"{self.rate:.2f} {self.unit}s/s" if self.rate >= 1 else f"{1 / self.rate:.2f} s/{self.unit}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.unpause()  # its final time and speed count its own working time only
            self._bar.close()
        if self._lines and self.done and self._line_at != self._working:
            self._what = ""
            self._write_line()

    def _write_line(self) -> None:
        """The stage's progress as one line: ``generation: 12/24 img in 4 s (2.73 img/s)``."""
        self._line_at = self._working
        what = f"{self._what}: " if self._what else ""
        rate = self.done / self._working if self._working > 0 else 0.0
        speed = f"{rate:.2f} {self._short_unit}/s" if rate >= 1 or not rate else f"{1 / rate:.2f} s/{self._short_unit}"
        self.run.announce(f"{self.name}: {what}{int(round(self.done, 6)):,}/{int(round(self.total, 6)):,} "
                          f"{self._short_unit} in {format_duration(self._working)} ({speed})")


class RunProgress:
    """The stages of one process's run, the lines it announces, and the whole run's ETA."""

    def __init__(self, show: bool, *, prefix: str = "", first_position: int = 0, terminal: bool | None = None
                 ) -> None:
        self.show, self.prefix = show, prefix
        self.terminal = _stderr_is_terminal() if terminal is None else terminal  # False: lines, no bars
        self._position = first_position
        self._stages: list[StageProgress] = []
        self._run_eta_said = False

    def announce(self, line: str) -> None:
        """A line for the user: beside the bars when shown, else in the log (INFO)."""
        if self.show:
            tqdm.write(f"{self.prefix}{line}", file=sys.stderr)
        else:
            logger.info("%s%s", self.prefix, line)

    def stage(self, name: str, total: float, unit: str, *, bar: bool = True,
              on_measured: Callable[[StageProgress], None] | None = None) -> StageProgress:
        """A stage of ``total`` units (``"image"`` or ``"step"``); ``on_measured(stage)`` once its speed is known."""
        stage = StageProgress(self, name, total, unit, bar, self._position, on_measured)
        self._position += bar
        self._stages.append(stage)
        return stage

    def measured(self, stage: StageProgress) -> None:
        """``stage`` knows its speed: say when it will be done, and when the run will be, once that is known."""
        left = max(stage.total - stage.done, 0)
        self.announce(f"ETA {stage.name}: {format_duration(stage.remaining_seconds() or 0)} "
                      f"({left:,.0f} more {stage.unit}s at {stage.speed()})")
        if stage.on_measured is not None:
            stage.on_measured(stage)
        running = [s for s in self._stages if s.total - s.done > 1e-6]
        if len(running) > 1 and not self._run_eta_said and all(s.rate is not None for s in running):
            self._run_eta_said = True
            total = sum(s.remaining_seconds() or 0 for s in running)
            self.announce(f"ETA all stages: {format_duration(total)}")

    def close(self) -> None:
        for stage in self._stages:
            stage.close()


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())
