"""Train the tiny recipe in a separate process (the resume and data-parallel tests).

usage: python -m tests.classify.train_worker OUTPUT_DIR [--kill-at-evaluation K]

Writes ``OUTPUT_DIR/rank-<rank>.json``: this rank's rank, figures and test class totals (a file per
rank, because ranks printing to one shared stdout can interleave their lines). With
``--kill-at-evaluation K`` the process SIGKILLs itself when the K-th evaluation starts,
i.e. during epoch K, after the checkpoint of epoch K - 1 was written. Under ``torchrun``
it trains data-parallel over the launch's ranks (gloo on the CPU).
"""

import argparse
import json
import os
import signal
from pathlib import Path

import torch

from diffii_datasets.classify import train, trainer
from diffii_datasets.distributed import distributed_world
from diffii_datasets.testing import tiny_image_dataset
from tests.classify.fixtures import tiny_recipe

EPOCHS = 3


def datasets():
    return tiny_image_dataset(3, 8, 32, seed=0), tiny_image_dataset(3, 3, 32, seed=1)  # 9: unequal rank shares


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--kill-at-evaluation", type=int)
    args = parser.parse_args()
    # Float results depend on the intra-op thread count: match the parent test process.
    torch.set_num_threads(int(os.environ.get("DIFFII_TEST_THREADS", "1")))
    if args.kill_at_evaluation is not None:
        original, calls = trainer.evaluate, []

        def evaluate_or_die(*positional, **keywords):
            calls.append(1)
            if len(calls) == args.kill_at_evaluation:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*positional, **keywords)

        trainer.evaluate = evaluate_or_die
    train_set, test_set = datasets()
    with distributed_world(device="cpu") as world:
        result = train(train_set, test_set, tiny_recipe(epochs=EPOCHS), output_dir=args.output_dir, world=world,
                       workers=0, progress=False)
        summary = {"rank": world.rank, "figures": result.figures(), "class_totals": result.class_totals,
                   "epochs": len(result.history)}
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / f"rank-{world.rank}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
