"""``diffii-datasets generate``: a paper setting, or your own images, into a store, in one process or under a launcher.

The data and config arguments are :mod:`diffii_datasets.cli.data`'s; every knob of the
methods' configs is a flag derived from its declaration (see :func:`~diffii_datasets.cli._common.add_knob_flags`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffii_datasets.cli._common import AddCommand
from diffii_datasets.cli.data import (
    DATA_EPILOG,
    add_data_arguments,
    check_data_arguments,
    concepts_from_args,
    config_from_args,
    data_name,
    load_training_set,
)

EPILOG = """examples:
  diffii-datasets generate cub-5shot --root data/ --cache-dir stores/
  diffii-datasets generate --image-folder my-birds/ --metaclass bird --cache-dir stores/
  diffii-datasets generate --image-folder my-birds/ --metaclass bird --model tiny   # offline, a minute on a CPU
  diffii-datasets generate cub --shots 7 --root data/ --cache-dir stores/ --seed 1
  diffii-datasets generate flower-lt-if100 --root data/ --expansion-rate 3 --inversion-steps 100
  diffii-datasets generate pet-5shot --root data/ --cache-dir stores/ --concepts pet-concepts/
  diffii-datasets generate cub-5shot --released --root data/ --cache-dir stores/
  diffii-datasets generate cub-5shot --root data/ --method diff-mix --strengths 0.5   # a baseline of the paper
  torchrun --nproc_per_node=8 -m diffii_datasets generate cub-5shot --root data/ --cache-dir /shared/stores
  accelerate launch --num_processes 8 -m diffii_datasets generate cub-5shot --root data/ --cache-dir /shared/stores

Unset knobs take the paper's defaults with the setting's split ratio (0.3 for 5-shot,
0.1 for 10-shot, 1.0 for long-tail) and, for the long-tail settings, class-balanced
concept learning (--concept-balance-classes), as the Hugging Face builder does. Before
any work it prints its plan with an estimated time (from a few UNet calls timed on the
device in use); the published defaults on a CPU are warned about first. Under torchrun
or accelerate launch, classes are shared out over the ranks by their number of
synthetic images, concept learning runs data-parallel, and the store is the same as a
one-process run's. --cache-dir must be on a filesystem every rank sees. A run that was
interrupted (Ctrl-C included) is completed by running the same command again.

--released uses the authors' released concepts, suffixes and training subset of the
setting (see `diffii-datasets released --help`): no concept learning at all.

--method makes a baseline's images instead of Diff-II's (real-gen, real-guidance,
real-filter, da-fusion, real-mix, diff-aug, diff-mix), each with its authors' published
values; a flag that is not a knob of the method is refused. Each method has its own store.

""" + DATA_EPILOG


def add_commands(add_command: AddCommand) -> None:
    generate = add_command("generate", "learn concepts if needed, then generate a setting's (or your own images') "
                                       "synthetic images into a store", EPILOG, run_generate)
    add_data_arguments(generate)
    generate.add_argument("--device", help="cpu, cuda or cuda:N (default: this rank's GPU when there is one)")
    generate.add_argument("-q", "--quiet", action="store_true", help="no plan, progress bars or library notices")


def run_generate(args: argparse.Namespace) -> int:
    check_data_arguments(args)  # before torch loads
    config = config_from_args(args)

    from diffii_datasets.augmented import DiffIIAugmented
    from diffii_datasets.distributed import distributed_world

    concepts = concepts_from_args(args)
    subset_seed = config.seed if args.subset_seed is None else args.subset_seed
    with distributed_world(device=args.device) as world:
        # Rank 0 loads (and with --download fetches) the data first; the others then read it.
        if world.is_main:
            train, metaclass, released = load_training_set(args, subset_seed, first=True)
        world.barrier()
        if not world.is_main:
            train, metaclass, released = load_training_set(args, subset_seed, first=False)
        augmented = DiffIIAugmented(train, metaclass, config=config, concepts=concepts, released=released,
                                    cache_dir=args.cache_dir, device=world.device, progress=not args.quiet)
        augmented.prepare(world=world)
        generated = sorted(c for rank_generated in world.all_gather(augmented.report.generated)
                           for c in rank_generated)
        if world.is_main:
            _print_summary(args, augmented, generated, world.size, released)
    return 0


def _print_summary(args: argparse.Namespace, augmented: Any, generated: list[int], ranks: int, released: Any) -> None:
    store, report = augmented.store, augmented.report
    counts = store.header.expected_counts
    where = f" from {Path(args.root).expanduser()}" if args.root is not None else ""
    print(f"{data_name(args)}: {len(augmented.original)} real images in {len(augmented.classes)} classes "
          f"(metaclass {augmented.metaclass!r}){where}; method {store.method.title}")
    if released is not None:
        print(f"the authors' released subset, concepts and {len(released.suffixes.entries)} suffixes "
              f"({released.origin}): no concepts learned")
    skipped = [c for c in range(len(augmented.classes)) if c not in generated]
    if skipped:
        names = ", ".join(f"{c} ({augmented.classes[c]})" for c in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        print(f"skipped {len(skipped)} classes already in the store: {names}{more}")
    if generated:
        on = f" on {ranks} ranks" if ranks > 1 else ""
        print(f"generated {sum(counts[c] for c in generated)} synthetic images for {len(generated)} classes{on}")
    else:
        print("nothing to generate: the store was already complete")
    if report.repaired:
        print(f"repaired {len(report.repaired)} damaged files")
    print(f"store: {store.path} ({len(augmented.synthetic)} synthetic images, complete)")
