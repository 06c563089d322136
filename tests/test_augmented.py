"""DiffIIAugmented end to end on the tiny pipeline: generation, caching, sampling, workers, faults."""

import collections
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms.functional import pil_to_tensor

from diffii_datasets import DiffIIConfig
from diffii_datasets.hashing import image_digest
from diffii_datasets.testing import tiny_pipeline
from tests.helpers import ROOT
from tests.helpers.augment import FAST_CONFIG, make_dataset, make_wrapper


HANG_S = 1800  # a subprocess's limit only catches a hang: a slow machine never fails a test


def _worker(*args):
    """Command and environment of a worker process that computes exactly as this process does."""
    env = {**os.environ, "DIFFII_TEST_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "tests.helpers.augment_worker", *map(str, args)], env


def _store_files(store_path):
    """Every file of a store that defines its content (locks and scratch excluded)."""
    root = Path(store_path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in ("locks", "work")}


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, pipe):
    """One generated store, shared read-only by the tests below."""
    cache = tmp_path_factory.mktemp("cache")
    return make_wrapper(make_dataset(), cache, pipeline=pipe).prepare()


def _count_unet_calls(pipe):
    calls = []
    handle = pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_prepare_generates_a_complete_store_with_provenance(prepared):
    ds = prepared
    assert ds.classes == make_dataset().classes and len(ds) == 6
    manifest = ds.store.manifest()
    counts = collections.Counter(ds.synthetic.targets)
    assert counts == {0: 6, 1: 4, 2: 2}  # int(2.0 * N) per class
    assert manifest["complete"] and manifest["total_images"] == 12
    for i in range(len(ds.synthetic)):
        meta = ds.synthetic.metadata(i)
        assert meta["label"] == ds.synthetic.targets[i]
        assert Path(meta["path"]).is_file() and meta["suffix"]
        if meta["label"] == 2:  # a single real image: generation starts from noise
            assert meta["source_indices"] == [] and meta["lam"] is None
        else:
            a, b = meta["source_indices"]
            assert 0 <= a < b < (3 if meta["label"] == 0 else 2) and meta["lam"] >= 0
    image, label = ds.synthetic[0]
    assert image.size == (32, 32) and label == 0


def test_second_construction_does_no_diffusion_work(prepared, pipe):
    calls, handle = _count_unet_calls(pipe)
    try:
        again = make_wrapper(make_dataset(), prepared.cache_dir, pipeline=pipe).prepare()
    finally:
        handle.remove()
    assert calls == []
    assert again.store.path == prepared.store.path
    assert again.synthetic.targets == prepared.synthetic.targets


def test_model_dir_is_loaded_only_when_needed(tmp_path, pipe, monkeypatch):
    pipe.save_pretrained(tmp_path / "model")
    config = DiffIIConfig.from_dict({**FAST_CONFIG.to_dict(), "model": str(tmp_path / "model")})
    first = make_wrapper(make_dataset(num_classes=2, per_class=(2, 2)), tmp_path / "cache", config=config)
    assert len(first.prepare().synthetic) == 8

    import diffii_datasets.diffusion.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "load_pipeline", lambda *a, **k: pytest.fail("pipeline was loaded"))
    second = make_wrapper(make_dataset(num_classes=2, per_class=(2, 2)), tmp_path / "cache", config=config)
    assert second.prepare().store.path == first.store.path


def _classify(ds, epochs):
    """For each draw: (base index, returned label, 'synthetic' | 'real', class of the returned image)."""
    synthetic = {image_digest(ds.synthetic[i][0]): ds.synthetic.targets[i] for i in range(len(ds.synthetic))}
    real = {image_digest(ds.original[i][0]): ds.original.targets[i] for i in range(len(ds.original))}
    draws = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, label = ds[i]
            digest = image_digest(image)
            kind, owner = ("synthetic", synthetic[digest]) if digest in synthetic else ("real", real[digest])
            draws.append((i, label, kind, owner))
    return draws


def test_replace_mode_statistics_and_class(prepared):
    draws = _classify(prepared, epochs=150)
    share = sum(kind == "synthetic" for _, _, kind, _ in draws) / len(draws)
    assert abs(share - 0.5) < 0.04
    targets = prepared.original.targets
    assert all(label == targets[i] == owner for i, label, _, owner in draws)
    prepared.set_epoch(3)
    first = [image_digest(prepared[i][0]) for i in range(len(prepared))]
    prepared.set_epoch(3)
    assert first == [image_digest(prepared[i][0]) for i in range(len(prepared))]


def test_class_balanced_replacement_follows_inverse_counts(prepared):
    balanced = pickle.loads(pickle.dumps(prepared))
    balanced.class_balanced = True
    draws = _classify(balanced, epochs=300)
    replaced = collections.Counter(owner for _, _, kind, owner in draws if kind == "synthetic")
    total = sum(replaced.values())
    weights = np.array([1 / 4, 1 / 3, 1 / 2])
    expected = weights / weights.sum()
    for c in range(3):
        assert abs(replaced[c] / total - expected[c]) < 0.04
    assert all(label == owner for _, label, _, owner in draws)


