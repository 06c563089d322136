"""A rank that joins the launch's group, imports what the dataset loaders import, and leaves.

usage: torchrun ... -m tests.helpers.exit_worker OUT

Writes ``OUT/rank-<r>.json`` with the names of the threads this process still runs after
leaving :func:`~diffii_datasets.distributed.distributed_world`: the gloo threads must be gone
by then, or they can abort the interpreter at exit. Nothing heavy is imported before the
group exists, as in the command line, which imports its libraries lazily.
"""

import json
import os
import sys
from pathlib import Path

from diffii_datasets.distributed import distributed_world


def thread_names() -> list[str]:
    return sorted(Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task"))


def main() -> None:
    out = Path(sys.argv[1])
    with distributed_world(device="cpu") as world:
        import torchvision  # noqa: F401  (the dataset loaders import it once the group is live)

        world.all_gather(world.rank)
        rank, inside = world.rank, thread_names()
    (out / f"rank-{rank}.json").write_text(json.dumps({"inside": inside, "after": thread_names()}))


if __name__ == "__main__":
    main()
