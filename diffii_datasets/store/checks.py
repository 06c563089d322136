"""What each file of a store must hold, checked as it is read: the records, the manifest, the shared files.

A store's files are written by this package only, so every one of them has one
exact form: the JSON files are canonical (:func:`~diffii_datasets._io.json_bytes`),
every line of ``metadata.jsonl`` is ``json.dumps(line, sort_keys=True)``, a class
holds exactly the files its commit record lists and the record exactly the files a
class of its size has. Anything else (a flipped byte that still parses, a field of
the wrong type, an entry removed together with its file, a label rewritten with its
checksum fixed, a stray file) is a :class:`StoreProblem` naming the file and what is
wrong, never a ``KeyError`` deep inside generation. The ``check_*`` functions return
what is wrong as sentences (empty when nothing is). Pure Python (no torch).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffii_datasets._io import FileFormatError
from diffii_datasets.store.layout import INVERSIONS, METADATA, image_file, real_file
from diffii_datasets.store.record import SyntheticRecord, is_int, json_type, listed

__all__ = ["StoreDamageError", "StoreProblem", "check_checksums", "check_class_record", "check_manifest",
           "check_metadata", "check_suffixes", "class_files", "damage_reason", "expected_manifest"]

HEX64 = re.compile(r"[0-9a-f]{64}\Z")
CLASS_RECORD_FIELDS = ("class_index", "count", "files")
MANIFEST_FIELDS = ("complete", "versions", "total_images", "class_records")


@dataclass(frozen=True)
class StoreProblem:
    """A file of a store that is missing, damaged, or not part of the store.

    ``class_index`` is the class whose file it is (``file`` relative to the class's
    directory) or ``None`` for a store-wide file (``file`` relative to the store, or a
    path outside it for learned concepts); ``reason`` reads after "is".
    """

    class_index: int | None
    file: str
    reason: str

    @property
    def location(self) -> str:
        """The file relative to the store (``classes/00003/images/00001.png``)."""
        if self.class_index is None:
            return self.file
        return f"classes/{self.class_index:05d}/{self.file}"

    def __str__(self) -> str:
        if self.class_index is None:
            return f"{self.file} is {self.reason}"
        return f"class {self.class_index}: {self.file} is {self.reason}"


class StoreDamageError(FileFormatError):
    """A store file read for use is damaged; ``store_problem`` says which file and what is wrong.

    The message is the file's path and ``detail`` (default: the problem's reason).
    """

    def __init__(self, store_path: str | os.PathLike, problem: StoreProblem, detail: str | None = None) -> None:
        self.store_problem = problem
        path = Path(problem.file) if Path(problem.file).is_absolute() else Path(store_path) / problem.location
        super().__init__(path, detail or problem.reason)


def damage_reason(error: FileFormatError) -> str:
    """A reader's complaint as a :class:`StoreProblem` reason (which reads after "is")."""
    return f"damaged ({error.problem.removeprefix('is ')})"


def class_files(real_count: int, count: int, extension: str, inversions: bool) -> list[str]:
    """The files a committed class of ``real_count`` real and ``count`` synthetic images holds, class.json aside.

    ``inversions``: whether its method keeps an inversion pool.
    """
    return ([INVERSIONS] if inversions else []) + [METADATA] + [real_file(i) for i in range(real_count)] \
        + [image_file(i, extension) for i in range(count)]


def check_class_record(record: Any, class_index: int, real_count: int, extension: str, inversions: bool) -> list[str]:
    """What is wrong with a parsed ``class.json`` of class ``class_index`` (empty when nothing).

    Its ``files`` must list exactly the files of a class of ``real_count`` real images and
    ``count`` synthetic ones, each with a SHA-256 hex digest.
    """
    if not isinstance(record, dict):
        return [f"it must hold a JSON object, found {json_type(record)}"]
    problems = _field_problems(record, CLASS_RECORD_FIELDS)
    if problems:
        return problems
    if not is_int(record["class_index"]) or record["class_index"] != class_index:
        problems.append(f"class_index is {record['class_index']!r}, expected {class_index}")
    count = record["count"]
    if not is_int(count) or count < 0:
        return problems + [f"count is {count!r}, expected a non-negative int"]
    files = record["files"]
    if not isinstance(files, dict):
        return problems + [f"files must be a JSON object, found {json_type(files)}"]
    wanted = class_files(real_count, count, extension, inversions)
    missing = [name for name in wanted if name not in files]
    unknown = sorted(set(files) - set(wanted))
    if missing:
        problems.append(f"it lacks the entr{'y' if len(missing) == 1 else 'ies'} {listed(missing)}")
    if unknown:
        problems.append(f"it lists {listed(unknown)}, not a file of a class of this size")
    bad = sorted(name for name, digest in files.items() if not (isinstance(digest, str) and HEX64.match(digest)))
    if bad:
        problems.append(f"the checksum of {listed(bad)} is not a SHA-256 hex digest")
    return problems