def test_concat_mode_appends_every_synthetic_item(prepared):
    concat = make_wrapper(prepared.original, prepared.cache_dir, mode="concat", pipeline=None,
                          config=prepared.config)
    assert len(concat) == 6 + 12
    assert concat.targets == prepared.original.targets + prepared.synthetic.targets
    assert image_digest(concat[6][0]) == image_digest(prepared.synthetic[0][0])
    assert image_digest(concat[0][0]) == image_digest(prepared.original[0][0])


def test_dataloader_with_workers_matches_single_process(prepared):
    ds = pickle.loads(pickle.dumps(prepared))
    ds.transform = pil_to_tensor
    ds.set_epoch(1)
    single = [(x, y) for x, y in DataLoader(ds, batch_size=4, num_workers=0)]
    multi = [(x, y) for x, y in DataLoader(ds, batch_size=4, num_workers=2)]
    assert len(single) == len(multi) == 2
    for (xa, ya), (xb, yb) in zip(single, multi):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_dataloader_workers(prepared, context):
    ds = pickle.loads(pickle.dumps(prepared))
    ds.transform = pil_to_tensor
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    draws = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        images = torch.cat([x for x, _ in loader])  # the same two worker processes every epoch
        assert torch.equal(images, torch.cat([x for x, _ in DataLoader(ds, batch_size=2, num_workers=0)]))
        draws.append(images)
    assert not (torch.equal(draws[0], draws[1]) and torch.equal(draws[1], draws[2]))
    copy = pickle.loads(pickle.dumps(ds))
    copy.set_epoch(7)
    assert ds.epoch == 2 and copy.epoch == 7  # a copy has an epoch of its own


def test_pickles_without_pipeline(prepared, pipe):
    ds = make_wrapper(prepared.original, prepared.cache_dir, pipeline=pipe)
    data = pickle.dumps(ds)  # pickling prepares: workers never generate
    assert ds._pipeline is None and len(data) < 200_000
    assert pickle.loads(data)[0][1] in range(3)


def test_wraps_imagefolder_and_subset(tmp_path, pipe):
    base = make_dataset(num_classes=2, per_class=(2, 2))
    for i, (image, label) in enumerate(base):
        folder = tmp_path / "folder" / base.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    folder_ds = make_wrapper(ImageFolder(str(tmp_path / "folder")), tmp_path / "cache", pipeline=pipe).prepare()
    assert folder_ds.classes == sorted(base.classes) and len(folder_ds.synthetic) == 8

    subset = Subset(make_dataset(num_classes=3, per_class=(3, 3, 3)), [0, 1, 3, 4, 6, 7])
    wrapped = make_wrapper(subset, tmp_path / "cache", pipeline=pipe).prepare()
    assert wrapped.classes == make_dataset().classes and wrapped.targets == [0, 0, 1, 1, 2, 2]


def test_accepts_tensor_and_ndarray_images_and_tensor_labels(tmp_path, pipe):
    base = make_dataset(num_classes=2, per_class=(2, 1))
    items = [(pil_to_tensor(image), torch.tensor(label)) if i % 2 else (np.asarray(image), label)
             for i, (image, label) in enumerate(base)]
    ds = make_wrapper(items, tmp_path / "cache", pipeline=pipe, classes=base.classes).prepare()
    assert ds.targets == [0, 0, 1]


@pytest.mark.parametrize("items, classes, error, match", [
    ([], ["a"], ValueError, "base_dataset is empty"),
    ([("not", "pairs", "!")], ["a"], TypeError, r"base_dataset\[0\] must be an \(image, label\) pair"),
    ([(np.zeros((8, 8, 3), np.uint8), 5)], ["a", "b"], ValueError, r"label 5, outside the 2 classes"),
    ([(np.zeros((8, 8, 3), np.uint8), "cat")], ["a"], TypeError,
     r"the label of base_dataset\[0\] must be an int or a 0-d integer tensor, got str 'cat'"),
])
def test_bad_base_datasets_are_clear_errors(tmp_path, pipe, items, classes, error, match):
    with pytest.raises(error, match=match):
        make_wrapper(items, tmp_path, pipeline=pipe, classes=classes).prepare()


