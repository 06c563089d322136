"""The ``diffii-datasets`` command line (also ``python -m diffii_datasets``).

Subcommands: ``demo``, ``generate`` (one process, or every rank of a ``torchrun`` /
``accelerate launch``), ``info``, ``verify``, ``preview``, ``export`` and ``push``.
Errors the user can fix are printed as one line on stderr with exit status 1;
usage errors exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"

EPILOG_DEMO = """examples:
  diffii-datasets demo
  diffii-datasets demo --output-dir /tmp/diffii-demo
  diffii-datasets demo --steps 10 --concept-steps 5 --quiet
"""

EPILOG_GENERATE = """examples:
  diffii-datasets generate cub-5shot --root data/ --cache-dir stores/
  diffii-datasets generate cub --shots 7 --root data/ --cache-dir stores/ --seed 1
  diffii-datasets generate flower-lt-if100 --root data/ --expansion-rate 3 --inversion-steps 100
  diffii-datasets generate pet-5shot --root data/ --cache-dir stores/ --concepts pet-concepts/
  torchrun --nproc_per_node=8 -m diffii_datasets generate cub-5shot --root data/ --cache-dir /shared/stores
  accelerate launch --num_processes 8 -m diffii_datasets generate cub-5shot --root data/ --cache-dir /shared/stores

Unset knobs take the paper's defaults with the setting's split ratio (0.3 for 5-shot,
0.1 for 10-shot, 1.0 for long-tail), as the Hugging Face builder does. Under torchrun
or accelerate launch, classes are shared out over the ranks by their number of
synthetic images, concept learning runs data-parallel, and the store is the same as a
one-process run's. --cache-dir must be on a filesystem every rank sees. A run that was
interrupted is completed by running the same command again.
"""

EPILOG_INFO = """examples:
  diffii-datasets info stores/3f9c2a...
  diffii-datasets info stores/3f9c2a... --json
"""

EPILOG_VERIFY = """examples:
  diffii-datasets verify stores/3f9c2a... && echo intact

Exit status: 0 when the store is complete and every checksum matches, 1 otherwise.
"""

EPILOG_PREVIEW = """examples:
  diffii-datasets preview stores/3f9c2a... -o grid.png
  diffii-datasets preview stores/3f9c2a... -o grid.png --classes 0,5,7 --per-class 6
  diffii-datasets preview stores/3f9c2a... -o grid.png --classes "Laysan Albatross"
"""

EPILOG_EXPORT = """examples:
  diffii-datasets export stores/3f9c2a... hub-folder/ --config-name cub-5shot
  diffii-datasets export stores/3f9c2a... hub-folder/ --config-name cub-5shot --test-root data/
  diffii-datasets export stores/7d01e4... hub-folder/ --config-name cub-7shot --card cub

The folder loads with datasets.load_dataset("hub-folder", "cub-5shot") and can be
uploaded as it is; push does both steps in one.
"""

EPILOG_PUSH = """examples:
  hf auth login   # once; or export HF_TOKEN=...
  diffii-datasets push stores/3f9c2a... --repo-id me/diffii-cub --config-name cub-5shot --test-root data/
  diffii-datasets push stores/9b2f7c... --repo-id me/diffii-cub --config-name cub-10shot --private