def check_metadata(data: bytes, record: Mapping[str, Any], class_index: int, real_count: int, num_classes: int,
                   extension: str) -> tuple[list[SyntheticRecord], list[str]]:
    """The provenance records of ``metadata.jsonl`` and what is wrong with them, against the class's ``record``.

    Line ``i`` must describe ``images/<i>``, of this class, with the checksum ``class.json``
    gives that file, in the form the writer writes (:meth:`SyntheticRecord.from_line`).
    """
    if data and not data.endswith(b"\n"):
        return [], ["its last line is cut short"]
    lines = data.split(b"\n")[:-1] if data else []
    if len(lines) != record["count"]:
        return [], [f"it has {len(lines)} lines for {record['count']} images"]
    records, problems = [], []
    for number, line in enumerate(lines):
        file = image_file(number, extension)
        try:
            records.append(SyntheticRecord.from_line(line, index=number, label=class_index, file=file,
                                                     sha256=record["files"].get(file), real_count=real_count,
                                                     num_classes=num_classes))
        except ValueError as error:
            problems.append(f"line {number + 1} {error}")
    return records, problems


def expected_manifest(header: Mapping[str, Any], records: Mapping[int, tuple[int, str]],
                      versions: Mapping[str, str]) -> dict[str, Any]:
    """The manifest of a store with ``header`` (its ``to_dict()``) and the classes' ``(count, class.json SHA-256)``."""
    classes = {f"{index:05d}": {"count": count, "class_json_sha256": digest}
               for index, (count, digest) in sorted(records.items())}
    return {**header, "complete": True, "versions": dict(versions),
            "total_images": sum(entry["count"] for entry in classes.values()), "class_records": classes}


def check_manifest(manifest: Any, header: Mapping[str, Any],
                   records: Mapping[int, tuple[int | None, str] | None]) -> list[str]:
    """What is wrong with a parsed ``manifest.json``, checked against ``store.json`` and the commit records.

    ``records`` maps every class to ``(count, class.json SHA-256)`` (the count ``None``
    where the record is damaged, already a problem of its own), or to ``None`` for a class
    not committed. Only ``versions`` is not checked against anything: it records which
    libraries wrote the store.
    """
    if not isinstance(manifest, dict):
        return [f"it must hold a JSON object, found {json_type(manifest)}"]
    problems = _field_problems(manifest, tuple(header) + MANIFEST_FIELDS)
    if problems:
        return problems
    problems += [f"manifest field {key!r} differs from store.json" for key, value in header.items()
                 if manifest[key] != value]
    if manifest["complete"] is not True:
        problems.append(f"complete is {manifest['complete']!r}, expected true")
    versions = manifest["versions"]
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        problems.append("versions must map library names to version strings")
    recorded = manifest["class_records"]
    if not isinstance(recorded, dict):
        return problems + ["class_records must be a JSON object"]
    wanted = {f"{index:05d}" for index in records}
    for key in sorted(set(recorded) - wanted):
        problems.append(f"it lists a class {key!r} this store does not have")
    total = 0
    for index, actual in sorted(records.items()):
        entry = recorded.get(f"{index:05d}")
        if entry is None:
            problems.append(f"class {index} is missing from it")
            continue
        if not isinstance(entry, dict) or set(entry) != {"count", "class_json_sha256"}:
            problems.append(f"its entry of class {index} is not a count and a checksum")
            continue
        total += entry["count"] if is_int(entry["count"]) else 0
        if actual is not None and entry["class_json_sha256"] != actual[1]:
            problems.append(f"class {index}: its commit record does not match the manifest")
        elif actual is not None and actual[0] is not None and entry["count"] != actual[0]:
            problems.append(f"it gives class {index} {entry['count']!r} images, class.json {actual[0]}")
    if manifest["total_images"] != total or not is_int(manifest["total_images"]):
        problems.append(f"total_images is {manifest['total_images']!r}, its classes sum to {total}")
    return problems


def check_checksums(value: Any, names: Sequence[str]) -> list[str]:
    """What is wrong with a parsed ``shared/checksums.json``: one SHA-256 for each of ``names``, nothing else."""
    if not isinstance(value, dict):
        return [f"it must hold a JSON object, found {json_type(value)}"]
    problems = _field_problems(value, tuple(names))
    bad = sorted(name for name, digest in value.items() if not (isinstance(digest, str) and HEX64.match(digest)))
    return problems + ([f"the checksum of {listed(bad)} is not a SHA-256 hex digest"] if bad else [])


def check_suffixes(value: Any) -> list[str]:
    """What is wrong with a parsed ``shared/suffixes.json``: it must be a list of one-line strings."""
    if not isinstance(value, list) or not value:
        return ["it must hold a non-empty JSON array of suffixes"]
    if not all(isinstance(s, str) and s.strip() and s.isprintable() for s in value):
        return ["every suffix must be a non-empty one-line string"]
    return []


def _field_problems(value: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    missing = [name for name in fields if name not in value]
    unknown = sorted(set(value) - set(fields))
    problems = []
    if missing:
        problems.append(f"it lacks the field{'s' if len(missing) > 1 else ''} {listed(missing)}")
    if unknown:
        problems.append(f"it has the unexpected field{'s' if len(unknown) > 1 else ''} {listed(unknown)}")
    return problems
