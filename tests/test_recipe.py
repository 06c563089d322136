"""The published concept recipe around the engine: settings' defaults, and old-recipe stores and concepts never
reused (the log says why)."""

import dataclasses
import json
import logging

import torch

from diffii_datasets import synthesis
from diffii_datasets._io import write_json
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.datasets.settings import get_setting, list_settings
from diffii_datasets.diffusion.concepts import ConceptSet
from diffii_datasets.diffusion.concepts.config import RECIPE_0_1, concept_recipe
from diffii_datasets.distributed import World
from diffii_datasets.progress import RunProgress
from diffii_datasets.hf.builder import DiffIIBuilder
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import FAST_CONFIG, make_dataset

OLD_RECIPE = {f"concept_{knob}": value for knob, value in RECIPE_0_1.items()}
NEW_KNOBS = ("concept_crop", "concept_random_flip", "concept_vae_posterior", "concept_lora_grad_clip_norm",
             "concept_balance_classes", "concept_token_init")


def test_long_tail_settings_learn_concepts_class_balanced_without_being_asked():
    for setting in list_settings():
        config = setting.diffii_config()
        assert config.split_ratio == setting.split_ratio
        assert config.concept_balance_classes is setting.long_tail
        assert config == DiffIIConfig(**setting.default_knobs())
    assert get_setting("cub-lt-if100").default_knobs() == {"split_ratio": 1.0, "concept_balance_classes": True}
    assert get_setting("cub-5shot").diffii_config(seed=3) == DiffIIConfig(split_ratio=0.3, seed=3)
    assert DiffIIBuilder(config_name="flower-lt-if10").config.diffii_config().concept_balance_classes
    assert not DiffIIBuilder(config_name="flower-lt-if10", concept_balance_classes=False).config.diffii_config(
    ).concept_balance_classes
    assert not DiffIIBuilder(config_name="pet-5shot").config.diffii_config().concept_balance_classes


def _job(config):
    dataset = make_dataset()
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(3)]
    return synthesis.SynthesisJob(images, dataset.classes, "shape", config, "dataset-fingerprint", "tiny-model")


def test_a_store_of_the_old_recipe_is_not_reused_and_the_log_says_why(tmp_path, caplog):
    job = _job(FAST_CONFIG)
    old_job = dataclasses.replace(job, config=FAST_CONFIG.replace(**OLD_RECIPE))
    old_store = old_job.create_store(tmp_path)
    # a store written before the recipe knobs existed: its header lacks them
    header = json.loads((old_store.path / "store.json").read_text())
    header["config"] = {knob: value for knob, value in header["config"].items() if knob not in NEW_KNOBS}
    (tmp_path / "before-recipes").mkdir()
    write_json(tmp_path / "before-recipes" / "store.json", header)
    other_data = dataclasses.replace(old_job, dataset_fingerprint="other-data").create_store(tmp_path)
    with caplog.at_level(logging.INFO, logger="diffii_datasets.synthesis"):
        store = job.create_store(tmp_path)
    assert store.path not in (old_store.path, other_data.path) and not store.is_committed(0)
    lines = {record.getMessage().split(":", 1)[0]: record.getMessage() for record in caplog.records}
    assert f"not reusing the store {old_store.path}" in lines
    assert f"not reusing the store {tmp_path / 'before-recipes'}" in lines
    assert f"not reusing the store {other_data.path}" not in lines  # other data: not a candidate, not logged
    old = lines[f"not reusing the store {old_store.path}"]
    assert "concept_resolution: None -> 32" in old and "concept_crop: 'squash' -> 'random'" in old
    assert "concept_vae_posterior: 'mean' -> 'sample'" in old
    assert "concept_token_init: 'class_name' -> 'published'" in old
    assert "concept_lora_grad_clip_norm: 0.0 -> 1.0" in old and "expansion_rate" not in old
    assert "concept_crop: (unrecorded) -> 'random'" in lines[f"not reusing the store {tmp_path / 'before-recipes'}"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="diffii_datasets.synthesis"):
        assert job.create_store(tmp_path).path == store.path  # its own store is reopened, without a word
    assert not caplog.records


def _lora():
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    return {f"{key}.lora_A.weight": torch.ones(2, 32), f"{key}.lora_B.weight": torch.zeros(32, 2)}


def test_concepts_of_the_old_recipe_are_not_reused_and_the_log_says_why(tmp_path, caplog):
    job = _job(FAST_CONFIG)
    old_job = dataclasses.replace(job, config=FAST_CONFIG.replace(**OLD_RECIPE))
    root = tmp_path / "concepts"
    old = ConceptSet(job.class_names, "shape", torch.ones(3, 1, 32), _lora(),
                     recipe=concept_recipe(old_job.config.concepts, 0))
    old.save(root / old_job.concepts_key())
    write_json(root / old_job.concepts_key() / "learned-from.json", old_job.concepts_origin())
    unrecorded = ConceptSet(job.class_names, "shape", torch.ones(3, 1, 32), _lora())  # saved before recipes
    unrecorded.save(root / "before-recipes")
    store = job.create_store(tmp_path / "stores")
    with caplog.at_level(logging.INFO, logger="diffii_datasets.synthesis"):
        concepts = synthesis._concepts(store, job, lambda: tiny_pipeline(seed=0), root, RunProgress(False), World())
    assert concepts.identity() not in (old.identity(), unrecorded.identity())
    assert concepts.recipe == concept_recipe(FAST_CONFIG.concepts, 0)
    assert ConceptSet.load(root / job.concepts_key()).recipe == concepts.recipe  # concepts.json records it
    messages = [record.getMessage() for record in caplog.records]
    (about_old,) = [m for m in messages if str(root / old_job.concepts_key()) in m]
    assert "learned from the same data and model with another recipe" in about_old
    assert "crop: 'squash' -> 'random'" in about_old and "token_init: 'class_name' -> 'published'" in about_old
    (about_unrecorded,) = [m for m in messages if str(root / "before-recipes") in m]
    assert "record no recipe" in about_unrecorded and "concept_crop='squash'" in about_unrecorded
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="diffii_datasets.synthesis"):
        again = synthesis._concepts(store, job, lambda: None, root, RunProgress(False), World())
    assert again.identity() == concepts.identity()
    assert [record.getMessage() for record in caplog.records] == [
        f"reusing learned concepts from {root / job.concepts_key()}"]
