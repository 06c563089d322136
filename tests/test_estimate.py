"""The estimated time of a plan: a short probe of real UNet calls, multiplied by the plan's UNet evaluations."""

import hashlib

import pytest
import torch

from diffii_datasets import DiffIIConfig, cli
from diffii_datasets import estimate as estimate_module
from diffii_datasets.estimate import KINDS, SLOW_CALL_SECONDS, Estimate, estimate_plan, probe_unet
from diffii_datasets.job import PreparationJob
from diffii_datasets.plan import CONCEPTS, plan_synthesis
from diffii_datasets.testing import tiny_image_dataset
from tests.helpers.cli import SAMPLE_DIR

SMALL = DiffIIConfig.preset("tiny", batch_size=2, concept_batch_size=2)


def _weights_digest(pipe) -> str:
    digest = hashlib.sha256()
    for name, tensor in pipe.unet.state_dict().items():
        digest.update(name.encode() + tensor.numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_probe_times_every_kind_and_leaves_the_pipeline_and_the_rng_as_they_were(tiny_pipe, checkpointing):
    weights, rng = _weights_digest(tiny_pipe), torch.random.get_rng_state()
    timings = probe_unet(tiny_pipe, SMALL.replace(concept_gradient_checkpointing=checkpointing))
    assert set(timings) == set(KINDS) and all(seconds > 0 for seconds in timings.values())
    assert torch.equal(torch.random.get_rng_state(), rng) and _weights_digest(tiny_pipe) == weights
    assert all(parameter.grad is None for parameter in tiny_pipe.unet.parameters())
    assert not tiny_pipe.unet.is_gradient_checkpointing
    assert set(probe_unet(tiny_pipe, SMALL, kinds={KINDS[2]})) == {KINDS[2]}  # only what is asked


def test_a_slow_call_on_a_cpu_is_timed_with_one_latent_and_a_fast_one_with_the_runs_batch(monkeypatch):
    sizes = []

    def make(size):
        return lambda: sizes.append(size)

    cpu = torch.device("cpu")
    monkeypatch.setattr(estimate_module, "_timed", lambda call, device: (call(), SLOW_CALL_SECONDS * 3)[1])
    assert estimate_module._per_evaluation(make, 16, cpu) == SLOW_CALL_SECONDS * 3  # seconds per latent
    assert sizes == [1, 1]  # a warm-up and one timed call of one latent: Stable Diffusion on a CPU
    sizes.clear()
    seconds = iter([0.01, 0.05, 0.04, 0.06])
    monkeypatch.setattr(estimate_module, "_timed", lambda call, device: (call(), next(seconds))[1])
    assert estimate_module._per_evaluation(make, 16, cpu) == pytest.approx(0.04 / 16)  # the fastest timed call
    assert sizes == [1, 16, 16, 16]  # a one-latent check, then a warm-up and two timed calls of the run's batch


def _job(config, per_class=(3, 1)):
    dataset = tiny_image_dataset(num_classes=len(per_class), per_class=list(per_class), size=32)
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(len(per_class))]
    return PreparationJob(images, dataset.classes, "shape", config, "f" * 16, "tiny")


def test_the_estimate_is_each_stages_evaluations_times_its_kinds_time_shared_by_the_ranks(monkeypatch):
    asked = {}

    def probe(pipe, config, *, kinds, largest_class):
        asked.update(kinds=kinds, largest=largest_class)
        return {KINDS[0]: 0.5, KINDS[1]: 0.01, KINDS[2]: 0.02}

    monkeypatch.setattr(estimate_module, "probe_unet", probe)
    monkeypatch.setattr(estimate_module, "_device_name", lambda pipe: "cpu")
    job = _job(SMALL)
    plan = plan_synthesis(job.header(), ranks=2)
    result = estimate_plan(plan, job, pipe=None)
    evaluations = {stage.name: stage.unet_evaluations for stage in plan.stages}
    assert result.seconds == pytest.approx((evaluations[CONCEPTS] * 0.5 + evaluations["DDIM inversion"] * 0.01
                                            + evaluations["generation"] * 0.02) / 2)
    assert asked == {"kinds": set(KINDS), "largest": {KINDS[1]: 3, KINDS[2]: 6}}  # batches capped by the classes
    assert result.text().startswith("about ") and "shared by 2 ranks" in result.text()
    assert "concept step 500 ms, real-image step 10 ms, synthetic-image step 20 ms per UNet evaluation" in result.note
    given = plan_synthesis(job.header(), concept_steps=0, concepts_note="the concepts are given")
    estimate_plan(given, job, pipe=None)
    assert asked["kinds"] == {KINDS[1], KINDS[2]}  # no concept step is probed when none runs
    assert estimate_plan(plan_synthesis(job.header(), pending=[]), job, pipe=None).text() == "none (nothing to run)"


def test_the_plan_prints_its_estimate_last():
    plan = plan_synthesis(_job(SMALL).header())
    assert not any("estimated" in line for line in plan.lines())  # none made: no line
    lines = plan.with_estimate(Estimate(5400, "probed")).lines()
    assert lines[-1].split() == ["estimated", "time", "about", "1", "h", "30", "min", "(probed)"]
    assert plan.with_estimate(Estimate.unknown("no model")).lines()[-1].endswith("unknown (no model)")


def test_plan_estimates_only_when_asked(capsys, tmp_path):
    flags = ["plan", "--image-folder", str(SAMPLE_DIR), "--metaclass", "shape", "--model", "tiny",
             "--cache-dir", str(tmp_path / "cache"), "--concept-train-steps", "3", "--inversion-steps", "4"]
    assert cli.main(flags) == 0
    out = capsys.readouterr().out
    assert "estimated time    unknown (no model was run: pass --estimate to time a few UNet calls" in out
    assert cli.main([*flags, "--estimate", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    estimated = next(line for line in out if line.startswith("  estimated time"))
    assert estimated.split()[2] == "about" and "UNet time probed on cpu: concept step " in estimated
    assert out[-1].endswith("(not made yet)") and not (tmp_path / "cache").exists()  # still runs nothing
