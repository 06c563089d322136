"""Concept checkpoints that survive damage, kills and full disks; concept sets that are never half-written."""

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from diffii_datasets.diffusion.concepts import ConceptConfig, ConceptSet, learn_concepts
from diffii_datasets.diffusion.concepts.checkpoint import (
    CHECKPOINT_FILE,
    PREVIOUS_FILE,
    checkpoint_problems,
    steps_done,
)
from diffii_datasets.diffusion.concepts.writing import ConceptWriteError
from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

CONFIG = ConceptConfig(train_steps=9, checkpoint_steps=3, batch_size=2, lora_rank=2, learning_rate=1e-3,
                       resolution=32)
LOGGER = "diffii_datasets.diffusion.concepts.training"


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def case():
    dataset = tiny_image_dataset(2, 2, seed=3)
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(2)]
    uninterrupted = learn_concepts(tiny_pipeline(0), images, dataset.classes, "shape", CONFIG, progress=False)
    return {"images": images, "names": dataset.classes, "uninterrupted": uninterrupted}


def _learn(case, work_dir, **kwargs):
    steps = []

    def callback(step, loss):
        steps.append(step)
        if kwargs.get("stop_at") == step:
            raise Stop

    try:
        concepts = learn_concepts(tiny_pipeline(0), case["images"], case["names"], "shape", CONFIG,
                                  work_dir=work_dir, progress=False, callback=callback)
    except Stop:
        concepts = None
    return concepts, steps


def _interrupted(case, work_dir):
    """Checkpoints at steps 3 and 6 (the newest), then the run stops at step 7."""
    _learn(case, work_dir, stop_at=7)
    assert json.loads((work_dir / CHECKPOINT_FILE).read_text())["step"] == 6
    assert json.loads((work_dir / PREVIOUS_FILE).read_text())["step"] == 3
    assert sorted(p.name for p in work_dir.glob("*.safetensors")) == [
        "concepts-checkpoint-00000003.safetensors", "concepts-checkpoint-00000006.safetensors"]
    assert checkpoint_problems(work_dir) == []


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _assert_same_weights(concepts, expected):
    assert concepts.identity() == expected.identity()


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(case, tmp_path, caplog):
    _interrupted(case, tmp_path)
    _flip(tmp_path / "concepts-checkpoint-00000006.safetensors", -5)  # a flipped bit in the tensor data
    (problem,) = checkpoint_problems(tmp_path)
    assert problem.startswith(f"{tmp_path / CHECKPOINT_FILE}: its tensor file concepts-checkpoint-00000006."
                              "safetensors is corrupt or truncated (SHA-256 differs); the next run discards it and "
                              "resumes from the previous one (step 3)")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        concepts, steps = _learn(case, tmp_path)
    assert steps == list(range(4, 10))
    _assert_same_weights(concepts, case["uninterrupted"])
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (f"discarding a damaged concept-learning checkpoint, {tmp_path / CHECKPOINT_FILE} (step 6): "
                       "its tensor file concepts-checkpoint-00000006.safetensors is corrupt or truncated (SHA-256 "
                       "differs); learning resumes from step 3")
    assert checkpoint_problems(tmp_path) == []
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text())["step"] == 9


@pytest.mark.parametrize("damage", ["edited step", "truncated json", "tensors missing"])
def test_other_damage_to_the_newest_checkpoint_falls_back_too(case, tmp_path, damage):
    _interrupted(case, tmp_path)
    newest = tmp_path / CHECKPOINT_FILE
    if damage == "edited step":  # still valid, canonical JSON: only the checksum can tell
        newest.write_text(newest.read_text().replace('"step": 6', '"step": 5'))
        reason = "its checksum does not match its content"
    elif damage == "truncated json":
        newest.write_bytes(newest.read_bytes()[:40])
        reason = "is not valid JSON"
    else:
        (tmp_path / "concepts-checkpoint-00000006.safetensors").unlink()
        reason = "its tensor file concepts-checkpoint-00000006.safetensors is missing"
    problem, *rest = checkpoint_problems(tmp_path)
    assert reason in problem and "resumes from the previous one (step 3)" in problem
    # a damaged JSON no longer describes its tensor file: that goes too
    assert rest == ([] if damage == "tensors missing" else [
        f"{tmp_path / 'concepts-checkpoint-00000006.safetensors'}: a tensor file no checkpoint describes (left by an "
        "interrupted write); the next run removes it"])
    concepts, steps = _learn(case, tmp_path)
    assert steps == list(range(4, 10))
    _assert_same_weights(concepts, case["uninterrupted"])
    assert checkpoint_problems(tmp_path) == []


