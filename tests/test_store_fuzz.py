"""Flip random bytes in every file of a small cache (a store, its concept-learning checkpoints and its learned
concepts): each flip is detected (and, on a sample covering every kind of file, repaired to the identical cache) or
provably harmless. Then cut or empty every image with its checksums made to agree: verify finds each (decoding), and
so does the cheaper check prepare() runs.

Harmless, and why (asserted for every flip verify does not report):

- ``manifest.json``, inside ``versions``: which library versions wrote the store, provenance only. Nothing
  reads it to generate, verify or serve images, and nothing else records it, so no check can tell.
- ``concepts.json``, inside ``recipe`` (its key included): how the concepts were learned, only reported when
  a cached set is not reused; the concepts' identity covers names, metaclass and every tensor, not the recipe.
- ``learned-from.json`` beside the concepts, inside a value: what they were learned from, only reported
  (logging). Verify cannot tell another value from the right one; prepare(), which has the job, writes it again.

Every other byte is under a checksum or a cross-check: the class files under ``class.json``, ``class.json``
under the manifest and the header's counts, the manifest against the records and ``store.json``,
``store.json`` against the store's name (a digest of it), the suffixes under ``shared/checksums.json``, the
concept files under ``concepts.json`` and ``concepts.json`` under the set's identity, the checkpoints' tensors
under their JSON and the JSON under its own checksum. JSON files must also be in the exact form they are written
in, so a flip that still parses (white space, escapes) is caught too.
"""

import re
import shutil

import numpy as np
import pytest

from diffii_datasets.store import StoreDamageError, SyntheticStore
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.damage import cache_files, copy_cache, prepare, reference_cache, rewrite_consistently, verify

TRIALS_PER_FILE = 8


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pipe):
    return reference_cache(tmp_path_factory.mktemp("reference"), pipe)


def _detected(store_path):
    try:
        store = SyntheticStore.open(store_path)
    except StoreDamageError:
        return True
    return bool(store.problems())


def _span(text: str, key: str) -> tuple[int, int] | None:
    """Byte span of ``"key": <object>`` in a JSON text (key included), or None."""
    found = re.search(rf'"{key}": ', text)
    if found is None:
        return None
    if text[found.end()] != "{":
        end = text.index("\n", found.end())
        return found.start(), end
    depth, position = 0, found.end()
    while True:
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        position += 1
        if depth == 0:
            return found.start(), position


def _harmless(relative: str, offset: int, original: bytes) -> str | None:
    """Why a flip at ``offset`` of ``relative`` cannot matter, or None when it must be detected."""
    parts = relative.split("/")
    if parts[-1] == "learned-from.json":
        return "learned-from: logging only"
    key = {"manifest.json": "versions", "concepts.json": "recipe"}.get(parts[-1])
    span = _span(original.decode(), key) if key else None
    if span is not None and span[0] <= offset < span[1]:
        return f"{key}: provenance only"
    return None


def _kind(relative: str) -> str:
    """What sort of file: one repaired sample of each."""
    name = relative.rsplit("/", 1)[-1]
    if "/images/" in relative or "/real/" in relative:
        return relative.split("/")[-2]
    if name.startswith("class_"):
        return "embedding"
    return name


def test_every_flipped_byte_is_detected_and_repaired_or_provably_harmless(tmp_path, reference, pipe):
    rng = np.random.default_rng(18)
    cache = copy_cache(reference.cache, tmp_path / "flips")
    store = cache / reference.store.name
    files = sorted(relative for relative, data in reference.files.items() if data)
    files += sorted(p.relative_to(cache).as_posix() for p in (store / "work").rglob("*") if p.is_file())
    outcomes, samples = {"detected": 0, "harmless": 0}, {}
    for relative in files:
        path = cache / relative
        original = path.read_bytes()
        for offset in rng.integers(0, len(original), TRIALS_PER_FILE):
            damaged = bytearray(original)
            damaged[offset] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(damaged))
            try:
                if _detected(store):
                    outcomes["detected"] += 1
                    samples.setdefault(_kind(relative), (relative, int(offset), bytes(damaged)))
                else:
                    reason = _harmless(relative, int(offset), original)
                    assert reason is not None, f"a flip of byte {offset} of {relative} went unnoticed"
                    outcomes["harmless"] += 1
                    samples.setdefault(f"harmless {reason}", (relative, int(offset), bytes(damaged)))
            finally:
                path.write_bytes(original)
    assert sum(outcomes.values()) == len(files) * TRIALS_PER_FILE >= 300
    assert outcomes["detected"] > 0.9 * sum(outcomes.values()), outcomes

    for number, (kind, (relative, offset, damaged)) in enumerate(sorted(samples.items())):
        trial = copy_cache(reference.cache, tmp_path / f"repair-{number}")
        (trial / relative).write_bytes(damaged)
        if not kind.startswith("harmless"):
            assert verify(trial / reference.store.name)[0] == 1, (kind, relative, offset)
        wrapper, _ = prepare(trial, pipe)
        if kind.startswith("harmless learned-from"):  # prepare() knows better: it writes it again from the job
            assert wrapper.report.generated == [] and cache_files(trial) == reference.files
        elif kind.startswith("harmless"):
            assert wrapper.report.generated == [] and wrapper.report.repaired == []
            assert {k: v for k, v in cache_files(trial).items() if k != relative} == {
                k: v for k, v in reference.files.items() if k != relative}
        else:
            assert cache_files(trial) == reference.files, (kind, relative, offset)
        assert verify(trial / reference.store.name)[0] == 0, (kind, relative, offset)


def test_every_image_cut_or_emptied_with_its_checksums_made_to_agree_is_found(tmp_path, reference):
    """Damage no checksum can see (the checksums rewritten to match): verify decodes every image and names it, and
    prepare()'s cheaper check (the format's start and end, a header PIL reads) finds each one too."""
    rng = np.random.default_rng(26)
    store_path = reference.store
    images = sorted(p.relative_to(store_path / "classes").as_posix()
                    for p in (store_path / "classes").glob("*/*/*.png"))
    assert len(images) == 18  # 12 synthetic, 6 real
    for number, relative in enumerate(images):
        class_index, name = int(relative.split("/")[0]), relative.split("/", 1)[1]
        original = (store_path / "classes" / relative).read_bytes()
        for cut in (0, int(rng.integers(1, len(original) - 1))):
            trial = copy_cache(reference.cache, tmp_path / f"cut-{number}-{cut}") / store_path.name
            rewrite_consistently(trial, class_index, name, original[:cut])
            status, lines, _ = verify(trial)
            assert status == 1 and len(lines) == 1, (relative, cut, lines)
            assert lines[0].split(": ", 1)[1].startswith(f"{name} is not a readable image"), (relative, cut, lines)
            store = SyntheticStore.open(trial)
            assert [(p.class_index, p.file) for p in store.verify([class_index])] == [(class_index, name)]
            shutil.rmtree(trial.parent)
