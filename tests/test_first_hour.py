"""A new user's first hour (issue 19): the plan and bars of a run, warnings at the user's line, quiet libraries,
and the wrapper following torchvision's conventions (repr, negative indices, targets, concepts, cache location)."""

import warnings
from pathlib import Path

import pytest
from torchvision import transforms
from torchvision.datasets import FakeData, ImageFolder

from diffii_datasets.diffusion.concepts import ConceptSet
from diffii_datasets.hashing import image_digest
from diffii_datasets.store import default_cache_dir
from tests.helpers.augment import FAST_CONFIG, make_dataset, make_wrapper


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_pipe):
    return make_wrapper(make_dataset(), tmp_path_factory.mktemp("cache"), pipeline=tiny_pipe).prepare()


# -- the work ahead, shown --------------------------------------------------------------------------------------------


def test_prepare_shows_the_plan_then_a_bar_and_an_eta_per_stage_and_nothing_from_the_libraries(
        tmp_path, tiny_pipe, capfd):
    config = FAST_CONFIG.replace(inversion_steps=8, denoising_steps=8, concept_train_steps=8)
    make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe, config=config, progress=True).prepare()
    err = capfd.readouterr().err
    plan = err[err.index("Diff-II plan:"):].splitlines()[:5]
    assert plan[0] == "Diff-II plan: 3 of 3 classes to generate; images at 32 px, concepts learned at 32 px"
    assert plan[1].split() == "concept learning 8 steps x batch 2 16 UNet evaluations (forward and backward)".split()
    assert plan[2].split() == "DDIM inversion 6 images x 8 steps 48 UNet evaluations".split()
    assert plan[3].split() == "generation 12 images x 8 steps x 2 (guidance 7.5) 192 UNet evaluations".split()
    assert plan[4].split() == ["total", "256", "UNet", "evaluations"]
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


def test_the_published_concept_steps_on_a_cpu_warn_with_the_measured_time(tmp_path, tiny_pipe, monkeypatch):
    def learn_a_little(*args, callback, **kwargs):  # the first steps of 35,000, then stop
        for step in range(1, 8):
            callback(step, 0.0)
        raise _Stop

    monkeypatch.setattr("diffii_datasets.diffusion.concepts.learn_concepts", learn_a_little)
    wrapper = make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe,
                           config=FAST_CONFIG.replace(concept_train_steps=35_000))
    with pytest.warns(UserWarning, match=r"learning concepts for 35,000 steps \(the published recipe\) on a CPU "
                                         r"will take about .* at the measured .*steps?/s") as caught:
        with pytest.raises(_Stop):
            wrapper.prepare()
    (warning,) = [w for w in caught if "on a CPU" in str(w.message)]
    assert warning.filename == __file__
    monkeypatch.setattr("diffii_datasets.diffusion.concepts.learn_concepts", learn_a_little)
    with warnings.catch_warnings():  # fewer steps: no warning
        warnings.simplefilter("error")
        with pytest.raises(_Stop):
            make_wrapper(make_dataset(), tmp_path, pipeline=tiny_pipe,
                         config=FAST_CONFIG.replace(concept_train_steps=2_000)).prepare()


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
