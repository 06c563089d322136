"""``diffii-datasets generate``: one of the paper's settings into a store, in one process or under a launcher.

Every ``DiffIIConfig`` knob is a flag derived from its declaration (see
:func:`~diffii_datasets.cli._common.add_knob_flags`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffii_datasets.cli._common import AddCommand, CommandError, add_knob_flags, knob_values, positive_int
from diffii_datasets.cli.released import add_released_flags
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.settings.base import (
    FAMILIES,
    LONG_TAIL_PROFILES,
    Setting,
    custom_setting,
    get_setting,
    list_settings,
)
from diffii_datasets.released.layout import REPO_ID

EPILOG = """examples:
  diffii-datasets generate cub-5shot --root data/ --cache-dir stores/
  diffii-datasets generate cub --shots 7 --root data/ --cache-dir stores/ --seed 1
  diffii-datasets generate flower-lt-if100 --root data/ --expansion-rate 3 --inversion-steps 100
  diffii-datasets generate pet-5shot --root data/ --cache-dir stores/ --concepts pet-concepts/
  diffii-datasets generate cub-5shot --released --root data/ --cache-dir stores/
  torchrun --nproc_per_node=8 -m diffii_datasets generate cub-5shot --root data/ --cache-dir /shared/stores
  accelerate launch --num_processes 8 -m diffii_datasets generate cub-5shot --root data/ --cache-dir /shared/stores

Unset knobs take the paper's defaults with the setting's split ratio (0.3 for 5-shot,
0.1 for 10-shot, 1.0 for long-tail) and, for the long-tail settings, class-balanced
concept learning (--concept-balance-classes), as the Hugging Face builder does. Under torchrun
or accelerate launch, classes are shared out over the ranks by their number of
synthetic images, concept learning runs data-parallel, and the store is the same as a
one-process run's. --cache-dir must be on a filesystem every rank sees. A run that was
interrupted is completed by running the same command again.

--released uses the authors' released concepts, suffixes and training subset of the
setting (see `diffii-datasets released --help`): no concept learning at all.
"""

# Per family kind: the flag that gives its count, and how the help names the count.
_COUNT_FLAGS = {"few-shot": ("--shots", "N"), "long-tail": ("--imbalance-factor", "F")}


def add_commands(add_command: AddCommand) -> None:
    generate = add_command("generate", "learn concepts if needed, then generate a setting's synthetic images into "
                                       "a store", EPILOG, run_generate)
    add_setting_arguments(generate)
    generate.add_argument("--released", action="store_true",
                          help="use the authors' released concepts, suffixes and training subset of SETTING "
                               f"(from {REPO_ID}) instead of learning concepts and drawing a subset")
    add_released_flags(generate)
    generate.add_argument("--device", help="cpu, cuda or cuda:N (default: this rank's GPU when there is one)")
    generate.add_argument("-q", "--quiet", action="store_true", help="no plan, progress bars or library notices")


def add_setting_arguments(command: argparse.ArgumentParser) -> None:
    """The arguments that name a setting, its data and its config: ``generate``'s, which ``plan`` shares."""
    settings = [setting.name for setting in list_settings()]
    command.add_argument("setting", metavar="SETTING", choices=settings + list(FAMILIES),
                         help=f"a paper setting ({', '.join(settings)}) or a family with --shots / "
                              f"--imbalance-factor ({', '.join(FAMILIES)})")
    command.add_argument("--root", required=True, help="folder holding the datasets in torchvision's layouts")
    command.add_argument("--cache-dir", help="where stores (and learned concepts) live; on a filesystem all ranks "
                                             "of a launch share (default: $DIFFII_DATASETS_CACHE, else "
                                             "$XDG_CACHE_HOME/diffii-datasets, else ~/.cache/diffii-datasets)")
    command.add_argument("--shots", type=positive_int, help="images per class, for the few-shot families "
                                                            f"({', '.join(_family_names('few-shot'))})")
    command.add_argument("--imbalance-factor", type=float, help="long-tail imbalance factor, for the long-tail "
                                                                f"families ({', '.join(_family_names('long-tail'))})")
    command.add_argument("--profile", choices=LONG_TAIL_PROFILES, default=LONG_TAIL_PROFILES[0],
                         help="long-tail profile (default: %(default)s)")
    command.add_argument("--subset-seed", type=int, help="seed that draws the training subset (default: --seed)")
    command.add_argument("--concepts", help="a saved concept set (ConceptSet.save) to use instead of learning one")
    command.add_argument("--config", help="a DiffIIConfig JSON file; flags below override its knobs")
    command.add_argument("--download", action="store_true", help="download a missing dataset where torchvision can")
    knobs = command.add_argument_group("Diff-II settings", "every knob of DiffIIConfig; defaults are the paper's")
    add_knob_flags(knobs, DiffIIConfig.knobs())


def _family_names(kind: str) -> list[str]:
    return [family.name for family in FAMILIES.values() if family.kind == kind]


