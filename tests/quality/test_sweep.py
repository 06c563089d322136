"""The split-ratio sweep regenerates a class with the store's engine and measures each point directly."""

import json

import numpy as np
import pytest

from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.quality import QualitySettings, split_ratio_sweep, write_sweep
from diffii_datasets.quality.diversity import mean_pairwise_lpips
from diffii_datasets.quality.faithfulness import clip_image_embeddings, clip_score, clip_text_embeddings
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import make_dataset, make_wrapper

FAST = QualitySettings(lpips_size=32)

pytestmark = pytest.mark.slow  # generates a store with the tiny pipeline (about 15 s on 2 idle cores)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A store generated with the tiny pipeline (split ratio 0.3; class 0: 2 real, 4 synthetic; class 1: 1 real)."""
    pipe = tiny_pipeline(seed=0)
    wrapper = make_wrapper(make_dataset(num_classes=2, per_class=(2, 1)), tmp_path_factory.mktemp("sweep"),
                           pipeline=pipe).prepare()
    return wrapper.store, pipe


def test_sweep_points_are_measured_on_the_generated_images(generated, metric_models, tmp_path):
    store, pipe = generated
    sweep = split_ratio_sweep(store, 0, [1.0, 0.3], models=metric_models, num_images=3, pipeline=pipe,
                              settings=FAST, progress=False)
    assert [point.split_ratio for point in sweep.points] == [0.3, 1.0]
    assert [point.count for point in sweep.points] == [3, 3] and sweep.store_split_ratio == 0.3
    text = clip_text_embeddings(metric_models, [build_prompt(store.header.classes[0], "shape")])[0]
    for point, images in zip(sweep.points, sweep.images):
        assert point.clip_score == pytest.approx(clip_score(clip_image_embeddings(metric_models, images), text))
        assert point.lpips == pytest.approx(mean_pairwise_lpips(metric_models.lpips, images, size=32))
    # The store's own split ratio repeats the store's first images; the others differ from them.
    stored = [_pixels(store.image_path(0, record.file)) for record in store.records(0)[:3]]
    again = [np.asarray(image, dtype=np.int16) for image in sweep.images[0]]
    assert all(np.abs(a - s).max() <= 1 for a, s in zip(again, stored))
    assert any(np.abs(np.asarray(image, dtype=np.int16) - s).max() > 1 for image, s in zip(sweep.images[1], stored))
    path = write_sweep(sweep, tmp_path / "sweep", store.real_images(0))
    assert path.name == "sweep.json" and (tmp_path / "sweep" / "sweep.png").stat().st_size > 0
    assert (tmp_path / "sweep" / "sweep-images.png").is_file()


def _pixels(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_sweep_refuses_another_pipeline_and_bad_ratios(generated, metric_models):
    store, _ = generated
    with pytest.raises(ValueError, match="pipeline must be the store's model"):
        split_ratio_sweep(store, 0, [0.3], models=metric_models, num_images=2, pipeline=tiny_pipeline(seed=1),
                          progress=False)
    with pytest.raises(ValueError, match="split_ratios item must be"):
        split_ratio_sweep(store, 0, [0.3, 1.5], models=metric_models, progress=False)
    with pytest.raises(ValueError, match="class_index must be"):
        split_ratio_sweep(store, 2, models=metric_models, progress=False)


def test_sweep_command(generated, tmp_path, capsys):
    from diffii_datasets import cli

    store, _ = generated
    status = cli.main(["sweep", str(store.path), "--class", store.header.classes[1], "--split-ratios", "1",
                       "--images", "2", "-o", str(tmp_path / "out"), "--tiny-models", "--model", "tiny",
                       "--device", "cpu", "--lpips-size", "32", "-q"])
    out, err = capsys.readouterr()
    assert status == 0, err
    data = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert data["class_index"] == 1 and [(p["split_ratio"], p["count"]) for p in data["points"]] == [(1.0, 2)]
    assert "mean nothing" in out and "sweep.png" in out
    status = cli.main(["sweep", str(store.path), "--class", "7", "-o", str(tmp_path / "x"), "--tiny-models"])
    assert status == 1 and "--class: '7' is neither a class index" in capsys.readouterr().err


def test_sweep_takes_0_2s_tiny_pipeline_flag_with_a_warning(generated, tmp_path, capsys):
    from diffii_datasets import _deprecated, cli

    store, _ = generated
    _deprecated._warned.discard("sweep --tiny-pipeline")
    command = ["sweep", str(store.path), "--class", "0", "--split-ratios", "1", "--images", "2", "--tiny-models",
               "--device", "cpu", "--lpips-size", "32", "-q", "--tiny-pipeline"]
    status = cli.main(command + ["-o", str(tmp_path / "old")])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "warning: sweep --tiny-pipeline is deprecated and will be removed; use --model tiny" in err
    assert json.loads((tmp_path / "old" / "sweep.json").read_text())["points"][0]["count"] == 2
    status = cli.main(command + ["--model", "stabilityai/stable-diffusion-2-1", "-o", str(tmp_path / "both")])
    assert status == 1 and "--tiny-pipeline and --model name two different pipelines" in capsys.readouterr().err
