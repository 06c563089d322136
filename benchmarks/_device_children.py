"""The device-check sections that run in child processes: ``torch.compile`` of the UNet, and a two-rank launch.

A compile can take longer than any budget and cannot be interrupted in-process, and
a launch needs processes of its own; so the parent starts a child with a hard time
limit and reads what it wrote. Each child writes its result file as it goes (a child
stopped at its limit leaves what it had measured) and records its own error text.

    python benchmarks/_device_children.py compile --model-dir DIR --result FILE ...
    python -m torch.distributed.run --nproc_per_node=2 benchmarks/_device_children.py rank --result-dir DIR ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common
import torch
from _device_context import Context, Result, Skipped

HERE = Path(__file__).resolve().parent
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
RANK_PREFIX = re.compile(r"^\[(rank|default)\d+\]:\s?")  # how torchrun marks a rank's lines
CHILD_STARTUP_S = 20.0  # what a child needs at least to start, import and load before it can measure anything


# -- the parent's side -------------------------------------------------------------------------------------------------


RUNNING: set[int] = set()  # process groups of the children running now (see stop_children)


def run_child(command: list[str], timeout_s: float) -> tuple[int | None, str, float]:
    """``(exit status, or None when stopped at timeout_s; output; seconds)``; a stopped child's whole group is ended."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # offline as this process is (_common set it)
    for name in LAUNCH_VARIABLES:
        env.pop(name, None)
    start = time.perf_counter()
    # A session (so a process group) of its own (the launcher and its ranks): one signal ends all of them.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True)
    RUNNING.add(child.pid)
    try:
        output, _ = child.communicate(timeout=timeout_s)
        code: int | None = child.returncode
    except subprocess.TimeoutExpired:
        stop_children()
        output, _ = child.communicate()
        code = None
    finally:
        RUNNING.discard(child.pid)
    return code, output, time.perf_counter() - start


def stop_children() -> None:
    """End every child process group started by :func:`run_child` that still runs."""
    for group in list(RUNNING):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def last_error(output: str, limit: int = 600) -> str:
    """The last exception line of a child's output and the lines it continues on, or its last lines."""
    lines = [RANK_PREFIX.sub("", line).rstrip() for line in output.splitlines()]
    for index in range(len(lines) - 1, -1, -1):
        head = lines[index].split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and "ChildFailedError" not in head:
            following = []
            for line in lines[index + 1:index + 4]:
                if not line.strip() or line.startswith(("Traceback", "[", "E1", "W1")):
                    break
                following.append(line.strip())
            return " | ".join([lines[index], *following])[:limit]
    return " | ".join(line for line in lines[-5:] if line.strip())[:limit] or "no output"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compile_section(ctx: Context, result: Result, allowed_s: float) -> None:
    """Generation with the UNet compiled (``torch.compile``) against the same run uncompiled, in a child."""
    sizes = ctx.sizes
    target = ctx.scratch / "compile.json"
    command = [sys.executable, str(HERE / "_device_children.py"), "compile", "--model-dir", str(ctx.model_dir()),
               "--result", str(target), "--device", str(ctx.device), "--backend", sizes.compile_backend,
               "--images", str(sizes.compile_images), "--batch", str(sizes.compile_batch),
               "--steps", str(sizes.compile_steps)]
    code, output, seconds = run_child(command, allowed_s)
    measured = json.loads(target.read_text()) if target.is_file() else {}
    result.details.update(backend=sizes.compile_backend, images=sizes.compile_images, batch=sizes.compile_batch,
                          steps=sizes.compile_steps, child_s=seconds, log_tail=output[-3000:])
    result.figures.update(measured.pop("figures", {}))
    if code is None:
        raise Skipped(f"over budget: compiling and generating took more than the {allowed_s:.0f} s left")
    if code != 0:
        raise RuntimeError(measured.get("error") or last_error(output))
    result.figures["compiled"] = "ok"


def torchrun_section(ctx: Context, result: Result, allowed_s: float) -> None:
    """Two ranks on one device (both on cuda:0): ``DiffIIAugmented.prepare(world=...)`` under torchrun."""
    sizes = ctx.sizes
    deadline = time.perf_counter() + allowed_s
    succeeded, failures = [], []
    for backend, device in sizes.torchrun_attempts:
        name = f"{backend}_on_{device.replace(':', '')}"
        timeout = min(sizes.torchrun_timeout_s, deadline - time.perf_counter())
        if timeout < CHILD_STARTUP_S:
            result.figures[name] = "skipped: over budget"
            continue
        work = ctx.scratch / f"torchrun-{name}"
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                   "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(HERE / "_device_children.py"),
                   "rank", "--backend", backend, "--device", device, "--cache-dir", str(work / "cache"),
                   "--result-dir", str(work)]
        code, output, seconds = run_child(command, timeout)
        ranks = [json.loads(path.read_text()) for path in sorted(work.glob("rank-*.json"))]
        errors = [f"rank {rank['rank']}: {rank['error']}" for rank in ranks if "error" in rank]
        result.details[name] = {"ranks": ranks, "log_tail": output[-2000:]}
        if code is None:
            outcome = f"failed: no result within {timeout:.0f} s"
        elif code == 0 and len(ranks) == 2 and not errors:
            outcome = "ok"
            result.figures[f"{name}_s"] = seconds
            result.figures[f"{name}_synthetic_images"] = ranks[0]["synthetic_images"]
            succeeded.append(name)
        else:
            outcome = f"failed: {errors[0] if errors else last_error(output)}"[:600]
        result.figures[name] = outcome
        if outcome != "ok":
            failures.append(f"{name}: {outcome}")
    if not succeeded and not failures:
        raise Skipped("over budget: no launch could start in the time left")
    if not succeeded:
        raise RuntimeError("no two-rank launch succeeded; " + "; ".join(failures))


