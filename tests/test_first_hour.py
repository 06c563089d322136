"""A new user's first hour (issues 19 and 25): the plan, its estimated time and the bars of a run, warnings at the
user's line, quiet libraries, an offline preset, and the wrapper following torchvision's conventions (repr, negative
indices, targets, concepts, cache location)."""

import logging
import warnings
from pathlib import Path

import pytest
from torchvision import transforms
from torchvision.datasets import FakeData, ImageFolder

from diffii_datasets import DiffIIAugmented, DiffIIConfig
from diffii_datasets.config import PRESETS, TINY_MODEL
from diffii_datasets.diffusion.concepts import ConceptSet
from diffii_datasets.hashing import image_digest
from diffii_datasets.job import build_job
from diffii_datasets.prepare import prepare
from diffii_datasets.store import SyntheticStore, default_cache_dir
from diffii_datasets.store.cache import store_path
from tests.helpers.augment import FAST_CONFIG, make_dataset, make_wrapper
from tests.helpers.cli import SAMPLE_DIR


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_pipe):
    return make_wrapper(make_dataset(), tmp_path_factory.mktemp("cache"), pipeline=tiny_pipe).prepare()


# -- the work ahead, shown --------------------------------------------------------------------------------------------


def test_prepare_shows_the_plan_then_a_bar_and_an_eta_per_stage_and_nothing_from_the_libraries(
        tmp_path, tiny_pipe, capfd):
    config = FAST_CONFIG.replace(inversion_steps=8, denoising_steps=8, concept_train_steps=8)
    make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe, config=config, progress=True).prepare()
    err = capfd.readouterr().err
    plan = err[err.index("Diff-II plan:"):].splitlines()[:6]
    assert plan[0] == "Diff-II plan: 3 of 3 classes to generate; images at 32 px, concepts learned at 32 px"
    assert plan[1].split() == "concept learning 8 steps x batch 2 16 UNet evaluations (forward and backward)".split()
    assert plan[2].split() == "DDIM inversion 6 real images x 8 steps 48 UNet evaluations".split()
    assert plan[3].split() == "generation 12 synthetic images x 8 steps x 2 (guidance 7.5) 192 UNet evaluations".split()
    assert plan[4].split() == ["total", "256", "UNet", "evaluations"]
    assert plan[5].startswith("  estimated time    about ") and "UNet time probed on cpu: concept step" in plan[5]
    assert "\x1b" not in err  # stderr is not a terminal: whole lines, no cursor moves
    for bar in ("Learning concepts", "DDIM inversion: ", "generation: ", "12/12 img", "6/6 img", "img/s"):
        assert bar in err, bar
    for stage in ("concept learning", "DDIM inversion", "generation"):
        assert f"ETA {stage}: " in err, stage
    for noise in ("[transformers]", "mean_resizing", "No LoRA keys", "Warning", "deprecated"):
        assert noise not in err, noise


def test_a_quiet_prepare_writes_nothing_to_the_terminal(tmp_path, tiny_pipe, capfd):
    make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe, progress=False).prepare()
    assert capfd.readouterr().err == ""


# -- warnings, at the user's line -------------------------------------------------------------------------------------


def test_a_resolution_other_than_the_pipelines_warns_at_the_callers_line(tmp_path, tiny_pipe):
    wrapper = make_wrapper(make_dataset(num_classes=1, per_class=(2,)), tmp_path, pipeline=tiny_pipe,
                           config=FAST_CONFIG.replace(resolution=64, expansion_rate=0.5))
    with pytest.warns(UserWarning, match="resolution=64 differs from the pipeline's own 32 px") as caught:
        wrapper.prepare()
    (warning,) = [w for w in caught if "resolution=" in str(w.message)]
    assert warning.filename == __file__
    with warnings.catch_warnings():  # the pipeline's own size (FAST_CONFIG's 32 px) is not warned about
        warnings.simplefilter("error")
        make_wrapper(make_dataset(num_classes=1, per_class=(2,)), tmp_path, pipeline=tiny_pipe).prepare()


class _Stop(Exception):
    pass