def test_with_both_checkpoints_damaged_learning_starts_over(case, tmp_path, caplog):
    _interrupted(case, tmp_path)
    for step in (3, 6):
        _flip(tmp_path / f"concepts-checkpoint-0000000{step}.safetensors", 100)
    problems = checkpoint_problems(tmp_path)
    assert len(problems) == 2 and "resumes from step 0" in problems[0] and "the next run removes it" in problems[1]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        concepts, steps = _learn(case, tmp_path)
    assert steps == list(range(1, 10))
    _assert_same_weights(concepts, case["uninterrupted"])
    assert [r.getMessage().rsplit("; ", 1)[-1] for r in caplog.records] == ["learning resumes from the start"] * 2
    assert checkpoint_problems(tmp_path) == []


def test_deleting_the_checkpoint_starts_over_and_leaves_nothing_behind(case, tmp_path):
    _interrupted(case, tmp_path)
    (tmp_path / CHECKPOINT_FILE).unlink()  # what "delete it to start over" meant, and still means
    problems = checkpoint_problems(tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"left without {CHECKPOINT_FILE} (deleted to start over?); the next run removes it",
        "a tensor file no checkpoint describes (left by an interrupted write); the next run removes it",
        "a tensor file no checkpoint describes (left by an interrupted write); the next run removes it"]
    concepts, steps = _learn(case, tmp_path)
    assert steps == list(range(1, 10))
    assert checkpoint_problems(tmp_path) == []


# A run killed while it writes its second checkpoint's tensors (after the temporary file, before the rename).
KILLED_WHILE_WRITING = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(int(os.environ["DIFFII_TEST_THREADS"]))  # float results depend on it: as the parent's
    import diffii_datasets._io as io
    from diffii_datasets.diffusion.concepts import ConceptConfig, learn_concepts
    from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline
    replace = os.replace
    def dying_replace(source, target):
        if str(target).endswith("concepts-checkpoint-00000006.safetensors"):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(source, target)
    io.os.replace = dying_replace
    dataset = tiny_image_dataset(2, 2, seed=3)
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(2)]
    config = ConceptConfig(train_steps=9, checkpoint_steps=3, batch_size=2, lora_rank=2, learning_rate=1e-3,
                           resolution=32)
    learn_concepts(tiny_pipeline(0), images, dataset.classes, "shape", config, work_dir=sys.argv[1], progress=False)
