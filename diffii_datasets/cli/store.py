"""``diffii-datasets info``, ``verify`` and ``preview``: read a store that ``generate`` wrote."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffii_datasets.cli._common import (CLASSES_HELP, STORE_HELP, AddCommand, CommandError, open_store, parse_classes,
                                         positive_int)
from diffii_datasets.preview import PER_CLASS, TILE

if TYPE_CHECKING:
    from diffii_datasets.store import SyntheticStore

EPILOG_INFO = """examples:
  diffii-datasets info stores/3f9c2a...
  diffii-datasets info stores/3f9c2a... --json
"""

EPILOG_VERIFY = """examples:
  diffii-datasets verify stores/3f9c2a... && echo intact

Prints one line per problem (a damaged, missing or stray file, a file left by a
process that is gone, damaged learned concepts), then a summary. Exit status: 0 when
the store is complete and every file is intact, 1 otherwise. The next generate (or
prepare()) with the same inputs repairs what it reports: damaged classes are
generated again, damaged suffixes and concepts derived and learned again.
"""

EPILOG_PREVIEW = """examples:
  diffii-datasets preview stores/3f9c2a... -o grid.png
  diffii-datasets preview stores/3f9c2a... -o grid.png --classes 0,5,7 --per-class 6
  diffii-datasets preview stores/3f9c2a... -o grid.png --classes "Laysan Albatross"
"""


def add_commands(add_command: AddCommand) -> None:
    info = add_command("info", "show a store's configuration, counts per class, completeness and size on disk",
                       EPILOG_INFO, run_info)
    info.add_argument("store", help=STORE_HELP)
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    verify = add_command("verify", "check every file of a store against its checksums", EPILOG_VERIFY, run_verify)
    verify.add_argument("store", help=STORE_HELP)

    preview = add_command("preview", "draw a grid of real and synthetic images per class, class names as labels",
                          EPILOG_PREVIEW, run_preview)
    preview.add_argument("store", help=STORE_HELP)
    preview.add_argument("-o", "--output", required=True, help="image file to write (.png or .jpg)")
    preview.add_argument("--classes", help=CLASSES_HELP)
    preview.add_argument("--per-class", type=positive_int, default=PER_CLASS,
                         help="real and synthetic images shown per class (default: %(default)s)")
    preview.add_argument("--tile", type=positive_int, default=TILE,
                         help="side of each image in pixels (default: %(default)s)")


def _class_rows(store: SyntheticStore) -> list[dict[str, Any]]:
    from diffii_datasets.store import StoreDamageError

    header = store.header
    rows = []
    for index, name in enumerate(header.classes):
        committed, damaged, count = store.is_committed(index), False, 0
        if committed:
            try:
                count = store.class_record(index)["count"]
            except StoreDamageError:
                committed, damaged = False, True
        rows.append({
            "index": index,
            "name": name,
            "real": header.real_counts[index],
            "expected": header.expected_counts[index],
            "synthetic": count,
            "committed": committed,
            "damaged": damaged,
        })
    return rows


def _has_manifest(store: SyntheticStore) -> bool:
    """A manifest that agrees with the store (a damaged one counts as none: verify names it)."""
    from diffii_datasets.store import StoreDamageError

    try:
        return store.manifest() is not None
    except StoreDamageError:
        return False


def run_info(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    header = store.header
    rows = _class_rows(store)
    committed = sum(row["committed"] for row in rows)
    complete = committed == len(rows) and _has_manifest(store)
    size = store.size_on_disk()
    if args.json:
        print(json.dumps({"path": str(store.path), "complete": complete, "size_bytes": size,
                          "classes_committed": committed, "header": header.to_dict(), "classes": rows}, indent=2))
        return 0
    status = "complete" if complete else f"incomplete: {committed} of {len(rows)} classes committed"
    print(f"store: {store.path}")
    print(f"status: {status}")
    print(f"size on disk: {_human_size(size)} ({size} bytes)")
    print(f"images: {sum(r['real'] for r in rows)} real, {sum(r['synthetic'] for r in rows)} synthetic "
          f"of {sum(r['expected'] for r in rows)} expected")
    for key in ("metaclass", "model", "concepts", "dataset"):
        print(f"{key}: {getattr(header, key)}")
    print("config: " + json.dumps(header.config.to_dict(), sort_keys=True))
    width = max(len(r["name"]) for r in rows)
    print(f"{'class':>5}  {'name':<{width}}  {'real':>5}  {'synthetic':>9}  {'expected':>8}  status")
    for r in rows:
        print(f"{r['index']:>5}  {r['name']:<{width}}  {r['real']:>5}  {r['synthetic']:>9}  {r['expected']:>8}  "
              f"{'committed' if r['committed'] else 'damaged' if r['damaged'] else 'missing'}")
    return 0


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def run_verify(args: argparse.Namespace) -> int:
    from diffii_datasets.store import StoreDamageError

    try:
        store = open_store(args.store)
    except StoreDamageError as error:  # the header itself: nothing else can be checked without it
        print(f"PROBLEM {error.store_problem}")
        print(f"{args.store}: NOT OK (1 problems; run generate again to repair the header)")
        return 1
    names = store.header.classes
    problems = [f"class {p.class_index} ({names[p.class_index]}): {p.file} is {p.reason}"
                if p.class_index is not None else str(p) for p in store.problems()]
    classes = list(range(len(names)))
    missing = [c for c in classes if not store.is_committed(c)]
    for line in problems:
        print(f"PROBLEM {line}")
    manifest = (store.path / "manifest.json").exists()
    if missing:
        print(f"INCOMPLETE classes not generated yet: {missing} (run generate again to finish them)")
    elif not manifest:
        print("INCOMPLETE every class is committed but the manifest is missing (run generate again to write it)")
    if problems or missing or not manifest:
        print(f"{store.path}: NOT OK ({len(problems)} problems, {len(missing)} classes missing)")
        return 1
    images = sum(store.class_record(c)["count"] for c in classes)
    print(f"{store.path}: OK ({len(classes)} classes, {images} synthetic images, every checksum matches, every image "
          "decodes)")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from diffii_datasets.preview import preview_store

    store = open_store(args.store)
    classes = parse_classes(args.classes, store.header.classes)
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