def test_bad_arguments_are_clear_errors(tmp_path, pipe):
    base = make_dataset()
    with pytest.raises(ValueError, match="mode must be one of"):
        make_wrapper(base, tmp_path, mode="mix")
    with pytest.raises(ValueError, match="synthetic_probability"):
        make_wrapper(base, tmp_path, synthetic_probability=1.5)
    with pytest.raises(ValueError, match="pass classes="):
        make_wrapper([(np.zeros((8, 8, 3), np.uint8), 0)], tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cache_dir must be a writable directory"):
        make_wrapper(base, tmp_path / "file", pipeline=pipe).prepare()


def test_an_edited_header_in_the_cache_is_explained_and_repaired(prepared, pipe):
    # The store's directory is named after its header, so another config in it is damage, not another setup:
    # the differing fields are named and the header written again (another setup at a path of the user's
    # choosing is a StoreMismatchError: tests/test_store.py).
    header_path = prepared.store.path / "store.json"
    original = header_path.read_text()
    header = json.loads(original)
    header["config"]["guidance_scale"] = 3.0
    header_path.write_text(json.dumps(header))
    try:
        with pytest.warns(RuntimeWarning, match=r"config\.guidance_scale: store has 3\.0, requested 7\.5"):
            again = make_wrapper(make_dataset(), prepared.cache_dir, pipeline=pipe).prepare()
        assert header_path.read_text() == original
        assert [p.file for p in again.report.repaired] == ["store.json"] and again.report.generated == []
    finally:
        header_path.write_text(original)


def test_corrupt_and_deleted_images_are_detected_and_regenerated(tmp_path, prepared, pipe):
    import shutil

    shutil.copytree(prepared.cache_dir, tmp_path / "cache")
    reference = _store_files(prepared.store.path)
    store_path = tmp_path / "cache" / prepared.store.path.name
    (store_path / "classes/00001/images/00002.png").unlink()
    target = store_path / "classes/00000/images/00000.png"
    target.write_bytes(target.read_bytes()[:-30] + bytes(30))
    with pytest.warns(RuntimeWarning, match="will be regenerated") as caught:
        ds = make_wrapper(make_dataset(), tmp_path / "cache", pipeline=pipe).prepare()
    assert {str(w.message).split("class ")[1][:1] for w in caught} == {"0", "1"}
    assert _store_files(ds.store.path) == reference


def test_kill_during_generation_then_prepare_equals_uninterrupted_run(tmp_path, prepared, pipe):
    cache = tmp_path / "cache"
    command, env = _worker(cache, "--kill-in-class", 1, "--kill-after", 2)
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert killed.returncode == -9, killed.stderr
    store_path = cache / prepared.store.path.name
    assert (store_path / "classes/00000/class.json").is_file()
    assert not (store_path / "classes/00001").exists() and list((store_path / "classes").glob(".tmp-00001-*"))
    command, env = _worker(cache)
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1]) == {"generated": [1, 2], "skipped": [0]}
    assert _store_files(store_path) == _store_files(prepared.store.path)


def test_two_processes_preparing_at_once_generate_each_class_once(tmp_path, prepared):
    cache = tmp_path / "cache"
    command, env = _worker(cache)
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    generated = [c for r in results for c in r["generated"]]
    assert sorted(generated) == [0, 1, 2]
    for r in results:
        assert sorted(r["generated"] + r["skipped"]) == [0, 1, 2]
    assert _store_files(cache / prepared.store.path.name) == _store_files(prepared.store.path)


def _drawn_by_numpy(seed, epoch, index, label, probability, pool_sizes, weights):
    """0.2's replace-mode draw of one item, a numpy Generator each: ``(class, position in its pool)`` or -1."""
    rng = np.random.default_rng([seed, epoch, index])
    if not rng.random() < probability:
        return label, -1
    if weights is not None:
        label = int(rng.choice(len(weights), p=weights))
    return (label, int(rng.integers(pool_sizes[label]))) if pool_sizes[label] else (label, -1)


@pytest.mark.parametrize("seed, epoch", [(0, 0), (0, 1), (7, 3), (2**32, 5), (2**63 - 1, 2), (12345, 2**32 - 1)])
@pytest.mark.parametrize("balanced", [False, True])
def test_the_draws_of_epochs_are_the_per_item_numpy_draws_of_0_2(seed, epoch, balanced):
    """Every item of some epochs is drawn at once (PCG64 in numpy), exactly as one Generator per item drew it."""
    from diffii_datasets.replacement import replace_draws

    rng = np.random.default_rng(seed % 1000 + epoch)
    pool_sizes = np.array([0, 1, 2, 7, 1000, 3_000_000_000, 5_000_000_000])  # the last two: Lemire rejects often,
    targets = rng.integers(0, len(pool_sizes), 1500)                        # and above 2**32 - 1
    weights = None
    if balanced:
        weights = np.array([1.0 / (n + 1) if n else 0.0 for n in pool_sizes])
        weights /= weights.sum()
    epochs = [epoch, epoch + 1, epoch + 2]  # with 2**32 - 1: one of them is two words of entropy
    for probability in (0.5, 1.0):
        labels, positions = replace_draws(seed, epochs, targets, probability, pool_sizes, weights)
        assert labels.shape == positions.shape == (3, len(targets))
        for row, drawn_epoch in enumerate(epochs):
            expected = [_drawn_by_numpy(seed, drawn_epoch, i, int(t), probability, pool_sizes, weights)
                        for i, t in enumerate(targets)]
            assert [(int(c), int(k)) if k >= 0 else -1 for c, k in zip(labels[row], positions[row])] == [
                (c, k) if k >= 0 else -1 for c, k in expected]
    assert (replace_draws(seed, epochs, targets, 0.0, pool_sizes, weights)[1] == -1).all()
