"""The plan of a run (counted once), what it reads from a cache, and the per-stage progress with its ETAs."""

import logging

import pytest
import torch

from diffii_datasets import DiffIIConfig
from diffii_datasets.diffusion.denoise import two_stage_denoise
from diffii_datasets.diffusion.inversion import ddim_invert
from diffii_datasets.diffusion.pipeline import latent_shape
from diffii_datasets.job import PreparationJob
from diffii_datasets.methods.diff_ii import GENERATION, INVERSION
from diffii_datasets.plan import CONCEPTS, format_duration, plan_job, plan_synthesis
from diffii_datasets.progress import ETA_AFTER_STEPS, RunProgress
from diffii_datasets.store import StoreHeader, SyntheticStore
from diffii_datasets.store.cache import store_path
from diffii_datasets.testing import tiny_image_dataset


def _header(**knobs):
    config = DiffIIConfig(**knobs)
    real = (3, 2, 1)
    expected = tuple(int(config.expansion_rate * n) for n in real)
    return StoreHeader(config=config, classes=("a", "b", "c"), metaclass="shape", dataset="d" * 16, model="m",
                       concepts="learned:k", real_counts=real, expected_counts=expected)


def test_the_paper_defaults_count_every_stage():
    plan = plan_synthesis(_header())  # 35,000 steps at batch 8, 200 inversion steps, 25 guided denoising steps
    assert plan.stage(CONCEPTS).count == 35_000 and plan.stage(CONCEPTS).unet_evaluations == 35_000 * 8
    assert plan.stage(INVERSION).count == 6 and plan.stage(INVERSION).unet_evaluations == 6 * 200
    assert plan.stage(GENERATION).count == 30 and plan.stage(GENERATION).unet_evaluations == 30 * 25 * 2
    assert plan.unet_evaluations == 280_000 + 1_200 + 1_500
    text = str(plan)
    assert "3 of 3 classes to generate" in text and "the pipeline's own size" in text and "224 px" in text
    assert text.startswith("Diff-II plan:")
    assert "35,000 steps x batch 8" in text and "30 synthetic images x 25 steps x 2 (guidance 7.5)" in text
    assert "6 real images x 200 steps" in text
    assert text.splitlines()[-1].split() == ["total", "282,700", "UNet", "evaluations"]


def test_guidance_doubles_evaluations_and_pending_classes_and_given_concepts_shrink_the_plan():
    header = _header(inversion_guidance_scale=2.0, guidance_scale=1.0, expansion_rate=2.0, inversion_steps=10,
                     denoising_steps=5, resolution=256)
    plan = plan_synthesis(header, pending=[1, 2], concept_steps=0, concepts_note="the concepts are given")
    assert plan.stage(CONCEPTS).unet_evaluations == 0 and "none: the concepts are given" in str(plan)
    assert plan.stage(INVERSION).unet_evaluations == 3 * 10 * 2  # images of classes 1 and 2, guided
    assert plan.stage(GENERATION).unet_evaluations == 6 * 5  # no guidance: one branch
    assert "2 of 3 classes to generate (1 already in the store)" in str(plan) and "256 px" in str(plan)
    resumed = plan_synthesis(header, concept_steps=100)
    assert resumed.stage(CONCEPTS).unet_evaluations == 100 * 8 and "(resuming at step 34,900)" in str(resumed)
    done = plan_synthesis(header, pending=[])
    assert done.empty and "none: nothing to generate" in str(done)


@pytest.mark.parametrize("seconds, text", [(0.2, "under 1 s"), (45, "45 s"), (200, "3 min 20 s"),
                                           (7980, "2 h 13 min"), (356_400, "4 d 3 h")])
def test_durations_read_in_two_units(seconds, text):
    assert format_duration(seconds) == text


def _job(config, concepts=None):
    dataset = tiny_image_dataset(num_classes=2, per_class=[2, 1], size=32)
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(2)]
    return PreparationJob(images, dataset.classes, "shape", config, "f" * 16, "tiny", concepts)


