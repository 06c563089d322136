"""Concept learning, the concept set's files, and applying/removing it on a real (tiny) pipeline."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from diffii_datasets.diffusion.concepts import ConceptConfig, ConceptSet, class_token, learn_concepts
from diffii_datasets.diffusion.concepts.checkpoint import CHECKPOINT_FILE
from diffii_datasets.diffusion.concepts.trainer import NEUTRAL_INIT_WORD
from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.distributed import World
from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline

# "red" and "circle" are single tokens of the tiny tokenizer; the second name has no known word.
NAMES = ["red circle", "xqzv_blorp"]
METACLASS = "shape"


def _images(num_classes=2, per_class=3, seed=0):
    dataset = tiny_image_dataset(num_classes, per_class, seed=seed)
    return [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(num_classes)]


def _snapshot(pipe):
    modules = {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "vae": pipe.vae}
    return {
        "tensors": {f"{m}.{k}": v.clone() for m, module in modules.items() for k, v in module.state_dict().items()},
        "requires_grad": [p.requires_grad for module in modules.values() for p in module.parameters()],
        "vocab": dict(pipe.tokenizer.get_vocab()),
        "tokenizer_len": len(pipe.tokenizer),
        "embedding": pipe.text_encoder.get_input_embeddings(),
        "vocab_size": pipe.text_encoder.config.vocab_size,
        "peft": getattr(pipe.unet, "peft_config", None),
        "checkpointing": pipe.unet.is_gradient_checkpointing,
        "modules": [type(m).__name__ for m in pipe.unet.modules()],
    }


def _assert_same(before, after):
    assert before["tensors"].keys() == after["tensors"].keys()
    for key, value in before["tensors"].items():
        assert torch.equal(value, after["tensors"][key]), key
    for key in ("requires_grad", "vocab", "tokenizer_len", "vocab_size", "peft", "checkpointing", "modules"):
        assert before[key] == after[key], key
    assert before["embedding"] is after["embedding"]


def _unet_output(pipe, prompt):
    """UNet noise prediction for fixed latents, with the prompt encoded the way the pipeline does it."""
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
        return pipe.unet(latents, torch.tensor([500]), encoder_hidden_states=embeds).sample


@pytest.fixture(scope="module")
def learned():
    """One learning run (2 classes x 3 images, 2 vectors per class, high lr so 30 steps visibly learn)."""
    pipe = tiny_pipeline(seed=0)
    before = _snapshot(pipe)
    torch.manual_seed(1234)
    rng_before = torch.random.get_rng_state()
    losses = []
    config = ConceptConfig(train_steps=30, batch_size=4, tokens_per_class=2, lora_rank=4, learning_rate=1e-2,
                           resolution=32, token_init="class_name", seed=0)
    concepts = learn_concepts(pipe, _images(), NAMES, METACLASS, config, progress=False,
                              callback=lambda step, loss: losses.append((step, loss)))
    rng_after = torch.random.get_rng_state()
    return {"pipe": pipe, "before": before, "concepts": concepts, "losses": losses,
            "rng": (rng_before, rng_after)}


def test_config_defaults_are_the_released_recipe_and_bad_values_name_the_field():
    config = ConceptConfig()
    assert (config.train_steps, config.batch_size, config.tokens_per_class, config.lora_rank) == (35000, 8, 1, 10)
    assert (config.learning_rate, config.weight_decay, config.checkpoint_steps) == (5e-5, 1e-2, 5000)
    assert config.lora_target_modules == ("to_q", "to_k", "to_v", "to_out.0")
    assert json.loads(json.dumps(config.to_dict()))["lora_target_modules"] == ["to_q", "to_k", "to_v", "to_out.0"]
    # the published input pipeline, clipping and initialiser (balancing is the long-tail settings' own)
    assert (config.resolution, config.crop, config.random_flip, config.vae_posterior) == (224, "random", True, "sample")
    assert (config.lora_grad_clip_norm, config.balance_classes, config.token_init) == (1.0, False, "published")
    # the published seed and image order; the published prompt, all classes in one run
    assert (config.seed, config.image_order, config.prompts, config.separate_classes) == (
        42, "epochs", "published", False)
    assert (config.max_crop_positions, config.max_aspect_ratio) == (64, 20.0)
    assert ConceptConfig(token_init="word:the").token_init == "word:the"
    # a value of the wrong type is a TypeError, a bad value of the right type a ValueError; both name the field
    for field, value, error in [("train_steps", 0, ValueError), ("batch_size", 2.0, TypeError),
                                ("tokens_per_class", True, TypeError), ("lora_rank", -1, ValueError),
                                ("learning_rate", 0, ValueError), ("weight_decay", float("nan"), ValueError),
                                ("checkpoint_steps", 0, ValueError), ("mixed_precision", 1, TypeError),
                                ("resolution", 30, ValueError), ("lora_target_modules", "to_q", TypeError),
                                ("lora_target_modules", (), ValueError), ("crop", "middle", ValueError),
                                ("random_flip", "yes", TypeError), ("vae_posterior", "mode", ValueError),
                                ("lora_grad_clip_norm", -1.0, ValueError), ("balance_classes", 1, TypeError),
                                ("token_init", "random", ValueError), ("token_init", "word:", ValueError),
                                ("token_init", "word:two words", ValueError), ("token_init", 3, TypeError),
                                ("seed", -1, ValueError), ("seed", 1.5, TypeError),
                                ("image_order", "sequential", ValueError), ("prompts", "fancy", ValueError),
                                ("separate_classes", 0, TypeError), ("max_crop_positions", 1, ValueError),
                                ("max_crop_positions", 8.0, TypeError), ("max_aspect_ratio", 0.5, ValueError)]:
        with pytest.raises(error, match=rf"^ConceptConfig\.{field} must be "):
            ConceptConfig(**{field: value})
    with pytest.raises(ValueError, match=r"separate_classes=True \(concept_separate_classes\) needs lora_rank=0 "
                                         r"\(concept_lora_rank\), got lora_rank=10"):
        ConceptConfig(separate_classes=True)


def test_loss_goes_down_and_callback_sees_every_step(learned):
    steps = [step for step, _ in learned["losses"]]
    losses = [loss for _, loss in learned["losses"]]
    assert steps == list(range(1, 31))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.85 * first, (first, last)


def test_learning_leaves_the_pipeline_and_global_rng_untouched(learned):
    _assert_same(learned["before"], _snapshot(learned["pipe"]))
    assert not hasattr(learned["pipe"].unet, "peft_config")
    assert torch.equal(*learned["rng"])


def test_only_placeholder_rows_of_the_embedding_matrix_change(learned):
    concepts = learned["concepts"]
    pipe = tiny_pipeline(seed=0)
    original = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    concepts.apply(pipe)
    weight = pipe.text_encoder.get_input_embeddings().weight.detach()
    vocab = len(original)
    assert weight.shape == (vocab + 4, original.shape[1])
    assert torch.equal(weight[:vocab], original)
    ids = pipe.tokenizer.convert_tokens_to_ids(concepts.tokens)
    assert ids == list(range(vocab, vocab + 4))
    assert torch.equal(weight[vocab:], concepts.embeddings.reshape(4, -1))
    # the placeholders did train: they moved away from their initial words
    init = original[pipe.tokenizer.convert_tokens_to_ids(["red</w>", "circle</w>"])]
    assert not torch.allclose(concepts.embeddings[0], init, atol=1e-3)


def test_tokens_start_from_a_class_word_or_the_neutral_word():
    pipe = tiny_pipeline(seed=0)
    config = ConceptConfig(train_steps=1, batch_size=2, tokens_per_class=2, lora_rank=2,  # lr 5e-5: ~init
                           resolution=32, token_init="class_name")
    concepts = learn_concepts(pipe, _images(per_class=1), NAMES, METACLASS, config, progress=False)
    weight = pipe.text_encoder.get_input_embeddings().weight.detach()
    red, circle = pipe.tokenizer.convert_tokens_to_ids(["red</w>", "circle</w>"])
    neutral = pipe.tokenizer(NEUTRAL_INIT_WORD, add_special_tokens=False).input_ids
    assert len(neutral) == 1
    torch.testing.assert_close(concepts.embeddings[0], weight[[red, circle]], atol=2e-4, rtol=0)
    torch.testing.assert_close(concepts.embeddings[1], weight[[neutral[0]] * 2], atol=2e-4, rtol=0)


def test_gradient_checkpointing_gives_the_same_weights_and_is_switched_off_again():
    pipe = tiny_pipeline(seed=0)
    runs, seen = [], []
    for checkpointing in (False, True):
        config = ConceptConfig(train_steps=2, batch_size=2, lora_rank=2, gradient_checkpointing=checkpointing,
                               resolution=32)
        runs.append(learn_concepts(pipe, _images(per_class=1), NAMES, METACLASS, config, progress=False,
                                   callback=lambda *_: seen.append(pipe.unet.is_gradient_checkpointing)))
        assert not pipe.unet.is_gradient_checkpointing
    assert seen == [False, False, True, True]
    assert runs[0].identity() == runs[1].identity()


def test_class_tokens_and_prompts(learned):
    concepts = learned["concepts"]
    assert concepts.class_tokens(1) == "<class_1>"
    assert concepts.tokens == ["<class_0>", "<class_0>_1", "<class_1>", "<class_1>_1"]
    assert concepts.prompt(0) == "a photo of a <class_0> shape"
    assert (concepts.class_names, concepts.metaclass, concepts.lora_rank) == (NAMES, METACLASS, 4)
    with pytest.raises(ValueError, match="class_index"):
        concepts.class_tokens(2)


def test_save_load_round_trip(learned, tmp_path):
    concepts = learned["concepts"]
    concepts.save(tmp_path)
    manifest = json.loads((tmp_path / "concepts.json").read_text())
    assert manifest["class_names"] == NAMES and manifest["class_tokens"] == ["<class_0>", "<class_1>"]
    assert (tmp_path / "pytorch_lora_weights.safetensors").is_file()
    loaded = ConceptSet.load(tmp_path)
    assert loaded.identity() == concepts.identity() == manifest["identity"]
    assert torch.equal(loaded.embeddings, concepts.embeddings)
    assert loaded.lora_state_dict.keys() == concepts.lora_state_dict.keys()
    for key, value in concepts.lora_state_dict.items():
        assert torch.equal(loaded.lora_state_dict[key], value), key
    assert (loaded.class_names, loaded.metaclass) == (NAMES, METACLASS)
    # the identity depends on the content
    other = ConceptSet(NAMES, METACLASS, concepts.embeddings + 1e-3, concepts.lora_state_dict)
    assert other.identity() != concepts.identity()
    # saving a smaller set over it leaves no stale token files behind
    ConceptSet(NAMES[:1], METACLASS, concepts.embeddings[:1], concepts.lora_state_dict).save(tmp_path)
    assert [p.name for p in (tmp_path / "learned_embeds").iterdir()] == ["class_0.safetensors"]
    assert ConceptSet.load(tmp_path).class_names == NAMES[:1]


def test_plain_diffusers_loaders_give_the_same_unet_output_as_apply(learned, tmp_path):
    concepts = learned["concepts"]
    concepts.save(tmp_path)
    ours = tiny_pipeline(seed=0)
    base_output = _unet_output(ours, build_prompt(class_token(0), METACLASS))
    concepts.apply(ours)

    # Exactly the README recipe: diffusers' own loaders only.
    plain = tiny_pipeline(seed=0)
    plain.load_textual_inversion(sorted(str(p) for p in (tmp_path / "learned_embeds").glob("*.safetensors")))
    plain.load_lora_weights(tmp_path)

    for index in range(len(NAMES)):
        # a bare <class_i> is expanded to every vector by diffusers' maybe_convert_prompt
        prompt = build_prompt(class_token(index), METACLASS)
        assert torch.equal(_unet_output(ours, prompt), _unet_output(plain, prompt)), index
    assert not torch.allclose(_unet_output(plain, build_prompt(class_token(0), METACLASS)), base_output, atol=1e-4)
    # the pipeline expands the bare token into every vector of the class
    converted = ours.maybe_convert_prompt(concepts.prompt(1), ours.tokenizer)
    assert converted == "a photo of a <class_1> <class_1>_1 shape"


def test_apply_then_remove_restores_the_pipeline_exactly(learned):
    concepts = learned["concepts"]
    pipe = tiny_pipeline(seed=0)
    prompt = build_prompt("red circle", METACLASS)
    before, output = _snapshot(pipe), _unet_output(pipe, prompt)
    rng = torch.random.get_rng_state()
    concepts.apply(pipe)
    assert len(pipe.tokenizer) == before["tokenizer_len"] + 4
    assert not torch.equal(_unet_output(pipe, prompt), output)  # the LoRA is active
    with pytest.raises(ValueError, match="already applied"):
        concepts.apply(pipe)
    concepts.remove(pipe)
    assert torch.equal(torch.random.get_rng_state(), rng)
    _assert_same(before, _snapshot(pipe))
    assert torch.equal(_unet_output(pipe, prompt), output)
    with pytest.raises(ValueError, match="not applied"):
        concepts.remove(pipe)
    # and it can be applied again
    concepts.apply(pipe)
    ConceptSet(concepts.class_names, concepts.metaclass, concepts.embeddings, concepts.lora_state_dict).remove(pipe)
    _assert_same(before, _snapshot(pipe))


def test_apply_is_all_or_nothing(learned, monkeypatch):
    concepts = learned["concepts"]
    pipe = tiny_pipeline(seed=0)
    before = _snapshot(pipe)

    wide = ConceptSet(NAMES, METACLASS, torch.zeros(2, 1, 48), concepts.lora_state_dict)
    with pytest.raises(ValueError, match="48 wide.*expects 32"):
        wide.apply(pipe)
    lora = {k.replace("attn1.to_q", "attn1.to_nothing"): v for k, v in concepts.lora_state_dict.items()}
    with pytest.raises(ValueError, match="to_nothing"):
        ConceptSet(NAMES, METACLASS, concepts.embeddings, lora).apply(pipe)
    _assert_same(before, _snapshot(pipe))

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipe.unet, "load_lora_adapter", broken)  # fails after the tokens went in
    with pytest.raises(RuntimeError, match="disk on fire"):
        concepts.apply(pipe)
    monkeypatch.undo()
    _assert_same(before, _snapshot(pipe))
    concepts.apply(pipe)  # nothing half-applied is in the way
    concepts.remove(pipe)

    pipe.load_textual_inversion({"<class_1>": torch.zeros(32)})
    with pytest.raises(ValueError, match="<class_1>.*already exist"):
        concepts.apply(pipe)


def test_load_rejects_missing_corrupt_and_truncated_files(learned, tmp_path):
    concepts = learned["concepts"]
    with pytest.raises(ValueError, match="concepts.json is missing"):
        ConceptSet.load(tmp_path)
    concepts.save(tmp_path)
    lora = tmp_path / "pytorch_lora_weights.safetensors"
    lora.write_bytes(lora.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        ConceptSet.load(tmp_path)
    concepts.save(tmp_path)
    (tmp_path / "learned_embeds" / "class_1.safetensors").unlink()
    with pytest.raises(ValueError, match="class_1.safetensors is missing"):
        ConceptSet.load(tmp_path)
    concepts.save(tmp_path)
    (tmp_path / "concepts.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid"):
        ConceptSet.load(tmp_path)


def test_learning_rejects_bad_input_and_leaves_the_pipeline_alone():
    pipe = tiny_pipeline(seed=0)
    before = _snapshot(pipe)
    images = _images(per_class=1)
    config = ConceptConfig(train_steps=1, batch_size=2, lora_rank=2, resolution=32)
    with pytest.raises(ValueError, match=r"no images to learn from: \['xqzv_blorp'\]"):
        learn_concepts(pipe, [images[0], []], NAMES, METACLASS, config)
    with pytest.raises(ValueError, match="2 classes but class_names has 3"):
        learn_concepts(pipe, images, NAMES + ["third"], METACLASS, config)
    with pytest.raises(ValueError, match="unique"):
        learn_concepts(pipe, images, ["a", "a"], METACLASS, config)
    with pytest.raises(ValueError, match=r"\['to_nothing'\] match no linear layer"):
        learn_concepts(pipe, images, NAMES, METACLASS, ConceptConfig(train_steps=1, lora_target_modules=["to_nothing"]))
    with pytest.raises(ValueError, match="images_by_class\\[1\\]\\[0\\]"):
        learn_concepts(pipe, [images[0], [torch.zeros(2, 5, 5, 5)]], NAMES, METACLASS, config)
    with pytest.raises(TypeError, match="^world must be a diffii_datasets.distributed.World or None, got bool"):
        learn_concepts(pipe, images, NAMES, METACLASS, config, world=True)
    with pytest.raises(ValueError, match="world has 2 ranks, which needs an initialised torch.distributed"):
        learn_concepts(pipe, images, NAMES, METACLASS, config, world=World(1, 2, device=torch.device("cpu")))
    _assert_same(before, _snapshot(pipe))
    pipe.load_textual_inversion({"<class_0>": torch.zeros(32)})
    with pytest.raises(ValueError, match="already exist in the tokenizer"):
        learn_concepts(pipe, images, NAMES, METACLASS, config)


# The kill-and-resume case, shared by the killed subprocess and this process.
RESUME_CASE = textwrap.dedent("""
    import torch
    from diffii_datasets.testing import tiny_image_dataset, tiny_pipeline
    from diffii_datasets.diffusion.concepts import ConceptConfig, learn_concepts
    dataset = tiny_image_dataset(2, 2, seed=3)
    images = [[dataset[i][0] for i in range(len(dataset)) if dataset.targets[i] == c] for c in range(2)]
    config = ConceptConfig(train_steps=6, checkpoint_steps=3, batch_size=2, lora_rank=2, learning_rate=1e-3,
                           resolution=32, seed=5)
