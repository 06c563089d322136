"""Methods with the same concept recipe share the concepts learned in a cache: the learner runs once."""

import pytest

from diffii_datasets import DiffIIAugmented
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.diffusion import concepts as concepts_package
from tests.methods.helpers import METACLASS, TINY_CONCEPTS, prepare, stored


@pytest.fixture
def learner_calls(monkeypatch):
    """Every call of the concept learner from now on (it still learns)."""
    calls = []
    learn = concepts_package.learn_concepts

    def counting(*args, **kwargs):
        calls.append(kwargs.get("config", args[4] if len(args) > 4 else None))
        return learn(*args, **kwargs)

    monkeypatch.setattr(concepts_package, "learn_concepts", counting)
    return calls


def test_diff_aug_and_diff_mix_reuse_what_diff_ii_learned(tmp_path, pipe, dataset, learner_calls):
    diff_ii = DiffIIConfig(resolution=32, expansion_rate=1.0, inversion_steps=2, denoising_steps=2, split_ratio=0.0,
                           **TINY_CONCEPTS)
    first = DiffIIAugmented(dataset, METACLASS, config=diff_ii, pipeline=pipe, cache_dir=tmp_path, progress=False)
    first.prepare()
    assert len(learner_calls) == 1
    aug = prepare("diff-aug", dataset, pipe, tmp_path, expansion_rate=1.0, denoising_steps=2)
    mix = prepare("diff-mix", dataset, pipe, tmp_path, expansion_rate=1.0, denoising_steps=2)
    assert len(learner_calls) == 1  # not called again
    assert aug.store.header.concepts == mix.store.header.concepts == first.store.header.concepts
    assert aug.concepts.identity() == first.concepts.identity()
    assert len(stored(aug)) == len(stored(mix)) == len(dataset)
    fusion = prepare("da-fusion", dataset, pipe, tmp_path, expansion_rate=1.0, denoising_steps=2)
    assert len(learner_calls) == 2  # another recipe: textual inversion, learned once more
    assert fusion.store.header.concepts != first.store.header.concepts and fusion.concepts.lora_rank == 0
