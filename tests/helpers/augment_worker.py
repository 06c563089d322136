"""Run DiffIIAugmented.prepare() in a separate process (used by the crash and concurrency tests).

usage: python -m tests.helpers.augment_worker CACHE_DIR [--kill-in-class C --kill-after N]

Prints one JSON line: the classes this process generated and those it skipped.
With --kill-in-class, the process SIGKILLs itself after writing N images of class C,
i.e. in the middle of a class, after the earlier classes were committed.
"""

import argparse
import json
import os
import signal

import torch

from diffii_datasets.store import ClassWriter
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import make_dataset, make_wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache_dir")
    parser.add_argument("--kill-in-class", type=int)
    parser.add_argument("--kill-after", type=int, default=1)
    args = parser.parse_args()
    # Float results (so image bytes) depend on the intra-op thread count: match the parent test process.
    torch.set_num_threads(int(os.environ["DIFFII_TEST_THREADS"]))

    if args.kill_in_class is not None:
        original_add = ClassWriter.add

        def add_then_maybe_die(self, image, record):
            original_add(self, image, record)
            if self.class_index == args.kill_in_class and record.index + 1 >= args.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        ClassWriter.add = add_then_maybe_die

    report = make_wrapper(make_dataset(), args.cache_dir, pipeline=tiny_pipeline(seed=0)).prepare().report
    print(json.dumps({"generated": report.generated, "skipped": report.skipped}))


if __name__ == "__main__":
    main()