Each config is one folder of the repository; pushing another config keeps the others.
"""

# One line per DiffIIConfig field; the flags themselves are generated from the dataclass.
KNOB_HELP = {
    "model": "Stable Diffusion model: a Hub id or a local diffusers directory",
    "resolution": "image side in pixels",
    "expansion_rate": "synthetic images per real image",
    "split_ratio": "fraction of the denoising steps (the noisy end) that use the suffixed prompt; "
                   "the paper: 0.3 for 5-shot, 0.1 for 10-shot, 1.0 for long-tail",
    "inversion_steps": "DDIM inversion steps",
    "inversion_guidance_scale": "classifier-free guidance of the inversion",
    "denoising_steps": "DDIM denoising steps",
    "guidance_scale": "classifier-free guidance of the denoising",
    "interpolation": "circle, spherical, extrapolate or linear",
    "batch_size": "latents per UNet batch",
    "concept_train_steps": "concept-learning optimizer steps",
    "concept_batch_size": "concept-learning batch (the global batch, shared by the ranks)",
    "tokens_per_class": "placeholder token vectors per class",
    "lora_rank": "rank of the shared UNet LoRA",
    "concept_learning_rate": "AdamW learning rate of concept learning",
    "concept_weight_decay": "AdamW weight decay of concept learning",
    "concept_checkpoint_steps": "steps between concept-learning checkpoints",
    "gradient_checkpointing": "trade UNet compute for memory while learning concepts",
    "suffixes": "suffix provider: builtin, builtin:<family>, file:<path> or captioned[:options]",
    "image_format": "png or jpeg",
    "autocast_dtype": "bfloat16 or float16: run generation's UNet and VAE under autocast (a speed knob for "
                      "float32 pipelines; off by default)",
    "seed": "seed of concept learning, generation and (unless --subset-seed) the training subset",
}


class CommandError(Exception):
    """A problem with the user's input or data, reported as one line without a traceback."""


# ----------------------------------------------------------------------------------------------------------------------
# demo


def _demo(args: argparse.Namespace) -> int:
    from torchvision.datasets import ImageFolder

    from diffii_datasets import DiffIIAugmented, DiffIIConfig
    from diffii_datasets.preview import preview_store
    from diffii_datasets.testing import tiny_pipeline

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sample = ImageFolder(str(SAMPLE_DIR))
    config = DiffIIConfig(
        resolution=32,
        expansion_rate=args.expansion_rate,
        inversion_steps=50,
        denoising_steps=args.steps,
        concept_train_steps=args.concept_steps,
        concept_batch_size=4,
        batch_size=8,
        suffixes="builtin",
    )
    augmented = DiffIIAugmented(sample, "shape", config=config, pipeline=tiny_pipeline(seed=0),
                                cache_dir=output_dir / "cache", progress=not args.quiet).prepare()
    store, report = augmented.store, augmented.report
    path = output_dir / "preview.png"
    preview_store(store, per_class=4).save(path)
    print(f"sample: {len(sample)} real images in {len(sample.classes)} classes from {SAMPLE_DIR}")
    print("model: tiny random-weights Stable Diffusion pipeline (offline; its images are noise by design)")
    if report.generated:
        print(f"generated {len(augmented.synthetic)} synthetic images for {len(report.generated)} classes")
    else:
        print(f"reused the existing store: nothing generated ({len(report.skipped)} classes already complete)")
    print(f"store: {store.path} ({len(augmented.synthetic)} synthetic images)")
    print(f"preview: {path.resolve()}")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# generate


def _setting_names() -> tuple[list[str], list[str]]:
    """(the paper's fixed settings, the benchmarks that take --shots / --imbalance-factor)."""
    from diffii_datasets.benchmarks import BENCHMARKS, list_benchmarks

    return [s.name for s in list_benchmarks()], list(BENCHMARKS)


def resolve_setting(args: argparse.Namespace):
    """The :class:`BenchmarkSetting` that ``SETTING``, ``--shots`` and ``--imbalance-factor`` name."""
    from diffii_datasets.benchmarks import list_benchmarks

    settings = list_benchmarks()
    fixed = {s.name: s for s in settings}
    if args.setting in fixed:
        setting = fixed[args.setting]
        for flag, given, value in (("--shots", args.shots, setting.shots),
                                   ("--imbalance-factor", args.imbalance_factor, setting.imbalance_factor)):
            if given is not None and given != value:
                raise CommandError(f"{args.setting} fixes {flag.lstrip('-')}={value}; to use {given}, name the "
                                   f"benchmark instead: generate {setting.benchmark} {flag} {given} ...")
        return setting
    template = next(s for s in settings if s.benchmark == args.setting)
    if template.shots is not None:
        if args.shots is None or args.imbalance_factor is not None:
            raise CommandError(f"{args.setting} is a few-shot benchmark: pass --shots N (the paper uses 5 and 10), "
                               "not --imbalance-factor")
        return dataclasses.replace(template, name=f"{args.setting}-{args.shots}shot", shots=args.shots)
    if args.imbalance_factor is None or args.shots is not None:
        raise CommandError(f"{args.setting} is a long-tail benchmark: pass --imbalance-factor F (the paper uses "
                           "100, 20 and 10), not --shots")
    return dataclasses.replace(template, name=f"{args.setting}-if{args.imbalance_factor:g}",
                               imbalance_factor=args.imbalance_factor)


