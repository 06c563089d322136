"""DA-Fusion's textual inversion as knob values: tokens alone, one class at a time, its prompts and initialiser."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from diffii_datasets.diffusion.concepts import ConceptConfig, ConceptSet, learn_concepts
from diffii_datasets.diffusion.concepts.checkpoint import checkpoint_problems
from diffii_datasets.diffusion.concepts.config import RECIPE_DA_FUSION
from diffii_datasets.diffusion.concepts.inputs import TrainingInputs
from diffii_datasets.diffusion.concepts.templates import IMAGENET_TEMPLATES_SMALL
from diffii_datasets.diffusion.concepts.trainer import Trainer
from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

NAMES = ["red circle", "blue square"]
TINY = {"resolution": 32, "train_steps": 3}  # the tiny pipeline's size; a few steps


def _images():
    dataset = tiny_image_dataset(2, 2, size=40, seed=1)
    return [[dataset[i][0].resize((40, 32)) for i in range(len(dataset)) if dataset.targets[i] == c]
            for c in range(2)]


def _unet_output(pipe, prompt):
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
        return pipe.unet(latents, torch.tensor([500]), encoder_hidden_states=embeds).sample


@pytest.fixture(scope="module")
def learned():
    pipe = tiny_pipeline(seed=0)
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    seen = []  # the token ids the text encoder was given, every step
    original = Trainer._loss

    def spy(self, draw, timesteps, noise, eps, prompt):
        seen.append((self.prompt_ids[self.inputs.labels[draw.index], prompt], self.prompt_ids.clone()))
        return original(self, draw, timesteps, noise, eps, prompt)

    Trainer._loss = spy
    try:
        config = ConceptConfig(**{**RECIPE_DA_FUSION, **TINY})
        concepts = learn_concepts(pipe, _images(), NAMES, "shape", config, progress=False)
    finally:
        Trainer._loss = original
    return {"pipe": pipe, "config": config, "concepts": concepts, "unet_before": unet_before, "seen": seen}


def test_the_recipe_is_da_fusions_fine_tuning_script():
    config = ConceptConfig(**RECIPE_DA_FUSION)
    assert (config.train_steps, config.batch_size, config.resolution, config.tokens_per_class) == (1000, 4, 512, 1)
    assert config.learning_rate == pytest.approx(5e-4 * 4)  # --learning_rate 5e-4 --scale_lr at batch 4, 1 process
    assert (config.lora_rank, config.token_init, config.prompts, config.separate_classes) == (
        0, "word:the", "imagenet_templates_small", True)
    assert (config.crop, config.random_flip, config.vae_posterior) == ("squash_bicubic", True, "sample")
    assert len(IMAGENET_TEMPLATES_SMALL) == 27 and IMAGENET_TEMPLATES_SMALL[0] == "a photo of a {}"


def test_only_token_rows_are_learned_and_no_lora(learned):
    concepts, pipe = learned["concepts"], learned["pipe"]
    assert concepts.lora_state_dict == {} and concepts.lora_rank == 0
    assert not getattr(pipe.unet, "peft_config", None)
    after = pipe.unet.state_dict()
    assert after.keys() == learned["unet_before"].keys()
    assert all(torch.equal(value, after[key]) for key, value in learned["unet_before"].items())
    the = pipe.text_encoder.get_input_embeddings().weight[pipe.tokenizer("the", add_special_tokens=False).input_ids]
    assert not torch.allclose(concepts.embeddings[:, 0], the.expand(2, -1), atol=1e-4)  # they did move


def test_tokens_start_from_the_given_word():
    pipe = tiny_pipeline(seed=0)
    config = ConceptConfig(**{**RECIPE_DA_FUSION, **TINY, "train_steps": 1, "learning_rate": 1e-6})
    concepts = learn_concepts(pipe, _images(), NAMES, "shape", config, progress=False)
    (the,) = pipe.tokenizer("the", add_special_tokens=False).input_ids
    start = pipe.text_encoder.get_input_embeddings().weight[the].detach()
    torch.testing.assert_close(concepts.embeddings, start.expand(2, 1, -1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"token_init='word:xqzvblorp': the tokenizer splits 'xqzvblorp' into"):
        unknown = ConceptConfig(**{**config.to_dict(), "token_init": "word:xqzvblorp"})
        learn_concepts(pipe, _images(), NAMES, "shape", unknown)


def test_each_image_is_learned_in_one_of_da_fusions_templates_without_the_metaclass(learned):
    pipe = learned["pipe"]
    tokenizer = copy.deepcopy(pipe.tokenizer)
    tokenizer.add_tokens(["<class_0>", "<class_1>"])

    def ids(prompt):
        return tuple(tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length).input_ids)

    # separate classes: each run knows its own class's token only, as the first new token of its tokenizer
    templates = {ids(template.format("<class_0>")): k for k, template in enumerate(IMAGENET_TEMPLATES_SMALL)}
    used = [templates[tuple(row.tolist())] for rows, _ in learned["seen"] for row in rows]
    assert len(used) == 2 * 3 * 4 and len(set(used)) > 3  # 2 classes x 3 steps x batch 4, templates drawn per row
    assert all(prompt_ids.shape[:2] == (1, 27) for _, prompt_ids in learned["seen"])


def test_classes_are_learned_in_separate_runs_each_from_its_own_images(learned):
    config, images = learned["config"], _images()
    alone = learn_concepts(tiny_pipeline(seed=0), [images[1]], NAMES[1:], "shape", config, progress=False)
    assert torch.equal(alone.embeddings[0], learned["concepts"].embeddings[1])
    other_images = learn_concepts(tiny_pipeline(seed=0), [images[0], images[0]], NAMES, "shape", config,
                                  progress=False)
    assert torch.equal(other_images.embeddings[0], learned["concepts"].embeddings[0])
    assert not torch.equal(other_images.embeddings[1], learned["concepts"].embeddings[1])


def test_a_set_without_lora_saves_loads_and_applies(learned, tmp_path):
    concepts = learned["concepts"]
    concepts.save(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "concepts.json", "learned_embeds/class_0.safetensors", "learned_embeds/class_1.safetensors"]
    loaded = ConceptSet.load(tmp_path)
    assert loaded.identity() == concepts.identity() and loaded.lora_state_dict == {}
    assert loaded.recipe == concepts.recipe and loaded.recipe["config"]["lora_rank"] == 0

    pipe = tiny_pipeline(seed=0)
    plain_prompt = "a photo of a red circle"
    before = _unet_output(pipe, plain_prompt)
    vocab = len(pipe.tokenizer)
    loaded.apply(pipe)
    weight = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(weight[vocab:], concepts.embeddings.reshape(2, -1))
    assert not getattr(pipe.unet, "peft_config", None)
    assert torch.equal(_unet_output(pipe, plain_prompt), before)  # the UNet is untouched
    assert not torch.equal(_unet_output(pipe, "a photo of a <class_0>"), before)
    loaded.remove(pipe)
    assert len(pipe.tokenizer) == vocab and torch.equal(_unet_output(pipe, plain_prompt), before)
    # plain diffusers loads it too
    plain = tiny_pipeline(seed=0)
    plain.load_textual_inversion(sorted(str(p) for p in (tmp_path / "learned_embeds").glob("*.safetensors")))
    loaded.apply(tiny_pipeline(seed=0))  # and a fresh pipeline takes it


def test_separate_runs_keep_their_checkpoints_in_a_folder_each(tmp_path):
    config = ConceptConfig(**{**RECIPE_DA_FUSION, **TINY, "checkpoint_steps": 2})
    steps = []
    concepts = learn_concepts(tiny_pipeline(seed=0), _images(), NAMES, "shape", config, work_dir=tmp_path,
                              progress=False, callback=lambda step, loss: steps.append(step))
    assert steps == list(range(1, config.total_steps(2) + 1)) == list(range(1, 7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["class-00000", "class-00001"]
    assert checkpoint_problems(tmp_path) == []
    again = learn_concepts(tiny_pipeline(seed=0), _images(), NAMES, "shape", config, work_dir=tmp_path,
                           progress=False, callback=lambda step, loss: steps.append(step))
    assert again.identity() == concepts.identity() and len(steps) == 6
    tensors = tmp_path / "class-00001" / "concepts-checkpoint-00000003.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-8])
    (problem,) = checkpoint_problems(tmp_path)
    assert problem.startswith(str(tmp_path / "class-00001" / "concepts-checkpoint.json"))


def test_squash_bicubic_resizes_the_whole_image_as_da_fusion_does():
    image = _images()[0][0]
    inputs = TrainingInputs([0], ConceptConfig(crop="squash_bicubic", resolution=32), 32)
    (crop,) = inputs.image_crops(image, "image", 2)
    expected = np.asarray(image.resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    assert torch.equal(crop, torch.from_numpy(expected).permute(2, 0, 1))
