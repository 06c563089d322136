"""``diffii-datasets plan``: what ``generate`` would do, printed without running it (with ``--estimate``, how long)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

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
  diffii-datasets plan cub-5shot --root data/
  diffii-datasets plan cub-5shot --root data/ --estimate --device cuda
  diffii-datasets plan --image-folder my-birds/ --metaclass bird --estimate
  diffii-datasets plan cub --shots 7 --root data/ --cache-dir stores/
  diffii-datasets plan cub-5shot --root data/ --concept-train-steps 5000 --inversion-steps 100

Takes generate's arguments. It reads the training images (to count them per class) and
what --cache-dir holds (classes already in the store, learned concepts, an interrupted
concept-learning run), and runs no model: its estimated time is unknown. With --estimate
it loads the model on --device and times a few UNet calls of each kind the plan runs (a
concept-learning step, an inversion step, a guided denoising step: seconds on a GPU, a
few UNet calls on a CPU), then multiplies by the plan's UNet evaluations. The estimate
is the UNet's time: the VAE, the text encoder and reading images add a little to it.
A UNet evaluation is one latent through the UNet once: concept learning makes one per
image of a batch (with its backward pass), inversion one per image and step, generation
one per image and step, two with classifier-free guidance.

""" + DATA_EPILOG


def add_commands(add_command: AddCommand) -> None:
    plan = add_command("plan", "print the stages generate would run, with their image counts, UNet evaluations "
                               "and (--estimate) estimated time, without running them", EPILOG, run_plan)
    add_data_arguments(plan)
    plan.add_argument("--estimate", action="store_true",
                      help="load the model on --device and time a few UNet calls to estimate the run's time")
    plan.add_argument("--device", help="with --estimate: cpu, cuda or cuda:N (default: a GPU when there is one)")
    plan.set_defaults(quiet=True)  # no bars while reading released artifacts


def run_plan(args: argparse.Namespace) -> int:
    check_data_arguments(args)  # before torch loads
    config = config_from_args(args)

    from diffii_datasets.estimate import Estimate, estimate_plan
    from diffii_datasets.job import build_job
    from diffii_datasets.methods import get_method
    from diffii_datasets.plan import plan_job
    from diffii_datasets.store import default_cache_dir
    from diffii_datasets.store.cache import store_path

    concepts = concepts_from_args(args)
    subset_seed = config.seed if args.subset_seed is None else args.subset_seed
    train, metaclass, released = load_training_set(args, subset_seed, first=True)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir is not None else default_cache_dir()
    job = build_job(train, metaclass, config, concepts=concepts, released=released,
                    cache_dir=cache if cache.is_dir() else None)  # creates no cache
    where = f" from {Path(args.root).expanduser()}" if args.root is not None else ""
    print(f"{data_name(args)}: {len(train)} real images in {len(job.class_names)} classes "
          f"(metaclass {metaclass!r}){where}")
    source = job.method.source_config(job.config)
    jobs = [job] if source is None else [dataclasses.replace(job, config=source), job]
    if source is not None:  # generate makes it first, whole: its work is this run's too
        print(f"{job.method.title} reads the {get_method(source.method).title} store of the same images, "
              "made first:")
    pipe = None
    for each in jobs:
        plan = plan_job(each, cache)
        if not each.method.diffusion:
            estimate = Estimate.unknown("the method runs no UNet")
        elif plan.empty:
            estimate = Estimate(0.0, "nothing to run")
        elif args.estimate:
            if pipe is None:
                from diffii_datasets.diffusion.pipeline import loading_bars
                from diffii_datasets.prepare import load_generation_pipeline

                with loading_bars(False):
                    pipe = load_generation_pipeline(job.config.model, args.device)
            estimate = estimate_plan(plan, each, pipe)
        else:
            estimate = Estimate.unknown("no model was run: pass --estimate to time a few UNet calls on this machine")
        print(plan.with_estimate(estimate))
        store = store_path(cache, each.header())
        state = "complete" if plan.classes == 0 else "in progress" if store.is_dir() else "not made yet"
        print(f"store: {store} ({state})")
    return 0