""")


def test_a_kill_while_writing_leaves_a_temporary_file_that_is_reported_and_then_removed(case, tmp_path):
    result = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(tmp_path)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": "0",
                                                         "DIFFII_TEST_THREADS": str(torch.get_num_threads())})
    assert result.returncode == -9, result.stderr[-2000:]
    (temp,) = tmp_path.glob(".concepts-checkpoint-00000006.safetensors.tmp-*")
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text())["step"] == 3  # the last good one, intact
    # a live writer's temporary file is not a problem (nor removed): one of the process that started this one
    live = tmp_path / f".concepts-checkpoint.json.tmp-{os.getppid()}"
    live.write_text("{")
    assert checkpoint_problems(tmp_path) == [
        f"{temp}: a temporary file left by a killed write; the next run removes it"]
    concepts, steps = _learn(case, tmp_path)
    assert steps == list(range(4, 10))
    _assert_same_weights(concepts, case["uninterrupted"])
    assert not temp.exists() and live.exists()
    live.unlink()
    assert checkpoint_problems(tmp_path) == []


def _full_disk_on(monkeypatch, name):
    """Make ``os.fsync`` fail with ENOSPC for files whose name contains ``name`` (as a full disk does on close)."""
    fsync = os.fsync

    def full(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", full)


def test_a_full_disk_while_checkpointing_names_the_file_and_keeps_the_last_good_checkpoint(
        case, tmp_path, monkeypatch):
    _full_disk_on(monkeypatch, "concepts-checkpoint-00000006.safetensors")
    with pytest.raises(ConceptWriteError) as raised:
        _learn(case, tmp_path)
    error = raised.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert error.path == tmp_path / "concepts-checkpoint-00000006.safetensors" and error.filename == str(error.path)
    assert error.needed_bytes > (tmp_path / "concepts-checkpoint-00000003.safetensors").stat().st_size
    assert str(error).startswith(f"No space left on device while writing {error.path}: this write needs about ")
    assert str(error).endswith(f"; free at least that much on the file system holding {tmp_path}")
    monkeypatch.undo()
    assert checkpoint_problems(tmp_path) == []  # no temporary file, the step-3 checkpoint intact
    concepts, steps = _learn(case, tmp_path)
    assert steps == list(range(4, 10))
    _assert_same_weights(concepts, case["uninterrupted"])


def test_a_full_disk_while_saving_concepts_names_the_file_and_leaves_no_half_written_set(
        case, tmp_path, monkeypatch):
    concepts = case["uninterrupted"]
    _full_disk_on(monkeypatch, "pytorch_lora_weights.safetensors")
    expected = (r"^No space left on device while writing .*pytorch_lora_weights\.safetensors: this write needs "
                r"about .* KiB; free at least")
    with pytest.raises(ConceptWriteError, match=expected) as raised:
        concepts.save(tmp_path / "new")
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.needed_bytes >= sum(v.numel() * 4 for v in concepts.lora_state_dict.values())
    assert list(tmp_path.iterdir()) == []  # neither the set nor its staging folder
    # over an existing set: it stays as it was
    monkeypatch.undo()
    other = ConceptSet(case["names"], "shape", concepts.embeddings + 1, concepts.lora_state_dict)
    other.save(tmp_path / "old")
    before = {p: p.read_bytes() for p in (tmp_path / "old").rglob("*") if p.is_file()}
    _full_disk_on(monkeypatch, "class_1.safetensors")
    with pytest.raises(ConceptWriteError, match="class_1.safetensors"):
        concepts.save(tmp_path / "old")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in (tmp_path / "old").rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert ConceptSet.load(tmp_path / "old").identity() == other.identity()
    concepts.save(tmp_path / "old")
    assert ConceptSet.load(tmp_path / "old").identity() == concepts.identity()


def test_a_save_killed_midway_leaves_a_staging_folder_the_next_save_removes(case, tmp_path):
    staging = tmp_path / ".set.tmp-999999999"  # a process id no process has
    (staging / "learned_embeds").mkdir(parents=True)
    (staging / "concepts.json").write_text("{}")
    case["uninterrupted"].save(tmp_path / "set")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert ConceptSet.load(tmp_path / "set").identity() == case["uninterrupted"].identity()


def test_checkpoint_problems_of_a_missing_or_empty_work_dir_are_none(tmp_path):
    assert checkpoint_problems(tmp_path / "absent") == [] and checkpoint_problems(tmp_path) == []
    (tmp_path / CHECKPOINT_FILE).write_text("not json")
    (problem,) = checkpoint_problems(str(tmp_path))
    assert problem.startswith(f"{tmp_path / CHECKPOINT_FILE}: is not valid JSON") and "resumes from step 0" in problem


def test_steps_done_reads_what_a_plan_needs(case, tmp_path):
    assert steps_done(tmp_path / "absent") == 0
    _interrupted(case, tmp_path)
    assert steps_done(tmp_path) == 6
    for c, step in ((0, 4), (1, 2)):  # separate_classes: one run per class
        (tmp_path / f"class-0000{c}").mkdir()
        (tmp_path / f"class-0000{c}" / CHECKPOINT_FILE).write_text(json.dumps({"step": step}))
    assert steps_done(tmp_path) == 6 + 4 + 2