# -- the children ------------------------------------------------------------------------------------------------------


def compile_child(args: argparse.Namespace) -> None:
    """Generate one class uncompiled, compile the UNet, generate it again (compile time apart); write as it goes."""
    import bench_generation

    from diffii_datasets.diffusion import GenerationConfig, load_pipeline
    from diffii_datasets.diffusion.pipeline import latent_shape

    ctx = Context(dry_run=args.device == "cpu", scratch=Path(args.result).parent)
    figures: dict[str, Any] = {}

    def save(**extra: Any) -> None:
        Path(args.result).write_text(json.dumps({"figures": figures, **extra}))

    try:
        pipe = load_pipeline(args.model_dir, device=ctx.device, torch_dtype=ctx.dtype)
        pipe.set_progress_bar_config(disable=True)
        real = min(bench_generation.REAL_PER_CLASS, args.images)
        config = GenerationConfig(expansion_rate=args.images / real, split_ratio=0.3, denoising_steps=args.steps,
                                  guidance_scale=7.5, batch_size=args.batch, resolution=_common.resolution(pipe))
        inversions = torch.randn((real, *latent_shape(pipe)), generator=torch.Generator().manual_seed(0))
        job = bench_generation.Job(args.model_dir, ctx.device, ctx.dtype, config, [inversions])

        def generate(steps: int | None = None) -> list:
            return bench_generation.engine_class(pipe, job, 0, None, steps=steps)

        generate(steps=1)  # warm-up
        eager = ctx.measure(generate)
        figures.update(eager_s=eager.seconds, eager_peak_mib=eager.peak_mib)
        save()
        pipe.unet.compile(backend=args.backend)
        first = ctx.measure(lambda: generate(steps=1))  # the first call compiles
        figures["compile_s"] = first.seconds
        save()
        compiled = ctx.measure(generate)
        figures.update(compiled_s=compiled.seconds, compiled_peak_mib=compiled.peak_mib,
                       speedup_x=eager.seconds / compiled.seconds,
                       max_pixel_diff=bench_generation.max_pixel_difference(compiled.value, eager.value))
        save()
    except BaseException as error:
        save(error=f"{type(error).__name__}: {error}"[:2000])
        raise


def rank_child(args: argparse.Namespace) -> None:
    """One rank of a two-rank ``prepare(world=...)`` of the tiny pipeline; writes ``rank-<r>.json``."""
    import torch.distributed as dist

    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.distributed import distributed_world
    from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

    rank = int(os.environ["RANK"])
    target = Path(args.result_dir) / f"rank-{rank}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"rank": rank, "backend": args.backend, "device": args.device}

    def write(error: BaseException | None = None) -> None:
        if error is not None and "error" not in record:
            record["error"] = f"{type(error).__name__}: {error}"[:2000]
        target.write_text(json.dumps(record))

    try:
        if args.backend != "nccl":  # distributed_world joins NCCL itself on a GPU; any other backend, set up here
            dist.init_process_group(args.backend)
        with distributed_world(args.device) as world:
            try:
                record.update(world_size=world.size, world_device=str(world.device), joined=dist.get_backend())
                pipe = tiny_pipeline(0, device=world.device)
                dataset = tiny_image_dataset(num_classes=2, per_class=3, size=32, seed=0)
                config = DiffIIConfig(resolution=32, concept_resolution=32, concept_train_steps=2,
                                      concept_batch_size=2, inversion_steps=2, denoising_steps=2, expansion_rate=2.0,
                                      batch_size=4, suffixes="builtin", seed=0)
                start = time.perf_counter()
                augmented = DiffIIAugmented(dataset, "shape", config=config, pipeline=pipe,
                                            cache_dir=args.cache_dir, progress=False).prepare(world=world)
                record.update(seconds=time.perf_counter() - start, synthetic_images=len(augmented.synthetic),
                              generated_classes=augmented.report.generated, complete=augmented.report.complete)
            except BaseException as error:
                write(error)  # now: tearing down a process group after a failed collective can hang
                raise
        if dist.is_initialized():
            dist.destroy_process_group()
    except BaseException as error:
        write(error)
        raise
    write()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A child process of benchmarks/device_check.py")
    commands = parser.add_subparsers(dest="command", required=True)
    compile_parser = commands.add_parser("compile")
    compile_parser.add_argument("--model-dir", required=True)
    compile_parser.add_argument("--result", required=True)
    compile_parser.add_argument("--device", required=True)
    compile_parser.add_argument("--backend", required=True)
    for name in ("--images", "--batch", "--steps"):
        compile_parser.add_argument(name, type=int, required=True)
    rank_parser = commands.add_parser("rank")
    for name in ("--backend", "--device", "--cache-dir", "--result-dir"):
        rank_parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    _common.quiet_libraries()
    (compile_child if args.command == "compile" else rank_child)(args)


if __name__ == "__main__":
    main()