def config_from_args(args: argparse.Namespace):
    """The :class:`DiffIIConfig` of a ``generate`` command line.

    The paper's defaults with the setting's split ratio (as the Hub builder uses them),
    or a ``--config`` file; then every knob flag given.
    """
    from diffii_datasets.config import DiffIIConfig

    base = DiffIIConfig(split_ratio=resolve_setting(args).split_ratio)
    if args.config is not None:
        try:
            base = DiffIIConfig.from_json(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as error:
            raise CommandError(f"--config {args.config}: not a readable DiffIIConfig JSON file ({error})") from None
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(DiffIIConfig)
                 if getattr(args, f.name, None) is not None}
    model = overrides.get("model")
    if model is not None and Path(model).expanduser().is_dir():
        overrides["model"] = str(Path(model).expanduser().resolve())  # one identity whatever the cwd
    try:
        return dataclasses.replace(base, **overrides)
    except (TypeError, ValueError) as error:
        raise CommandError(str(error)) from None


def _load_training_set(args: argparse.Namespace, seed: int):
    """The setting's training subset and metaclass (the test split is not needed to generate)."""
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise CommandError(f"--root {args.root}: no such directory (it should hold the datasets in torchvision's "
                           "layouts, e.g. CUB_200_2011/, flowers-102/)")
    setting = resolve_setting(args)
    try:
        bench = setting.load(root, seed, profile=args.profile, download=args.download)
    except (RuntimeError, OSError, ValueError) as error:
        raise CommandError(f"cannot load {setting.name} from {root}: {error}") from None
    return bench.train, bench.metaclass


def _generate(args: argparse.Namespace) -> int:
    from diffii_datasets.augmented import DiffIIAugmented
    from diffii_datasets.diffusion.concepts import ConceptSet
    from diffii_datasets.distributed import distributed_world

    config = config_from_args(args)
    concepts = None
    if args.concepts is not None:
        try:
            concepts = ConceptSet.load(args.concepts)
        except (OSError, ValueError) as error:
            raise CommandError(f"--concepts {args.concepts}: {error}") from None
    subset_seed = config.seed if args.subset_seed is None else args.subset_seed
    with distributed_world(device=args.device) as world:
        # Rank 0 loads (and with --download fetches) the data first; the others then read it.
        if world.is_main:
            train, metaclass = _load_training_set(args, subset_seed)
        world.barrier()
        if not world.is_main:
            train, metaclass = _load_training_set(args, subset_seed)
        augmented = DiffIIAugmented(train, metaclass, config=config, concepts=concepts, cache_dir=args.cache_dir,
                                    device=world.device, progress=not args.quiet)
        augmented.prepare(world=world)
        generated = sorted(c for rank_generated in world.all_gather(augmented.report.generated)
                           for c in rank_generated)
        if world.is_main:
            _print_generate_summary(args, augmented, generated, world.size)
    return 0


def _print_generate_summary(args: argparse.Namespace, augmented, generated: list[int], ranks: int) -> None:
    store, report = augmented.store, augmented.report
    header = store.header()
    counts = header["expected_counts"]
    print(f"{resolve_setting(args).name}: {len(augmented.original)} real images in {len(augmented.classes)} classes "
          f"(metaclass {augmented.metaclass!r}) from {Path(args.root).expanduser()}")
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


# ----------------------------------------------------------------------------------------------------------------------
# info, verify, preview


def _open_store(path: str):
    """The store at ``path``; a cache directory instead gets an error listing the stores inside it."""
    from diffii_datasets.store import SyntheticStore

    store = SyntheticStore(path)
    header = store.header()
    if header is None:
        directory = Path(path)
        if not directory.is_dir():
            raise CommandError(f"{path}: no such store directory")
        inside = sorted(str(p) for p in directory.iterdir() if p.is_dir() and SyntheticStore(p).header())
        hint = f"; stores in it: {', '.join(inside)}" if inside else ""
        raise CommandError(f"{path} is not a diffii-datasets store (no header){hint}")
    return SyntheticStore(path, image_format=header.get("config", {}).get("image_format", "png")), header


