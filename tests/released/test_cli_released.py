"""``diffii-datasets released``, ``generate --released`` and the Hub builder's ``released=True``, in process,
against the local stand-in for the Hub: the released concepts are used and nothing is learned."""

from __future__ import annotations

import pytest

from diffii_datasets.cli import main
from diffii_datasets.store import SyntheticStore
from tests.helpers.cli import CLASS_NAMES, EXPECTED_COUNTS, FAST_FLAGS, make_inputs, store_path_from
from tests.released.fakehub import COMMIT, FakeHub, hub_at, release_archives, unreachable_url, unzipped, write_tree


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_pipe):
    """The fake CUB root, the tiny model on disk and the fake release's archives."""
    root, model = make_inputs(tmp_path_factory.mktemp("cli-released"))
    files, _ = release_archives(tiny_pipe.unet)
    return root, model, files


@pytest.fixture
def hub(inputs, monkeypatch, tmp_path):
    with FakeHub(inputs[2]) as hub:
        hub_at(monkeypatch, hub.url, tmp_path / "hub-cache")
        yield hub


@pytest.fixture
def no_learning(monkeypatch):
    """Make any concept learning fail loudly; the list records attempts (a test asserts it stays empty)."""
    calls = []

    def learner(*args, **kwargs):
        calls.append(args)
        raise AssertionError("concepts must not be learned with --released")

    monkeypatch.setattr("diffii_datasets.diffusion.concepts.learn_concepts", learner)
    monkeypatch.setattr("diffii_datasets.diffusion.concepts.training.learn_concepts", learner)
    return calls


def _fast_flags_for_released():
    """FAST_FLAGS less the ones --released refuses: --suffixes and the concept-learning knobs."""
    pairs = zip(FAST_FLAGS[::2], FAST_FLAGS[1::2])
    return [item for flag, value in pairs if flag != "--suffixes" and not flag.startswith("--concept-")
            for item in (flag, value)]


