"""Several processes filling one store: the ``torchrun`` / ``accelerate launch`` launch, the ranks, the sharding.

Both launchers start one process per GPU and export ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT``); :func:`distributed_world`
reads them, joins the ``torch.distributed`` process group (NCCL on CUDA, gloo on
CPU) and yields a :class:`World`, the handful of collectives that
:func:`diffii_datasets.synthesis.synthesize` and concept learning need. Without a launch it yields a
one-process world and nothing is initialised, so the same code runs everywhere.

Classes are dealt out by :func:`shard_classes` (balanced by their number of
synthetic images); every rank commits its classes to the one shared store, so the
store must be on a filesystem all ranks see, which :func:`check_shared_filesystem`
verifies before any work starts.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = [
    "CONTROL_TIMEOUT",
    "Launch",
    "SharedFilesystemError",
    "World",
    "check_shared_filesystem",
    "detect_launch",
    "distributed_world",
    "shard_classes",
]

CONTROL_TIMEOUT = timedelta(hours=12)
"""How long a rank may wait for the others at a barrier: a rank that finished its classes
waits there for the slowest one, which on real hardware can take hours."""

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class SharedFilesystemError(RuntimeError):
    """Raised when the ranks of a launch do not see the same store directory."""


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a multi-process launch."""

    rank: int
    world_size: int
    local_rank: int


def detect_launch(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch described by ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, or ``None`` for a plain process.

    ``torchrun`` and ``accelerate launch`` both set the three variables; a partial or
    inconsistent set is an error rather than a silent single-process run.
    """
    env = os.environ if environ is None else environ
    present = [name for name in LAUNCH_VARIABLES if name in env]
    if not present:
        return None
    missing = [name for name in LAUNCH_VARIABLES if name not in env]
    if missing:
        raise ValueError(f"environment variables {', '.join(LAUNCH_VARIABLES)} are set together by torchrun and "
                         f"accelerate launch; found {', '.join(present)} but not {', '.join(missing)}")
    values = {}
    for name in LAUNCH_VARIABLES:
        try:
            values[name] = int(env[name])
        except ValueError:
            raise ValueError(f"environment variable {name} must be an integer, got {env[name]!r}") from None
    rank, world_size, local_rank = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"environment variables RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank} are "
                         "inconsistent: expected WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0")
    return Launch(rank, world_size, local_rank)


class World:
    """The processes filling one store together, and the collectives synthesis and concept learning need.

    ``World()`` is this process alone: barriers do nothing and gathers return
    ``[value]``. :func:`distributed_world` builds the multi-process one.
    """

    def __init__(self, rank: int = 0, size: int = 1, *, local_rank: int = 0,
                 device: torch.device | None = None, group: Any = None) -> None:
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"rank must be in [0, size) with size >= 1, got rank={rank}, size={size}")
        self.rank = rank
        self.size = size
        self.local_rank = local_rank
        self.device = device if device is not None else default_device(local_rank)
        self._group = group

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that finalises the store and prints summaries."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier(group=self._group)

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), indexed by rank, on every rank."""
        if self.size == 1:
            return [value]
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, value, group=self._group)
        return gathered

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (what the others pass is ignored)."""
        if self.size == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place, and return it.

        Runs on the default process group, not the gloo control group, so a tensor on
        the GPU goes through NCCL (this carries the concept-learning gradients); the
        tensor must live on :attr:`device`.
        """
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, device={self.device})"