def test_the_published_concept_steps_on_a_cpu_warn_with_the_estimate_before_they_start(tmp_path, tiny_pipe,
                                                                                       monkeypatch):
    def learn_a_little(*args, callback, **kwargs):  # stops before its first step
        raise _Stop

    monkeypatch.setattr("diffii_datasets.diffusion.concepts.learn_concepts", learn_a_little)
    wrapper = make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe,
                           config=FAST_CONFIG.replace(concept_train_steps=35_000))
    expected = (r"this run will take about .* on a CPU \([\d,]+ UNet evaluations, the published 35,000 "
                r"concept-learning steps among them\)\. Use a GPU .*--concept-train-steps.*"
                r"DiffIIConfig.preset\(\"tiny\"\), --model tiny")
    with pytest.warns(UserWarning, match=expected) as caught:
        with pytest.raises(_Stop):
            wrapper.prepare()  # progress off: the probe runs for the warning alone
    (warning,) = [w for w in caught if "on a CPU" in str(w.message)]
    assert warning.filename == __file__
    monkeypatch.setattr("diffii_datasets.diffusion.concepts.learn_concepts", learn_a_little)
    with warnings.catch_warnings():  # fewer steps: no warning
        warnings.simplefilter("error")
        with pytest.raises(_Stop):
            make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe,
                         config=FAST_CONFIG.replace(concept_train_steps=2_000)).prepare()


# -- offline in a minute: the tiny preset ---------------------------------------------------------------------------


def test_the_tiny_preset_names_the_offline_model_and_the_knobs_of_a_cpu_minute():
    tiny = DiffIIConfig.preset("tiny")
    assert tiny.model == TINY_MODEL == "tiny" and tiny == DiffIIConfig(**PRESETS["tiny"])
    assert (tiny.resolution, tiny.concept_resolution, tiny.concept_train_steps) == (32, 32, 20)
    assert DiffIIConfig.preset("tiny", seed=3).seed == 3 and DiffIIConfig.preset("paper") == DiffIIConfig()
    with pytest.raises(ValueError, match="preset must be one of 'paper', 'tiny', got 'small'"):
        DiffIIConfig.preset("small")


def test_the_quick_start_runs_offline_and_names_one_store_however_the_tiny_model_comes(tmp_path, tiny_pipe):
    config = DiffIIConfig.preset("tiny", concept_train_steps=2, inversion_steps=3, denoising_steps=2)
    train = DiffIIAugmented(ImageFolder(str(SAMPLE_DIR)), "shape", config=config, cache_dir=tmp_path,
                            progress=False)
    train.prepare()  # nothing passed but the preset: the tiny model is built, nothing downloaded
    assert train.store.header.model == "tiny" and len(train.synthetic) == 24
    by_pipeline = build_job(ImageFolder(str(SAMPLE_DIR)), "shape", config, pipeline=tiny_pipe)
    assert store_path(tmp_path, by_pipeline.header()) == train.store.path  # what the CLI and the demo make