""")


def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path):
    work_dir = tmp_path / "work"
    killed = textwrap.dedent(f"""
        import os, signal
        torch.set_num_threads({torch.get_num_threads()})
        def die_after_first_checkpoint(step, loss):
            if step == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        learn_concepts(tiny_pipeline(0), images, dataset.classes, "shape", config,
                       work_dir={str(work_dir)!r}, progress=False, callback=die_after_first_checkpoint)
        raise SystemExit("not killed")
    """)
    result = subprocess.run([sys.executable, "-c", RESUME_CASE + killed], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert result.returncode == -9, result.stderr[-2000:]
    assert json.loads((work_dir / CHECKPOINT_FILE).read_text())["step"] == 3

    case = {}
    exec(RESUME_CASE, case)
    pipe = tiny_pipeline(0)
    args = (pipe, case["images"], case["dataset"].classes, "shape", case["config"])
    steps = []
    resumed = learn_concepts(*args, work_dir=work_dir, progress=False, callback=lambda step, loss: steps.append(step))
    assert steps == [4, 5, 6]
    uninterrupted = learn_concepts(*args, progress=False)
    assert torch.equal(resumed.embeddings, uninterrupted.embeddings)
    assert resumed.lora_state_dict.keys() == uninterrupted.lora_state_dict.keys()
    for key, value in uninterrupted.lora_state_dict.items():
        assert torch.equal(resumed.lora_state_dict[key], value), key
    assert resumed.identity() == uninterrupted.identity()

    # A finished run returns its final checkpoint without training again.
    again = learn_concepts(*args, work_dir=work_dir, progress=False, callback=lambda *a: steps.append(-1))
    assert again.identity() == resumed.identity() and steps == [4, 5, 6]
    # A checkpoint is never resumed by a different run (test_concept_checkpoints.py: nor when it is damaged).
    with pytest.raises(ValueError, match="different concept-learning run"):
        learn_concepts(*args[:4], dataclasses.replace(case["config"], seed=6), work_dir=work_dir, progress=False)