def test_plan_job_reads_the_cache_and_writes_nothing(tmp_path):
    config = DiffIIConfig(concept_train_steps=50, expansion_rate=2.0)
    job = _job(config)
    fresh = plan_job(job, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    assert (fresh.classes, fresh.stage(CONCEPTS).count, fresh.stage(GENERATION).count) == (2, 50, 6)
    # An interrupted run: its store holds class 0 and a concept checkpoint at step 30.
    store = SyntheticStore.create(store_path(tmp_path / "cache", job.header()), job.header())
    store.concept_work_dir.mkdir(parents=True)
    (store.concept_work_dir / "concepts-checkpoint.json").write_text('{"step": 30}')
    store.class_dir(0).mkdir(parents=True)
    (store.class_dir(0) / "class.json").write_text("{}")
    partial = plan_job(job, tmp_path / "cache")
    assert (partial.classes, partial.stage(CONCEPTS).count, partial.stage(INVERSION).count) == (1, 20, 1)
    # Concepts already learned for this key, or given: nothing to learn.
    (tmp_path / "cache" / "concepts" / job.concepts_key()).mkdir(parents=True)
    (tmp_path / "cache" / "concepts" / job.concepts_key() / "concepts.json").write_text("{}")
    assert plan_job(job, tmp_path / "cache").stage(CONCEPTS).count == 0
    assert isinstance(SyntheticStore.open(store.path), SyntheticStore)


def test_a_stage_measures_its_own_working_time_and_announces_its_eta(caplog, monkeypatch):
    clock = iter(range(0, 10_000))
    monkeypatch.setattr("diffii_datasets.progress.time.perf_counter", lambda: float(next(clock)))
    run = RunProgress(False)
    inversion = run.stage(INVERSION, 10, "image")
    generation = run.stage(GENERATION, 40, "image")
    measured = []
    with caplog.at_level(logging.INFO, logger="diffii_datasets.progress"):
        inversion.resume()
        for _ in range(ETA_AFTER_STEPS + 1):  # one second per step, half an image each
            inversion.advance(0.5)
        assert inversion.rate == pytest.approx(0.5) and inversion.remaining_seconds() == pytest.approx(14)
        for _ in range(100):  # time spent elsewhere does not count
            next(clock)
        generation.on_measured = measured.append
        generation.resume()
        for _ in range(ETA_AFTER_STEPS + 1):
            generation.advance(2)
        generation.skip(8)  # done by another process: off the total, not counted as speed
    assert generation.rate == pytest.approx(2) and generation.remaining_seconds() == pytest.approx(10)
    assert measured == [generation]
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "ETA DDIM inversion: 14 s (7 more images at 2.00 s/image)"
    assert lines[1] == "ETA generation: 14 s (28 more images at 2.00 images/s)"
    assert lines[2] == "ETA all stages: 28 s"


def test_bars_show_whole_images_and_never_pass_their_total(capsys):
    run = RunProgress(True, terminal=True)
    stage = run.stage(GENERATION, 4, "image")
    for _ in range(50):
        stage.advance(4 / 50)  # float steps that sum to a little more than 4
    assert stage._bar.n == 4 and stage._bar.format_dict["done"] == 4
    run.announce("a line for the user")
    run.close()
    err = capsys.readouterr().err
    assert "4/4 img" in err and "a line for the user" in err and "img/s" in err


def test_without_a_terminal_progress_is_whole_lines_without_escape_codes(capsys, monkeypatch):
    clock = iter(range(0, 10_000, 20))  # 20 s per step
    monkeypatch.setattr("diffii_datasets.progress.time.perf_counter", lambda: float(next(clock)))
    run = RunProgress(True)  # capsys's stderr is not a terminal
    assert not run.terminal
    inversion, generation = run.stage(INVERSION, 4, "image"), run.stage(GENERATION, 8, "image")
    inversion.describe("red circle")
    inversion.resume()
    for _ in range(ETA_AFTER_STEPS + 2):
        inversion.advance(0.5)
    generation.resume()
    for _ in range(4):
        generation.advance(2)
    run.close()
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err
    assert err.splitlines() == [
        "DDIM inversion: red circle: 1/4 img in 1 min 0 s (40.00 s/img)",  # a line per minute of its own work
        "DDIM inversion: red circle: 3/4 img in 2 min 0 s (40.00 s/img)",
        "ETA DDIM inversion: 40 s (1 more images at 40.00 s/image)",
        "generation: 6/8 img in 1 min 0 s (10.00 s/img)",
        "DDIM inversion: 3/4 img in 2 min 20 s (40.00 s/img)",  # at the end, each stage's total
        "generation: 8/8 img in 1 min 20 s (10.00 s/img)",
    ]


def test_inversion_and_denoising_report_every_step_and_skip_the_pipelines_own_bar(tiny_pipe, monkeypatch):
    monkeypatch.setattr(tiny_pipe, "progress_bar", lambda *_: pytest.fail("the pipeline's bar was used"))
    images = torch.rand(3, 3, 32, 32)
    steps = []
    ddim_invert(tiny_pipe, images, "a photo of a shape", 4, batch_size=2, on_step=steps.append)
    assert len(steps) == 2 * 4 and sum(steps) == pytest.approx(3)  # per step of a batch: its images over 4
    steps.clear()
    latents = torch.randn(3, *latent_shape(tiny_pipe))
    two_stage_denoise(tiny_pipe, latents, "a photo of a shape", None, 0.0, 3, batch_size=2, output_type="latent",
                      on_step=steps.append)
    assert len(steps) == 2 * 3 and sum(steps) == pytest.approx(3)