def default_device(local_rank: int = 0) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is available, else the CPU."""
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


@contextmanager
def distributed_world(device: str | torch.device | None = None,
                      timeout: timedelta = CONTROL_TIMEOUT) -> Iterator[World]:
    """Join the launch's process group for the duration of the block (or run alone without a launch).

    ``device`` defaults to ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU;
    ``"cuda"`` means this rank's GPU. The default group uses NCCL for CUDA and gloo
    for the CPU (it carries the concept-learning gradients); barriers and object
    gathers always go through a gloo group with ``timeout``, since ranks wait there
    for the slowest one. A process group that the caller already initialised is used
    and left alone.
    """
    launch = detect_launch()
    local_rank = launch.local_rank if launch is not None else 0
    device = _resolve_device(device, local_rank)
    if launch is None:
        yield World(device=device)
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        # Importing torch._dynamo while a group is live (torchvision and diffusers import it)
        # keeps the group's gloo threads running past destroy_process_group (torch 2.14); one
        # of them may then release a finished collective during interpreter shutdown and abort
        # the process (SIGABRT, "terminate called without an active exception") after a run
        # that succeeded. Imported before the group exists, it leaves the group alone.
        import torch._dynamo  # noqa: F401
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timeout if backend == "gloo" else None)
        logger.info("rank %d of %d joined the %s process group on %s", launch.rank, launch.world_size, backend, device)
    if dist.get_world_size() != launch.world_size or dist.get_rank() != launch.rank:
        raise RuntimeError(f"the initialised process group has rank {dist.get_rank()} of {dist.get_world_size()}, "
                           f"but the environment says rank {launch.rank} of {launch.world_size}")
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    try:
        yield World(launch.rank, launch.world_size, local_rank=launch.local_rank, device=device, group=group)
    finally:
        if owned:
            dist.destroy_process_group()


def _resolve_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    if device is None:
        return default_device(local_rank)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


def shard_classes(work: Mapping[int, float], world_size: int) -> list[list[int]]:
    """Deal classes to ``world_size`` ranks so that each gets about the same work.

    ``work`` maps class index to its expected work (its number of synthetic images).
    Greedy longest-processing-time: classes in decreasing work (ties: lower index
    first) each go to the least-loaded rank (ties: the rank with fewer classes, then
    the lower rank, so classes without synthetic images are spread too). The result depends
    only on ``work`` and ``world_size``, so every rank computes the same shards; each
    shard is sorted, and ranks beyond the number of classes get none.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    negative = {c: w for c, w in work.items() if w < 0}
    if negative:
        raise ValueError(f"work must be non-negative per class, got {negative}")
    shards: list[list[int]] = [[] for _ in range(world_size)]
    loads = [0.0] * world_size
    for class_index in sorted(work, key=lambda c: (-work[c], c)):
        rank = min(range(world_size), key=lambda r: (loads[r], len(shards[r]), r))
        shards[rank].append(class_index)
        loads[rank] += work[class_index]
    return [sorted(shard) for shard in shards]


def check_shared_filesystem(world: World, directory: str | os.PathLike, grace_s: float = 60.0) -> None:
    """Make sure every rank sees the same ``directory``; raise :class:`SharedFilesystemError` otherwise.

    Each rank writes ``rank-<r>.marker`` (holding a token drawn for this check) and,
    after a barrier, looks for the others'. Missing markers are looked for again for
    up to ``grace_s`` seconds, since network filesystems may show a new file late.
    """
    if world.size == 1:
        return
    directory = Path(directory)
    token = world.broadcast(uuid.uuid4().hex)
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / f"rank-{world.rank}.marker"
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(f"{token}\n")
        handle.flush()
        os.fsync(handle.fileno())
    world.barrier()
    deadline = time.monotonic() + grace_s
    missing = _missing_markers(directory, token, world.size)
    while missing and time.monotonic() < deadline:
        time.sleep(min(1.0, grace_s))
        missing = _missing_markers(directory, token, world.size)
    reports = world.all_gather((socket.gethostname(), missing))  # every rank has looked: the markers can go
    marker.unlink(missing_ok=True)
    world.barrier()  # every marker is gone when any rank returns
    blind = [f"rank {rank} on {host} cannot see the markers of ranks {ranks}"
             for rank, (host, ranks) in enumerate(reports) if ranks]
    if not blind:
        logger.info("all %d ranks see %s", world.size, directory)
        return
    hosts = sorted({host for host, _ in reports})
    raise SharedFilesystemError(
        f"{directory} is not on a filesystem shared by all {world.size} ranks (hosts: {', '.join(hosts)}): "
        f"{'; '.join(blind)}. Put --cache-dir on a shared filesystem (NFS, Lustre, ...) that every node "
        "mounts at the same path.")


def _missing_markers(directory: Path, token: str, world_size: int) -> list[int]:
    missing = []
    for rank in range(world_size):
        try:
            seen = (directory / f"rank-{rank}.marker").read_text(encoding="utf-8").strip()
        except OSError:
            seen = None
        if seen != token:
            missing.append(rank)
    return missing