def _class_rows(store, header: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for index, name in enumerate(header["classes"]):
        committed = store.is_committed(index)
        rows.append({
            "index": index,
            "name": name,
            "real": header["real_counts"][index],
            "expected": header["expected_counts"][index],
            "synthetic": store.class_record(index)["count"] if committed else 0,
            "committed": committed,
        })
    return rows


def _info(args: argparse.Namespace) -> int:
    store, header = _open_store(args.store)
    rows = _class_rows(store, header)
    committed = sum(row["committed"] for row in rows)
    complete = store.manifest() is not None and committed == len(rows)
    size = store.size_on_disk()
    if args.json:
        print(json.dumps({"path": str(store.path), "complete": complete, "size_bytes": size,
                          "classes_committed": committed, "header": header, "classes": rows}, indent=2))
        return 0
    status = "complete" if complete else f"incomplete: {committed} of {len(rows)} classes committed"
    print(f"store: {store.path}")
    print(f"status: {status}")
    print(f"size on disk: {_human_size(size)} ({size} bytes)")
    print(f"images: {sum(r['real'] for r in rows)} real, {sum(r['synthetic'] for r in rows)} synthetic "
          f"of {sum(r['expected'] for r in rows)} expected")
    for key in ("metaclass", "model", "concepts", "dataset"):
        print(f"{key}: {header.get(key)}")
    print("config: " + json.dumps(header["config"], sort_keys=True))
    width = max(len(r["name"]) for r in rows)
    print(f"{'class':>5}  {'name':<{width}}  {'real':>5}  {'synthetic':>9}  {'expected':>8}  status")
    for r in rows:
        print(f"{r['index']:>5}  {r['name']:<{width}}  {r['real']:>5}  {r['synthetic']:>9}  {r['expected']:>8}  "
              f"{'committed' if r['committed'] else 'missing'}")
    return 0


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    raise AssertionError("unreachable")


def _verify(args: argparse.Namespace) -> int:
    store, header = _open_store(args.store)
    classes = list(range(len(header["classes"])))
    problems = [f"class {p.class_index} ({header['classes'][p.class_index]}): {p.file} is {p.reason}"
                for p in store.verify(classes)]
    problems += store.verify_manifest()
    missing = [c for c in classes if not store.is_committed(c)]
    for line in problems:
        print(f"PROBLEM {line}")
    if missing:
        print(f"INCOMPLETE classes not generated yet: {missing} (run generate again to finish them)")
    elif store.manifest() is None:
        print("INCOMPLETE every class is committed but the manifest is missing (run generate again to write it)")
    if problems or missing or store.manifest() is None:
        print(f"{store.path}: NOT OK ({len(problems)} problems, {len(missing)} classes missing)")
        return 1
    images = sum(store.class_record(c)["count"] for c in classes)
    print(f"{store.path}: OK ({len(classes)} classes, {images} synthetic images, every checksum matches)")
    return 0


def _parse_classes(text: str | None, names: list[str]) -> list[int] | None:
    """``"0,3,5"`` or class names (comma-separated) to class indices."""
    if text is None:
        return None
    indices = []
    for item in (part.strip() for part in text.split(",")):
        if item.isdigit():
            indices.append(int(item))
        elif item in names:
            indices.append(names.index(item))
        else:
            raise CommandError(f"--classes: {item!r} is neither a class index (0..{len(names) - 1}) nor a class "
                               f"name of this store (e.g. {', '.join(repr(n) for n in names[:3])})")
    return indices


def _preview(args: argparse.Namespace) -> int:
    from diffii_datasets.preview import preview_store

    store, header = _open_store(args.store)
    classes = _parse_classes(args.classes, header["classes"])
    try:
        grid = preview_store(store, classes, per_class=args.per_class, tile=args.tile)
    except ValueError as error:
        raise CommandError(str(error)) from None
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        grid.save(output)
    except (ValueError, OSError) as error:
        raise CommandError(f"-o {args.output}: cannot write the image ({error})") from None
    print(f"preview: {output.resolve()} ({grid.width}x{grid.height} px)")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# export, push (through diffii_datasets.hf)


def _test_split(args: argparse.Namespace):
    """The real test split of ``--config-name``'s setting under ``--test-root``, or ``None``."""
    if args.test_root is None:
        return None
    from diffii_datasets.benchmarks import load_setting

    settings, _ = _setting_names()
    if args.config_name not in settings:
        raise CommandError(f"--test-root needs --config-name to be one of the paper's settings "
                           f"({', '.join(settings)}), got {args.config_name!r}")
    try:
        return load_setting(args.config_name, Path(args.test_root).expanduser()).test
    except (RuntimeError, OSError, ValueError) as error:
        raise CommandError(f"--test-root {args.test_root}: cannot load the test split of {args.config_name}: "
                           f"{error}") from None


def _export(args: argparse.Namespace) -> int:
    from diffii_datasets.hf import export_to_folder

    store, _ = _open_store(args.store)
    files = export_to_folder(store, args.folder, args.config_name, test_dataset=_test_split(args), card=args.card,
                             repo_id=args.repo_id)
    print(f"exported {args.config_name}: {len(files)} files in {Path(args.folder).resolve()}")
    for path in files:
        print(f"  {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from diffii_datasets.hf import push_to_hub

    store, _ = _open_store(args.store)
    url = push_to_hub(store, args.repo_id, args.config_name, private=args.private, token=args.token,
                      test_dataset=_test_split(args), card=args.card, commit_message=args.commit_message)
    print(f"pushed {args.config_name} to {args.repo_id}: {url}")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffii-datasets",
        description="Diff-II diffusion augmentation for data-scarce image classification.",
    )
    verbose = "log progress at INFO level, and show tracebacks of errors"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose)
    # -v also after the subcommand; SUPPRESS keeps the top-level value when it is not repeated there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])

    demo = command("demo", "run the method end to end on the bundled sample with the tiny offline model", EPILOG_DEMO)
    demo.add_argument("--output-dir", default="demo-output", help="where to write the preview (default: %(default)s)")
    demo.add_argument("--steps", type=_positive_int, default=25, help="denoising steps (default: %(default)s)")
    demo.add_argument("--concept-steps", type=_positive_int, default=20,
                      help="concept-learning steps (default: %(default)s)")
    demo.add_argument("--expansion-rate", type=float, default=2.0,
                      help="synthetic images per real image (default: %(default)s)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    _add_generate(command("generate", "learn concepts if needed, then generate a benchmark setting's synthetic "
                                      "images into a store", EPILOG_GENERATE))

    info = command("info", "show a store's configuration, counts per class, completeness and size on disk",
                   EPILOG_INFO)
    info.add_argument("store", help="a store directory (printed by generate)")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=_info)

    verify = command("verify", "check every file of a store against its checksums", EPILOG_VERIFY)
    verify.add_argument("store", help="a store directory (printed by generate)")
    verify.set_defaults(func=_verify)

    preview = command("preview", "draw a grid of real and synthetic images per class, class names as labels",
                      EPILOG_PREVIEW)
    preview.add_argument("store", help="a store directory (printed by generate)")
    preview.add_argument("-o", "--output", required=True, help="image file to write (.png or .jpg)")
    preview.add_argument("--classes", help="comma-separated class indices or names (default: every class)")
    preview.add_argument("--per-class", type=_positive_int, default=4,
                         help="real and synthetic images shown per class (default: %(default)s)")
    preview.add_argument("--tile", type=_positive_int, default=96, help="side of each image in pixels "
                                                                        "(default: %(default)s)")
    preview.set_defaults(func=_preview)

    export = command("export", "write a store as a Hugging Face dataset folder (Parquet shards and a card)",
                     EPILOG_EXPORT)
    export.add_argument("store", help="a complete store directory (printed by generate)")
    export.add_argument("folder", help="the folder to write (configs exported into one folder accumulate)")
    _add_hub_arguments(export)
    export.add_argument("--repo-id", help="the repository the card's loading example names (namespace/name)")
    export.set_defaults(func=_export)

    push = command("push", "upload a store to the Hugging Face Hub as one config of a dataset repository",
                   EPILOG_PUSH)
    push.add_argument("store", help="a complete store directory (printed by generate)")
    push.add_argument("--repo-id", required=True, help="the dataset repository, e.g. me/diffii-cub")
    _add_hub_arguments(push)
    push.add_argument("--private", action="store_true", help="create the repository as private (if it is new)")
    push.add_argument("--token", help="Hub token (default: $HF_TOKEN or the one saved by `hf auth login`; "
                                      "prefer those: a token on the command line ends up in shell history)")
    push.add_argument("--commit-message", help="message of the Hub commit")
    push.set_defaults(func=_push)
    return parser


