"""What each rank runs in the torchrun tests (``tests/test_distributed.py``); run from the repository root.

usage:
  torchrun ... -m tests.helpers.distributed_worker checks OUT
      launch detection, the shared-filesystem check (shared and per-rank directories) and
      data-parallel concept learning; each rank writes OUT/rank-<r>.json and its weights.
  torchrun ... -m tests.helpers.distributed_worker cli --kill-rank R --kill-in-class C --after-committed 0,2 -- ARGS
      the command line (``diffii-datasets ARGS``); rank R SIGKILLs itself while writing
      class C, once the classes after --after-committed are committed by the others.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from diffii_datasets.diffusion.concepts import ConceptConfig, learn_concepts
from diffii_datasets.distributed import SharedFilesystemError, check_shared_filesystem, detect_launch, distributed_world
from diffii_datasets.store import ClassWriter
from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

LEARN_BATCHES = (2, 1)  # two ranks: one row each, then one rank without rows


def learning_inputs():
    data = tiny_image_dataset(num_classes=2, per_class=[2, 1], size=32, seed=0)
    images = [[image for image, label in data if label == c] for c in range(2)]
    return images, list(data.classes)


def learning_config(batch_size: int) -> ConceptConfig:
    return ConceptConfig(train_steps=3, batch_size=batch_size, checkpoint_steps=2, resolution=32, seed=0)


def checks(out: Path) -> None:
    launch = detect_launch()
    with distributed_world(device="cpu") as world:
        result = {"launch": [launch.rank, launch.world_size, launch.local_rank],
                  "world": [world.rank, world.size, str(world.device)]}
        check_shared_filesystem(world, out / "shared", grace_s=0.5)
        result["shared_markers_left"] = sorted(p.name for p in (out / "shared").iterdir())
        try:
            check_shared_filesystem(world, out / f"private-{world.rank}", grace_s=0.5)
            result["private_error"] = None
        except SharedFilesystemError as error:
            result["private_error"] = str(error)
        images, names = learning_inputs()
        for batch in LEARN_BATCHES:
            losses = []
            work_dir = out / f"work-{batch}"
            concepts = learn_concepts(tiny_pipeline(seed=0), images, names, "shape", learning_config(batch),
                                      work_dir=work_dir, progress=False, world=world,
                                      callback=lambda step, loss: losses.append(loss))
            again = learn_concepts(tiny_pipeline(seed=0), images, names, "shape", learning_config(batch),
                                   work_dir=work_dir, progress=False, world=world)
            result[f"losses-{batch}"] = losses
            result[f"resumed_equal-{batch}"] = (torch.equal(again.embeddings, concepts.embeddings) and all(
                torch.equal(again.lora_state_dict[k], v) for k, v in concepts.lora_state_dict.items()))
            save_file({"embeddings": concepts.embeddings, **concepts.lora_state_dict},
                      out / f"rank-{world.rank}-batch-{batch}.safetensors")
    (out / f"rank-{launch.rank}.json").write_text(json.dumps(result))


def install_kill_hook(rank: int, class_index: int, after_committed: list[int]) -> None:
    """SIGKILL this process while it writes ``class_index``, once ``after_committed`` are all committed."""
    if int(os.environ["RANK"]) != rank:
        return
    original_add = ClassWriter.add

    def add_then_die(self, image, record):
        original_add(self, image, record)
        if self.class_index == class_index:
            deadline = time.monotonic() + 120
            while not all(self._store.is_committed(c) for c in after_committed) and time.monotonic() < deadline:
                time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)

    ClassWriter.add = add_then_die


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("checks").add_argument("out", type=Path)
    cli = sub.add_parser("cli")
    cli.add_argument("--kill-rank", type=int, required=True)
    cli.add_argument("--kill-in-class", type=int, required=True)
    cli.add_argument("--after-committed", default="")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.mode == "checks":
        checks(args.out)
        return
    after = [int(c) for c in args.after_committed.split(",") if c]
    install_kill_hook(args.kill_rank, args.kill_in_class, after)
    from diffii_datasets.cli import main as cli_main

    sys.exit(cli_main([a for a in args.args if a != "--"]))


if __name__ == "__main__":
    main()
