"""Every damage of issue 18's list: verify names it (exit 1, one line per problem, no traceback), prepare repairs
exactly what is damaged, and the cache ends byte for byte the undamaged one."""

import contextlib
import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from diffii_datasets._io import json_bytes, sha256_bytes
from diffii_datasets.store import StoreDamageError, SyntheticStore
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.damage import cache_files, copy_cache, flip, prepare, reference_cache, verify

CLASS_1 = "class 1 (green square)"


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pipe):
    """One undamaged cache (a store and its learned concepts), copied by every test."""
    return reference_cache(tmp_path_factory.mktemp("reference"), pipe)


@pytest.fixture
def copy(tmp_path, reference):
    cache = copy_cache(reference.cache, tmp_path / "cache")
    return SimpleNamespace(cache=cache, store=cache / reference.store.name,
                           concepts=cache / "concepts" / reference.concepts.name)


def _stamps(directory):
    """Inode and modification time of every file: what 'left untouched' means."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(directory.rglob("*")) if p.is_file()}


def _repaired(copy, reference, pipe, warning, generated, untouched=()):
    """Prepare repairs with a warning naming the file, regenerates only ``generated``, leaves ``untouched`` alone."""
    before = {c: _stamps(copy.store / "classes" / f"{c:05d}") for c in untouched}
    wrapper, warned = prepare(copy.cache, pipe)
    assert any(warning in message for message in warned), warned
    assert wrapper.report.generated == generated
    assert {c: _stamps(copy.store / "classes" / f"{c:05d}") for c in untouched} == before
    assert cache_files(copy.cache) == reference.files
    status, lines, out = verify(copy.store)
    assert (status, lines) == (0, []), out
    return wrapper


def _verify_fails(store, *expected):
    status, lines, out = verify(store)
    assert status == 1 and "Traceback" not in out, out
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected):
        assert line.startswith(start), (line, start)
    return lines


# -- damaged metadata: named, never a crash, repaired ------------------------------------------------------------


@pytest.mark.parametrize("damage, problem", [
    (lambda text: "{garbage", "not valid JSON"),
    (lambda text: "[]", "must hold a JSON object, found list"),
    (lambda text: text.replace('"metaclass"', '"metaclasz"'), "lacks the field 'metaclass'"),
    (lambda text: text.replace('"shape"', '"shapf"'), "does not hash to the store's name"),
])
def test_a_damaged_header_is_named_then_written_again(copy, reference, pipe, damage, problem):
    header = copy.store / "store.json"
    header.write_text(damage(header.read_text()))
    with pytest.raises(StoreDamageError, match=problem) as caught:
        SyntheticStore.open(copy.store)
    assert caught.value.path == header
    (line,) = _verify_fails(copy.store, "store.json is damaged")
    assert problem in line
    _repaired(copy, reference, pipe, "store.json is damaged", generated=[], untouched=[0, 1, 2])


@pytest.mark.parametrize("damage, problem", [
    (lambda text: text.replace('"files"', '"filez"'), "lacks the field 'files'"),
    (lambda text: "null", "must hold a JSON object, found null"),
    (lambda text: text.replace('"count": 4', '"count": 5'), "lacks the entry 'images/00004.png'"),
    (lambda text: text.replace('"count": 4', '"count": 6'), "lacks the entries"),
])
def test_a_damaged_commit_record_regenerates_its_class_only(copy, reference, pipe, damage, problem):
    record = copy.store / "classes/00001/class.json"
    record.write_text(damage(record.read_text()))
    lines = _verify_fails(copy.store, f"{CLASS_1}: class.json is damaged",
                          "manifest.json is damaged (class 1: its commit record does not match the manifest)")
    assert problem in lines[0]
    with pytest.raises(StoreDamageError, match="class.json"):
        SyntheticStore.open(copy.store).class_record(1)
    _repaired(copy, reference, pipe, "class 1 file class.json is damaged", generated=[1], untouched=[0, 2])


def test_a_file_dropped_from_its_record_and_then_damaged_is_found(copy, reference, pipe):
    record_path = copy.store / "classes/00001/class.json"
    record = json.loads(record_path.read_text())
    del record["files"]["images/00001.png"]
    record_path.write_bytes(json_bytes(record))
    flip(copy.store / "classes/00001/images/00001.png", 100)
    lines = _verify_fails(copy.store, f"{CLASS_1}: class.json is damaged", "manifest.json is damaged")
    assert "lacks the entry 'images/00001.png'" in lines[0]
    _repaired(copy, reference, pipe, "class 1 file class.json is damaged", generated=[1], untouched=[0, 2])


def test_labels_rewritten_with_their_checksums_fixed_are_found(copy, reference, pipe):
    """A consistent forgery: metadata labels changed, class.json and the manifest checksums updated to match."""
    class_dir = copy.store / "classes/00001"
    lines = [json.loads(line) for line in (class_dir / "metadata.jsonl").read_text().splitlines()]
    data = b"".join(json.dumps({**line, "label": 0}, sort_keys=True).encode() + b"\n" for line in lines)
    (class_dir / "metadata.jsonl").write_bytes(data)
    record = json.loads((class_dir / "class.json").read_text())
    record["files"]["metadata.jsonl"] = sha256_bytes(data)
    (class_dir / "class.json").write_bytes(json_bytes(record))
    manifest = json.loads((copy.store / "manifest.json").read_text())
    manifest["class_records"]["00001"]["class_json_sha256"] = sha256_bytes((class_dir / "class.json").read_bytes())
    (copy.store / "manifest.json").write_bytes(json_bytes(manifest))
    (line,) = _verify_fails(copy.store, f"{CLASS_1}: metadata.jsonl is damaged")
    assert "has label 0, expected 1" in line
    _repaired(copy, reference, pipe, "class 1 file metadata.jsonl is damaged", generated=[1], untouched=[0, 2])


def test_a_stray_image_in_a_class_is_reported_and_its_class_regenerated(copy, reference, pipe):
    (copy.store / "classes/00001/images/00099.png").write_bytes(
        (copy.store / "classes/00001/images/00000.png").read_bytes())
    (line,) = _verify_fails(copy.store, f"{CLASS_1}: images/00099.png is a stray file")
    _repaired(copy, reference, pipe, "class 1 file images/00099.png is a stray file", generated=[1],
              untouched=[0, 2])


def test_a_manifest_that_disagrees_with_the_records_is_written_again(copy, reference, pipe):
    manifest = copy.store / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"total_images": 12', '"total_images": 13'))
    (line,) = _verify_fails(copy.store, "manifest.json is damaged")
    assert "total_images is 13, its classes sum to 12" in line
    _repaired(copy, reference, pipe, "manifest.json is damaged", generated=[], untouched=[0, 1, 2])


# -- what steers generation is under a checksum ------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"{}", json_bytes(["on the moon", "under water"])])
def test_damaged_or_replaced_suffixes_are_derived_again_before_a_class_uses_them(copy, reference, pipe, content):
    (copy.store / "shared/suffixes.json").write_bytes(content)
    (copy.store / "classes/00001/images/00000.png").unlink()  # a class to regenerate, with the right suffixes
    _verify_fails(copy.store, f"{CLASS_1}: images/00000.png is missing",
                  "shared/suffixes.json is checksum mismatch")
    _repaired(copy, reference, pipe, "shared/suffixes.json is checksum mismatch", generated=[1], untouched=[0, 2])


def test_damaged_suffixes_of_a_complete_store_are_derived_again(copy, reference, pipe):
    (copy.store / "shared/suffixes.json").write_bytes(b"{}")
    _verify_fails(copy.store, "shared/suffixes.json is checksum mismatch")
    _repaired(copy, reference, pipe, "shared/suffixes.json is checksum mismatch", generated=[], untouched=[0, 1, 2])


@pytest.mark.parametrize("name", ["pytorch_lora_weights.safetensors", "learned_embeds/class_1.safetensors"])
def test_damaged_learned_concepts_are_learned_again(copy, reference, pipe, name):
    flip(copy.concepts / name, -3)
    (line,) = _verify_fails(copy.store, f"{copy.concepts} is not a usable concept set")
    assert name in line
    _repaired(copy, reference, pipe, "the concepts will be learned again", generated=[], untouched=[0, 1, 2])


def test_an_edited_concept_manifest_is_refused(copy, reference, pipe):
    manifest = copy.concepts / "concepts.json"
    manifest.write_text(manifest.read_text().replace('"shape"', '"shapf"'))  # the metaclass: no file checksum changes
    (line,) = _verify_fails(copy.store, f"{copy.concepts} is not a usable concept set")
    assert "identity" in line
    (copy.store / "classes/00002/class.json").unlink()  # and a class to generate with them
    _repaired(copy, reference, pipe, "the concepts will be learned again", generated=[2], untouched=[0, 1])


# -- litter --------------------------------------------------------------------------------------------------------


def _ended_pid():
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_leftovers_of_ended_processes_are_reported_then_swept_and_live_ones_kept(copy, reference, pipe):
    dead = _ended_pid()
    leftovers = [copy.store / f".manifest.json.tmp-{dead}", copy.store / f".store.json.tmp-{dead}",
                 copy.store / f"shared/.suffixes.json.tmp-{dead}"]
    for path in leftovers:
        path.write_text("half written")
    (copy.store / f"classes/.tmp-00001-{dead}/images").mkdir(parents=True)
    (copy.store / f"classes/.trash-00002-{dead}").write_text("a class directory that was a file")
    live = copy.store / f".manifest.json.tmp-{os.getpid()}"
    live.write_text("being written right now")
    lines = _verify_fails(copy.store, "", "", "", "", "")
    assert all(f"left behind by process {dead}, which has ended" in line for line in lines), lines
    SyntheticStore.create(copy.store, SyntheticStore.open(copy.store).header)  # the next open for writing
    assert not any(p.exists() for p in leftovers) and live.exists()
    assert sorted(p.name for p in (copy.store / "classes").iterdir()) == ["00000", "00001", "00002"]
    live.unlink()
    assert cache_files(copy.cache) == reference.files


def test_a_class_directory_replaced_by_a_file_leaves_no_trash(copy, reference, pipe):
    import shutil

    shutil.rmtree(copy.store / "classes/00001")
    (copy.store / "classes/00001").write_text("not a directory")
    status, lines, _ = verify(copy.store)
    assert status == 1 and lines == ["classes/00001 is not a directory (a class must be one)"]
    wrapper, _ = prepare(copy.cache, pipe)
    assert wrapper.report.generated == [1]
    assert sorted(p.name for p in (copy.store / "classes").iterdir()) == ["00000", "00001", "00002"]
    assert cache_files(copy.cache) == reference.files


def test_info_shows_a_damaged_class_as_damaged_not_its_wrong_count(copy):
    from diffii_datasets.cli import main

    record = copy.store / "classes/00001/class.json"
    record.write_text(record.read_text().replace('"count": 4', '"count": 5'))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", str(copy.store)]) == 0
    assert "incomplete: 2 of 3 classes committed" in out.getvalue()
    row = next(line for line in out.getvalue().splitlines() if line.split()[:3] == ["1", "green", "square"])
    assert row.split()[-1] == "damaged" and row.split()[-3] == "0"  # no synthetic count taken from a bad record