def _add_hub_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config-name", required=True,
                         help="the dataset config, normally the paper setting the store was made for (cub-5shot ...); "
                              "another name needs --card")
    command.add_argument("--card", help="card template: a family (cub, aircraft, cars, pet, cub-lt, flower-lt) or "
                                        "a template file (default: the setting's family)")
    command.add_argument("--test-root", help="include the setting's real test split, read from this data root")


def _add_generate(generate: argparse.ArgumentParser) -> None:
    from diffii_datasets.augmented import default_cache_dir
    from diffii_datasets.benchmarks import LONG_TAIL_PROFILES
    from diffii_datasets.config import DiffIIConfig

    settings, benchmarks = _setting_names()
    generate.add_argument("setting", metavar="SETTING", choices=settings + benchmarks,
                          help=f"a paper setting ({', '.join(settings)}) or a benchmark with --shots / "
                               f"--imbalance-factor ({', '.join(benchmarks)})")
    generate.add_argument("--root", required=True, help="folder holding the datasets in torchvision's layouts")
    generate.add_argument("--cache-dir", default=default_cache_dir(),
                          help="where stores (and learned concepts) live; on a filesystem all ranks of a launch "
                               "share (default: $DIFFII_DATASETS_CACHE or %(default)s)")
    generate.add_argument("--shots", type=_positive_int, help="images per class, for cub, aircraft, cars, pet")
    generate.add_argument("--imbalance-factor", type=float, help="long-tail imbalance factor, for cub-lt, flower-lt")
    generate.add_argument("--profile", choices=LONG_TAIL_PROFILES, default="exponential",
                          help="long-tail profile (default: %(default)s)")
    generate.add_argument("--subset-seed", type=int, help="seed that draws the training subset (default: --seed)")
    generate.add_argument("--concepts", help="a saved concept set (ConceptSet.save) to use instead of learning one")
    generate.add_argument("--config", help="a DiffIIConfig JSON file; flags below override its fields")
    generate.add_argument("--device", help="cpu, cuda or cuda:N (default: this rank's GPU when there is one)")
    generate.add_argument("--download", action="store_true", help="download a missing dataset where torchvision can")
    generate.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    knobs = generate.add_argument_group("Diff-II settings", "every field of DiffIIConfig; defaults are the paper's")
    defaults = DiffIIConfig()
    for field in dataclasses.fields(DiffIIConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help = f"{KNOB_HELP.get(field.name, field.name)} (default: {default})"
        if field.type == "bool":
            knobs.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            parse = {"int": int, "float": float}.get(field.type, str)
            knobs.add_argument(flag, dest=field.name, type=parse, default=None, metavar=parse.__name__.upper(),
                               help=help)
    generate.set_defaults(func=_generate)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK") if "WORLD_SIZE" in os.environ else None
    prefix = f"[rank {rank}] " if rank is not None else ""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"{prefix}%(levelname)s %(name)s: %(message)s")
    from diffii_datasets.distributed import SharedFilesystemError
    from diffii_datasets.store import StoreMismatchError

    try:
        return args.func(args)
    except (CommandError, SharedFilesystemError, StoreMismatchError) as error:
        if args.verbose:
            raise
        print(f"{prefix}diffii-datasets {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as error:  # bad data, files or setup, reported by the library
        if args.verbose:
            raise
        print(f"{prefix}diffii-datasets {args.command}: error: {error} (rerun with -v for the traceback)",
              file=sys.stderr)
        return 1
