"""``diffii-datasets plan``: what ``generate`` would do for a setting, printed without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffii_datasets.cli._common import AddCommand
from diffii_datasets.cli.generate import add_setting_arguments, concepts_from_args, config_from_args, resolve_setting

EPILOG = """examples:
  diffii-datasets plan cub-5shot --root data/
  diffii-datasets plan cub --shots 7 --root data/ --cache-dir stores/
  diffii-datasets plan cub-5shot --root data/ --concept-train-steps 5000 --inversion-steps 100

Takes generate's arguments. It reads the setting's training subset under --root (to count
its images per class) and what --cache-dir holds (classes already in the store, learned
concepts, an interrupted concept-learning run), and runs no model. A UNet evaluation is
one latent through the UNet once: concept learning makes one per image of a batch (with
its backward pass), inversion one per image and step, generation one per image and step,
two with classifier-free guidance.
"""


def add_commands(add_command: AddCommand) -> None:
    plan = add_command("plan", "print the stages generate would run for a setting, with their image counts and "
                               "UNet evaluations, without running them", EPILOG, run_plan)
    add_setting_arguments(plan)
    plan.set_defaults(released=False, revision=None, force_download=False, quiet=True)  # generate's alone


def run_plan(args: argparse.Namespace) -> int:
    from diffii_datasets.cli.generate import load_training_set
    from diffii_datasets.job import build_job
    from diffii_datasets.plan import plan_job
    from diffii_datasets.store import default_cache_dir
    from diffii_datasets.store.cache import store_path

    config = config_from_args(args)
    concepts = concepts_from_args(args)
    subset_seed = config.seed if args.subset_seed is None else args.subset_seed
    train, metaclass, released = load_training_set(args, subset_seed, first=True)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir is not None else default_cache_dir()
    job = build_job(train, metaclass, config, concepts=concepts, released=released,
                    cache_dir=cache if cache.is_dir() else None)  # creates no cache
    plan = plan_job(job, cache)
    print(f"{resolve_setting(args).name}: {len(train)} real images in {len(job.class_names)} classes "
          f"(metaclass {metaclass!r}) from {Path(args.root).expanduser()}")
    print(plan)
    store = store_path(cache, job.header())
    state = "complete" if plan.classes == 0 else "in progress" if store.is_dir() else "not made yet"
    print(f"store: {store} ({state})")
    return 0
