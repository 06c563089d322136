"""The published concept recipe around the engine: settings' defaults, and old-recipe stores and concepts never
reused (the log, or the related store, says why)."""

import dataclasses
import json
import logging
from pathlib import Path

import torch

import diffii_datasets.prepare as prepare_module
from diffii_datasets._io import write_json
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.diffusion.concepts import ConceptSet
from diffii_datasets.diffusion.concepts.config import RECIPE_0_1, concept_recipe
from diffii_datasets.distributed import World
from diffii_datasets.hf.builder import DiffIIBuilder
from diffii_datasets.job import PreparationJob
from diffii_datasets.progress import RunProgress
from diffii_datasets.settings.base import get_setting, list_settings
from diffii_datasets.store import ConceptCache, SyntheticStore
from diffii_datasets.store.cache import related_stores, store_path
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.augment import FAST_CONFIG, make_dataset

OLD_RECIPE = {f"concept_{knob}": value for knob, value in RECIPE_0_1.items()}
FIXTURE_HEADER = Path(__file__).parent / "fixtures" / "store-0.2.0" / "store.json"


def test_long_tail_settings_learn_concepts_class_balanced_without_being_asked():
    for setting in list_settings():
        config = setting.diffii_config()
        assert config.split_ratio == setting.split_ratio
        assert config.concept_balance_classes is setting.long_tail
        assert config == DiffIIConfig(**setting.default_knobs())
    assert get_setting("cub-lt-if100").default_knobs() == {"suffixes": "builtin:bird", "split_ratio": 1.0,
                                                           "concept_balance_classes": True}
    assert get_setting("cub-5shot").diffii_config(seed=3) == DiffIIConfig(suffixes="builtin:bird", split_ratio=0.3,
                                                                          seed=3)
    assert DiffIIBuilder(config_name="flower-lt-if10").config.method_config().concept_balance_classes
    assert not DiffIIBuilder(config_name="flower-lt-if10", concept_balance_classes=False).config.method_config(
    ).concept_balance_classes
    assert not DiffIIBuilder(config_name="pet-5shot").config.method_config().concept_balance_classes


def _job(config):
    dataset = make_dataset()
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(3)]
    return PreparationJob(images, dataset.classes, "shape", config, "dataset-fingerprint", "tiny-model")


def _create(cache, job):
    return SyntheticStore.create(store_path(cache, job.header()), job.header())


def test_a_store_of_the_old_recipe_is_not_reused_and_says_why(tmp_path):
    job = _job(FAST_CONFIG)
    old_job = dataclasses.replace(job, config=FAST_CONFIG.replace(**OLD_RECIPE))
    old_store = _create(tmp_path, old_job)
    # a store of diffii-datasets 0.2 (format 2) made from the same images
    header = json.loads(FIXTURE_HEADER.read_text())
    wanted = job.header().to_dict()
    header.update({key: wanted[key] for key in ("classes", "metaclass", "dataset", "model", "real_counts",
                                                "expected_counts")})
    (tmp_path / "from-0.2").mkdir()
    write_json(tmp_path / "from-0.2" / "store.json", header)
    other_data = _create(tmp_path, dataclasses.replace(old_job, dataset_fingerprint="other-data"))
    related = {store.path: store for store in related_stores(tmp_path, job.header())}
    assert set(related) == {old_store.path, tmp_path / "from-0.2"}  # other data: not a candidate
    assert other_data.path not in related and store_path(tmp_path, job.header()) not in related
    old = related[old_store.path].why
    assert "concept_resolution: None -> 32" in old and "concept_crop: 'squash' -> 'random'" in old
    assert "concept_vae_posterior: 'mean' -> 'sample'" in old
    assert "concept_token_init: 'class_name' -> 'published'" in old
    assert "concept_lora_grad_clip_norm: 0.0 -> 1.0" in old and "expansion_rate" not in old
    assert not related[old_store.path].other_model
    assert related[tmp_path / "from-0.2"].why.startswith("store format 2 (an older version) -> 3")


def _lora():
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    return {f"{key}.lora_A.weight": torch.ones(2, 32), f"{key}.lora_B.weight": torch.zeros(32, 2)}


def test_concepts_of_the_old_recipe_are_not_reused_and_the_log_says_why(tmp_path, caplog):
    job = _job(FAST_CONFIG)
    old_job = dataclasses.replace(job, config=FAST_CONFIG.replace(**OLD_RECIPE))
    cache = ConceptCache(tmp_path)
    old = ConceptSet(job.class_names, "shape", torch.ones(3, 1, 32), _lora(),
                     recipe=concept_recipe(old_job.config.concepts, 0))
    old.save(cache.directory(old_job.concepts_key()))
    write_json(cache.directory(old_job.concepts_key()) / "learned-from.json", old_job.concepts_origin())
    store = _create(tmp_path, job)
    with caplog.at_level(logging.INFO, logger="diffii_datasets.prepare"):
        concepts = prepare_module._concept_stage(store, job, lambda: tiny_pipeline(seed=0), cache, RunProgress(False),
                                                 World())
    assert concepts.identity() != old.identity()
    assert concepts.recipe == concept_recipe(FAST_CONFIG.concepts)
    assert cache.load(job.concepts_key()).recipe == concepts.recipe  # concepts.json records it
    messages = [record.getMessage() for record in caplog.records]
    (about_old,) = [m for m in messages if str(cache.directory(old_job.concepts_key())) in m]
    assert "learned from the same data and model with another recipe" in about_old
    assert "crop: 'squash' -> 'random'" in about_old and "token_init: 'class_name' -> 'published'" in about_old
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="diffii_datasets.prepare"):
        again = prepare_module._concept_stage(store, job, lambda: None, cache, RunProgress(False), World())
    assert again.identity() == concepts.identity()
    assert [record.getMessage() for record in caplog.records] == [
        f"reusing learned concepts from {cache.directory(job.concepts_key())}"]