def resolve_setting(args: argparse.Namespace) -> Setting:
    """The :class:`~diffii_datasets.settings.Setting` that ``SETTING``, ``--shots`` and ``--imbalance-factor`` name."""
    fixed = args.setting not in FAMILIES
    setting = get_setting(args.setting) if fixed else None
    family = FAMILIES[setting.family if fixed else args.setting]
    own, metavar = _COUNT_FLAGS[family.kind]
    given = {"--shots": args.shots, "--imbalance-factor": args.imbalance_factor}
    others = [flag for flag, value in given.items() if flag != own and value is not None]
    if fixed:
        if others:
            raise CommandError(f"{setting.name} is a {family.kind} setting: {others[0]} does not apply to it")
        value = setting.shots if family.kind == "few-shot" else setting.imbalance_factor
        if given[own] is not None and given[own] != value:
            raise CommandError(f"{setting.name} fixes {own.lstrip('-')}={value:g}; to use {given[own]:g}, name the "
                               f"family instead: generate {family.name} {own} {given[own]:g} ...")
        return setting
    if given[own] is None or others:
        published = [f"{value:g}" for value in family.published]
        paper = ", ".join(published[:-1]) + " and " + published[-1]
        not_others = f", not {others[0]}" if others else ""
        raise CommandError(f"{family.name} is a {family.kind} family: pass {own} {metavar} (the paper uses {paper})"
                           f"{not_others}")
    try:
        return custom_setting(family.name, given[own])
    except (TypeError, ValueError) as error:
        raise CommandError(f"{own} {given[own]:g}: {error}") from None


def config_from_args(args: argparse.Namespace) -> DiffIIConfig:
    """The :class:`DiffIIConfig` of a ``generate`` command line.

    The paper's defaults with the setting's own (:meth:`~diffii_datasets.settings.Setting.default_knobs`,
    as the Hub builder uses them), or a ``--config`` file; then every knob flag given.
    """
    from diffii_datasets._io import read_json

    config = resolve_setting(args).diffii_config()
    if args.config is not None:
        try:
            config = DiffIIConfig.from_dict(read_json(Path(args.config).expanduser()))
        except (OSError, TypeError, ValueError) as error:
            raise CommandError(f"--config {args.config}: not a readable DiffIIConfig JSON file ({error})") from None
    knobs = knob_values(args, DiffIIConfig.knobs())
    model = knobs.get("model")
    if model is not None and Path(model).expanduser().is_dir():
        knobs["model"] = str(Path(model).expanduser().resolve())  # one identity whatever the cwd
    return config.replace(**knobs)


def check_released_flags(args: argparse.Namespace) -> None:
    """``--released`` brings concepts, suffixes and subset: the flags that would set them again are refused."""
    if not args.released:
        given = [flag for flag, value in (("--revision", args.revision), ("--force-download", args.force_download))
                 if value]
        if given:
            raise CommandError(f"{given[0]} applies to the released artifacts: add --released")
        return
    if args.setting in FAMILIES:
        raise CommandError(f"--released: the authors released the paper's settings only "
                           f"({', '.join(s.name for s in list_settings())}), not a family with a count")
    clashes = [flag for flag, value in (("--concepts", args.concepts), ("--suffixes", args.suffixes),
                                        ("--subset-seed", args.subset_seed)) if value is not None]
    if clashes:
        raise CommandError(f"--released brings the authors' concepts, suffixes and subset: drop {clashes[0]}")


def load_training_set(args: argparse.Namespace, seed: int, first: bool) -> tuple[Any, str, Any]:
    """The setting's training subset, metaclass and, with ``--released``, the released setting (else None).

    Only the ``first`` process forces a new download; the others then read what it fetched.
    """
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise CommandError(f"--root {args.root}: no such directory (it should hold the datasets in torchvision's "
                           "layouts, e.g. CUB_200_2011/, flowers-102/)")
    setting = resolve_setting(args)
    try:
        if args.released:
            from diffii_datasets.released import load_released

            released = load_released(setting, root, revision=args.revision, cache_dir=args.cache_dir,
                                     force_download=args.force_download and first, progress=not args.quiet,
                                     download=args.download)
            return released.splits.train, released.splits.metaclass, released
        splits = setting.load(root, seed, profile=args.profile, download=args.download)
    except (RuntimeError, OSError, ValueError) as error:
        raise CommandError(f"cannot load {setting.name}{' as released' if args.released else ''} from {root}: "
                           f"{error}") from None
    return splits.train, splits.metaclass, None


def concepts_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~diffii_datasets.diffusion.ConceptSet` that ``--concepts`` names, or None."""
    from diffii_datasets.diffusion.concepts import ConceptSet

    if args.concepts is None:
        return None
    try:
        return ConceptSet.load(args.concepts)
    except (OSError, ValueError) as error:
        raise CommandError(f"--concepts {args.concepts}: {error}") from None


def run_generate(args: argparse.Namespace) -> int:
    from diffii_datasets.augmented import DiffIIAugmented
    from diffii_datasets.distributed import distributed_world

    check_released_flags(args)
    config = config_from_args(args)
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
    print(f"{resolve_setting(args).name}: {len(augmented.original)} real images in {len(augmented.classes)} classes "
          f"(metaclass {augmented.metaclass!r}) from {Path(args.root).expanduser()}")
    if released is not None:
        print(f"the authors' released subset, concepts and {len(released.suffixes.entries)} suffixes "
              f"({REPO_ID} at commit {released.commit}): no concepts learned")
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
