"""One prepared command for a lent GPU: every CUDA path of the package measured at real size, in one call.

On ``sd_shaped_pipeline("sd15")`` in fp16 (SD-1.5's exact shapes, random weights:
nothing is downloaded) it measures, section by section: generation and inversion
against the authors' per-image procedure (``_baseline.py``) at a few batch sizes;
the UNet's share of ``prepare()``; a concept-learning step at the published recipe
(``ConceptConfig()``) without and with gradient checkpointing; an end-to-end
``DiffIIAugmented.prepare()`` of 2 classes x 3 images; each published classifier
recipe's training images/s (random weights and data); a two-rank torchrun on the
one GPU; and ``torch.compile`` of the UNet for generation. Every measurement
records its peak GPU memory (``torch.cuda.max_memory_allocated``, reset before it).

Each section is timed and runs inside a global budget (default 8 minutes, model
construction included): a section that would not fit is skipped and recorded as
such, one that fails records its error and the others still run, and a run that
reaches the budget is stopped there with what it has. ``OUT/device_check.json``
and ``OUT/device_check.md`` (a table) are rewritten after every section. The
script exits non-zero only when it crashes itself (2: no CUDA, or bad arguments).

    benchmarks/device_check.sh OUT                    # builds the environment, then runs this
    python benchmarks/device_check.py OUT             # a CUDA machine, under 8 minutes
    python benchmarks/device_check.py OUT --dry-run   # the CPU, tiny sizes: the same code in seconds
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import _common
import _device_children
import _device_sections
import torch
from _device_context import Context, Result, Skipped

from diffii_datasets._io import atomic_write, write_json

BUDGET_S = 480.0
JSON_FILE, TABLE_FILE = "device_check.json", "device_check.md"
NO_CUDA = ("device_check: CUDA is not available here (torch {torch}, CUDA build: {cuda}). This check measures the "
           "package's GPU paths on SD-1.5's shapes in fp16: run it on a CUDA machine "
           "(benchmarks/device_check.sh OUT), or add --dry-run to run the same code at tiny sizes on the CPU.")


@dataclass(frozen=True)
class Section:
    """One measurement: ``run(ctx, result, seconds allowed)`` fills ``result``; it may take up to ``budget_s``.

    ``least_s``: the time left under which it is not started (default: its whole budget);
    sections in child processes get ``min(budget_s, time left)`` as their hard limit.
    """

    name: str
    what: str
    run: Callable[[Context, Result, float], None]
    budget_s: float
    least_s: float | None = None

    @property
    def needs_s(self) -> float:
        return self.budget_s if self.least_s is None else self.least_s


SECTIONS = (
    Section("environment", "the machine and the library versions", _device_sections.environment, 10),
    Section("model", "build the pipeline (random weights) and save it for the baseline", _device_sections.model, 90),
    Section("generation", "generate_class at several batch sizes vs the authors' per-image procedure",
            _device_sections.generation, 100),
    Section("inversion", "batched ddim_invert vs per-image inversion", _device_sections.inversion, 60),
    Section("concept_step", "a concept-learning step at ConceptConfig() defaults, without and with gradient "
            "checkpointing", _device_sections.concept_step, 60),
    Section("unet_share", "share of a whole prepare() inside UNet forward calls", _device_sections.unet_share, 45),
    Section("prepare", "DiffIIAugmented(...).prepare() of 2 classes x 3 images end to end",
            _device_sections.prepare, 45),
    Section("classifier", "training images/s of the published classifier recipes", _device_sections.classifier, 75),
    Section("torchrun", "two ranks on one device: prepare(world=...) under torchrun",
            _device_children.torchrun_section, 190, least_s=60),
    Section("compile", "torch.compile of the UNet on/off for generation", _device_children.compile_section, 300,
            least_s=100),
)


class Report:
    """The run's record: every section's status, figures and timing; written as JSON and as a markdown table."""

    def __init__(self, out_dir: Path, sections: Sequence[Section], mode: str, budget_s: float) -> None:
        self.out_dir = out_dir
        self.lock = threading.RLock()  # stop_at_budget writes while holding it
        self.started = time.perf_counter()
        self.data: dict[str, Any] = {
            "mode": mode, "budget_s": budget_s, "machine": _common.machine(), "complete": False,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sections": [{"name": s.name, "what": s.what, "budget_s": s.budget_s, "status": "pending"}
                         for s in sections],
        }

    def entry(self, name: str) -> dict[str, Any]:
        return next(entry for entry in self.data["sections"] if entry["name"] == name)

    def update(self, name: str, **fields: Any) -> None:
        """Change a section's record (under the lock: the watchdog may be writing the report)."""
        with self.lock:
            self.entry(name).update(fields)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def write(self) -> None:
        with self.lock:
            self.data["elapsed_s"] = round(self.elapsed(), 1)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.out_dir / JSON_FILE, _jsonable(self.data))
            atomic_write(self.out_dir / TABLE_FILE, markdown(self.data).encode("utf-8"))

    def stop_at_budget(self) -> None:
        """The budget is spent: the running section is recorded as stopped, the pending ones as skipped."""
        with self.lock:
            for entry in self.data["sections"]:
                if entry["status"] == "running":
                    entry.update(status="error", error=f"stopped: the run reached its budget of "
                                                       f"{self.data['budget_s']:.0f} s during this section")
                elif entry["status"] == "pending":
                    entry.update(status="skipped", reason="over budget: the run reached its global budget")
        self.write()