def test_a_store_of_the_same_images_with_another_model_is_named_at_warning(tmp_path, caplog, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    dataset = make_dataset()
    tiny = build_job(dataset, "shape", FAST_CONFIG.replace(model="tiny"))
    SyntheticStore.create(store_path(tmp_path, tiny.header()), tiny.header()).close()
    other = build_job(dataset, "shape", FAST_CONFIG.replace(model="someone/other-model"))
    with caplog.at_level(logging.WARNING, logger="diffii_datasets.prepare"):
        with pytest.raises(OSError, match="'someone/other-model' is not in the local Hugging Face cache and "
                                          "downloads are disabled .*`hf download someone/other-model`"):
            prepare(other, cache_dir=tmp_path, progress=False)
    assert not [r for r in caplog.records if r.name.startswith("diffusers")]  # offline: the Hub is not tried
    (record,) = [r for r in caplog.records if r.name == "diffii_datasets.prepare"]
    assert record.getMessage().startswith(f"not reusing the store {store_path(tmp_path, tiny.header())}: it was made "
                                          "from the same images with another model (model 'tiny' -> "
                                          "'someone/other-model')")
    assert "To use that store, pass its model 'tiny' (model=, --model)" in record.getMessage()


# -- torchvision's conventions ----------------------------------------------------------------------------------------


def test_repr_reads_like_torchvisions_and_generates_nothing(tmp_path, tiny_pipe, prepared):
    transform = transforms.Compose([transforms.Resize(16), transforms.ToTensor()])
    fresh = make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe, transform=transform)
    lines = repr(fresh).splitlines()
    assert lines[:5] == [
        "Dataset DiffIIAugmented",
        "    Number of datapoints: 6",
        "    Base dataset: TinyImageDataset of 6 images in 3 classes (metaclass 'shape')",
        "    Mode: replace (synthetic probability 0.5)",
        f"    Store: not prepared yet (under {tmp_path})",
    ]
    torchvision_style = repr(FakeData(size=6, transform=transform)).splitlines()
    assert lines[5:] == torchvision_style[torchvision_style.index("    StandardTransform"):]
    assert not fresh.prepared and not any(tmp_path.iterdir())
    assert f"    Store: {prepared.store.path} (12 synthetic images)" in repr(prepared).splitlines()
    concat = make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe, mode="concat")
    assert "    Number of datapoints: 6 real + the synthetic ones (not generated yet)" in repr(concat).splitlines()
    assert "    Mode: concat (the real items, then every synthetic item)" in repr(concat).splitlines()
    for name in ("a", "b"):
        (tmp_path / "folder" / name).mkdir(parents=True)
        make_dataset(num_classes=1, per_class=(1,))[0][0].save(tmp_path / "folder" / name / "1.png")
    folder = make_wrapper(ImageFolder(str(tmp_path / "folder")), tmp_path / "cache")
    assert repr(folder).splitlines()[2] == f"    Root location: {tmp_path / 'folder'}"


def test_negative_indices_count_from_the_end(prepared):
    last, first_synthetic = prepared[len(prepared) - 1], prepared.synthetic[len(prepared.synthetic) - 1]
    assert image_digest(prepared[-1][0]) == image_digest(last[0]) and prepared[-1][1] == last[1]
    assert image_digest(prepared.synthetic[-1][0]) == image_digest(first_synthetic[0])
    assert prepared.synthetic.metadata(-1) == prepared.synthetic.metadata(len(prepared.synthetic) - 1)
    for outside in (len(prepared), -len(prepared) - 1):
        with pytest.raises(IndexError, match=f"index {outside} out of range for a dataset of 6 items"):
            prepared[outside]
    with pytest.raises(IndexError, match="out of range for 12 synthetic items"):
        prepared.synthetic[-13]


def test_targets_in_replace_mode_generate_nothing(tmp_path, tiny_pipe, prepared):
    fresh = make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe)
    assert fresh.targets == [0, 0, 0, 1, 1, 2] == prepared.targets
    assert not fresh.prepared and not any(tmp_path.iterdir())


def test_concepts_are_the_given_ones_or_the_learned_ones(tmp_path, tiny_pipe, prepared):
    learned = prepared.concepts
    assert isinstance(learned, ConceptSet) and learned.class_names == prepared.classes
    assert prepared.store.header.concepts == f"learned:{prepared.store.learned_concepts_dir().name}"
    given = make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe, concepts=learned)
    assert given.concepts is learned and not given.prepared


@pytest.mark.parametrize("environment, expected", [
    ({"DIFFII_DATASETS_CACHE": "/data/stores", "XDG_CACHE_HOME": "/xdg"}, "/data/stores"),
    ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/diffii-datasets"),
    ({"XDG_CACHE_HOME": "relative/ignored"}, "~/.cache/diffii-datasets"),
    ({"DIFFII_DATASETS_CACHE": "", "XDG_CACHE_HOME": ""}, "~/.cache/diffii-datasets"),
    ({}, "~/.cache/diffii-datasets"),
])
def test_the_default_cache_honours_xdg(monkeypatch, environment, expected):
    for name in ("DIFFII_DATASETS_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert default_cache_dir() == Path(expected).expanduser()