def test_released_command_prints_what_it_found(inputs, hub, tmp_path, capsys):
    root = inputs[0]
    assert main(["released", "cub-5shot", "--cache-dir", str(tmp_path / "cache"), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"Luka-Wang/Diff-II at commit {COMMIT}" in out
    assert "embeddings: ft_ti_db.zip:ft_ti_db/cub/5shot/learned_embeds-steps-35000.bin ->" in out
    assert "train_list: 5 images in 3 classes" in out and "test_list: 3 images in 3 classes" in out
    assert main(["released", "cub-5shot", "--root", str(root), "--cache-dir", str(tmp_path / "cache"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "concepts: 3 classes (metaclass 'bird'), 1 vector(s) of 32 per class, LoRA rank 2" in out
    assert "suffixes: 3, e.g. 'a photo of a <class_0> bird standing on a branch.'" in out
    assert "training subset: 5 images" in out and "test list: 3 images" in out
    assert hub.gets() == {"ft_ti_db.zip": 1, "suffix.zip": 1, "datasets.zip": 1}


def test_released_command_reads_a_local_copy_without_the_network(inputs, hub, tmp_path, capsys):
    root, _, files = inputs
    copy = tmp_path / "Diff-II"
    for data in files.values():
        write_tree(copy, unzipped(data))
    assert main(["released", "cub-5shot", "--released-from", str(copy), "--root", str(root), "--cache-dir",
                 str(tmp_path / "cache"), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"cub-5shot: the authors' released artifacts (the local copy {copy} (local:" in out
    assert f"  embeddings: {copy}/ft_ti_db/cub/5shot/learned_embeds-steps-35000.bin\n" in out
    assert "concepts: 3 classes (metaclass 'bird')" in out and "training subset: 5 images" in out
    assert hub.requests == []
    assert main(["released", "cub-5shot", "--released-from", str(copy), "--revision", "main"]) == 1
    assert ("--revision applies to the download from the Hugging Face Hub; --released-from reads a local copy "
            "instead: drop --revision") in capsys.readouterr().err
    assert main(["released", "cub-5shot", "--released-from", str(tmp_path / "absent")]) == 1
    assert f"--released-from {tmp_path / 'absent'}: no such folder" in capsys.readouterr().err


def test_released_command_without_the_hub_fails_at_once_in_one_line(monkeypatch, tmp_path, capsys):
    import time

    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    hub_at(monkeypatch, unreachable_url(), tmp_path / "hub-cache")
    assert main(["released", "cub-5shot", "--cache-dir", str(tmp_path / "cache"), "-q"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and sleeps == []
    assert "diffii-datasets released: error: could not get ft_ti_db.zip" in captured.err
    assert "HF_HUB_OFFLINE=1" in captured.err and "hf download Luka-Wang/Diff-II ft_ti_db.zip" in captured.err


def test_generate_released_uses_the_released_concepts_without_learning(inputs, hub, no_learning, tmp_path,
                                                                       capsys):
    from diffii_datasets.released import load_released

    root, model, _ = inputs
    cache = tmp_path / "stores"
    args = ["generate", "cub-5shot", "--released", "--root", str(root), "--cache-dir", str(cache), "--model",
            str(model), "--device", "cpu", "--quiet", *_fast_flags_for_released()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert no_learning == []
    assert "no concepts learned" in out and "from " + str(root) in out
    store = SyntheticStore.open(store_path_from(out))
    released = load_released("cub-5shot", root, cache_dir=cache, progress=False)
    assert store.header.concepts == released.concepts.identity()
    assert list(store.header.classes) == CLASS_NAMES
    assert list(store.header.expected_counts) == EXPECTED_COUNTS  # 2, 2, 1 real images, expansion 2
    assert list(store.header.config.suffixes) == released.suffixes.spec()
    assert not (cache / "concepts").exists()

    # The Hub builder reaches the same store (nothing to generate, nothing learned).
    from diffii_datasets.hf import DiffIIBuilder

    knobs = {"resolution": 32, "expansion_rate": 2.0, "inversion_steps": 4, "denoising_steps": 3, "batch_size": 4,
             "concept_train_steps": 3, "concept_batch_size": 2, "concept_checkpoint_steps": 2,
             "concept_resolution": 32}
    builder = DiffIIBuilder(config_name="cub-5shot", data_dir=str(root), released=True, model=str(model),
                            cache_dir=str(tmp_path / "hf"), diffii_cache_dir=str(cache), progress=False, **knobs)
    assert builder.config.released == COMMIT
    builder.download_and_prepare()
    assert builder.store.path == store.path and no_learning == []
    dataset = builder.as_dataset()
    assert dataset["train"].num_rows == 5 and dataset["test"].num_rows == 3
    assert dataset["synthetic"].num_rows == sum(EXPECTED_COUNTS)
    # So does the wrapper built from the released setting.
    augmented = released.augmented(config=released.diffii_config(model=str(model), seed=0, **knobs),
                                   cache_dir=cache, device="cpu", progress=False)
    assert augmented.store.path == store.path and no_learning == []
    assert len(augmented.synthetic) == sum(EXPECTED_COUNTS) and len(augmented.original) == 5
    with pytest.raises(ValueError, match="drop suffixes="):
        DiffIIBuilder(config_name="cub-5shot", data_dir=str(root), released=True, suffixes="builtin",
                      cache_dir=str(tmp_path / "hf"))


@pytest.mark.parametrize("extra, message", [
    (["--concepts", "somewhere"], "drop --concepts"),
    (["--suffixes", "builtin"], "drop --suffixes"),
    (["--subset-seed", "3"], "drop --subset-seed"),
])
def test_generate_released_refuses_flags_it_would_override(tmp_path, capsys, extra, message):
    args = ["generate", "cub-5shot", "--released", "--root", str(tmp_path), *extra]
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_generate_refuses_released_for_a_family_and_revision_without_released(tmp_path, capsys):
    assert main(["generate", "cub", "--shots", "7", "--released", "--root", str(tmp_path)]) == 1
    assert "the paper's settings only" in capsys.readouterr().err
    assert main(["generate", "cub-5shot", "--revision", "main", "--root", str(tmp_path)]) == 1
    assert "--revision applies to the released artifacts: add --released" in capsys.readouterr().err