def _jsonable(value: Any) -> Any:
    """``value`` as the package's JSON writer takes it: NaN, infinities and other types (numpy's) become text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def run_sections(sections: Sequence[Section], ctx: Context, report: Report, budget_s: float,
                 selected: set[str] | None = None) -> None:
    """Run each section that is selected and fits in what is left of ``budget_s``; record every outcome."""
    for section in sections:
        name, left = section.name, budget_s - report.elapsed()
        if selected is not None and name not in selected:
            report.update(name, status="skipped", reason="not selected (--sections)")
        elif left < section.needs_s:
            report.update(name, status="skipped", reason=f"over budget: needs {section.needs_s:.0f} s, "
                                                         f"{max(left, 0):.0f} s of the {budget_s:.0f} s budget left")
        else:
            report.update(name, status="running")
            report.write()
            print(f"[{report.elapsed():5.0f} s] {name}: {section.what} ...", flush=True)
            result, start = Result(), time.perf_counter()
            try:
                section.run(ctx, result, min(section.budget_s, left))
                outcome: dict[str, Any] = {"status": "ok"}
            except Skipped as stop:
                outcome = {"status": "skipped", "reason": str(stop)}
            except Exception as error:  # one failing section must not stop the others
                outcome = {"status": "error", "error": f"{type(error).__name__}: {error}"[:2000],
                           "traceback": traceback.format_exc()[-4000:]}
            report.update(name, **outcome, seconds=round(time.perf_counter() - start, 2), figures=result.figures,
                          details=result.details, notes=result.notes)
            ctx.release()
        entry = report.entry(name)
        print(f"[{report.elapsed():5.0f} s] {name}: {entry['status']}"
              + (f" ({entry.get('reason') or entry.get('error')})" if entry["status"] != "ok" else ""), flush=True)
        report.write()


def start_watchdog(report: Report, budget_s: float, leave: Callable[[int], Any] = os._exit) -> threading.Timer:
    """At the budget, record what runs as stopped, end the children, write the report and leave (status 0)."""
    def stop() -> None:
        try:
            _device_children.stop_children()
            report.stop_at_budget()
            print(f"device_check: stopped at the budget of {budget_s:.0f} s", file=sys.stderr, flush=True)
        finally:
            leave(0)

    timer = threading.Timer(max(budget_s - report.elapsed(), 0), stop)
    timer.daemon = True
    timer.start()
    return timer


# -- the table ---------------------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "/").replace("\n", " ")


def markdown(data: dict[str, Any]) -> str:
    """The report as markdown: a header, one row per figure (a skipped or failed section: its reason), the notes."""
    counts = {status: sum(entry["status"] == status for entry in data["sections"])
              for status in ("ok", "skipped", "error")}
    lines = ["# diffii-datasets device check", "",
             f"- mode: {data['mode']}", f"- machine: {data['machine']}", f"- started: {data['started']}",
             f"- budget: {data['budget_s']:.0f} s; elapsed: {data.get('elapsed_s', 0):.0f} s; sections: "
             + ", ".join(f"{count} {status}" for status, count in counts.items()), "",
             "| section | status | seconds | figure | value |", "| --- | --- | ---: | --- | ---: |"]
    for entry in data["sections"]:
        seconds = format_value(entry["seconds"]) if "seconds" in entry else ""
        first = f"| {entry['name']} | {entry['status']} | {seconds} |"
        problem = entry.get("reason") or entry.get("error")
        rows = [(name, format_value(value)) for name, value in entry.get("figures", {}).items()]
        if problem:
            rows.insert(0, ("reason" if entry["status"] == "skipped" else "error", format_value(problem)))
        if not rows:
            rows = [("", "")]
        for index, (name, value) in enumerate(rows):
            lines.append(f"{first if index == 0 else '| | | |'} {name} | {value} |")
    notes = [f"- {entry['name']}: {note}" for entry in data["sections"] for note in entry.get("notes", [])]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


# -- the command -------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="sections: " + ", ".join(s.name for s in SECTIONS))
    parser.add_argument("out_dir", type=Path, help=f"directory for {JSON_FILE} and {TABLE_FILE}")
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU at tiny sizes (tiny pipeline, 32 px, 1-2 steps, tiny classifiers): the same "
                             "code, figures that mean nothing; for the test suite")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help="global time budget in seconds, model construction included (default: %(default)s)")
    parser.add_argument("--sections", help="comma-separated sections to run (default: all); the others are "
                                           "recorded as not selected")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    if args.sections is not None:
        args.sections = {name.strip() for name in args.sections.split(",") if name.strip()}
        unknown = sorted(args.sections - {s.name for s in SECTIONS})
        if unknown:
            parser.error(f"--sections: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(s.name for s in SECTIONS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(NO_CUDA.format(torch=torch.__version__, cuda=torch.version.cuda or "none"), file=sys.stderr)
        return 2
    if args.dry_run:  # tiny work: a team of threads only waits on a shared CPU (children inherit the variable)
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    _common.quiet_libraries()
    mode = ("dry run: CPU, tiny pipeline (32 px), 1-2 steps, tiny classifiers; the figures mean nothing"
            if args.dry_run else "cuda: sd_shaped_pipeline('sd15') (SD-1.5's shapes, random weights), float16, 512 px")
    report = Report(args.out_dir, SECTIONS, mode, args.budget)
    report.write()
    watchdog = start_watchdog(report, args.budget)
    with tempfile.TemporaryDirectory(prefix="device-check-") as scratch:
        run_sections(SECTIONS, Context(args.dry_run, Path(scratch)), report, args.budget, args.sections)
    watchdog.cancel()
    report.data["complete"] = True
    report.write()
    print()
    print(markdown(report.data), end="")
    print(f"\nwritten: {args.out_dir / JSON_FILE}, {args.out_dir / TABLE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
