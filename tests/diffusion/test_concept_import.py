"""Importing the released Diff-Mix / Diff-II concept files (written here in their exact layouts, tiny sizes)."""

import datetime

import pytest
import torch
from diffusers.models.attention_processor import Attention
from safetensors.torch import save_file

from diffii_datasets.diffusion.concepts import ConceptSet, import_released_concepts
from diffii_datasets.testing import tiny_pipeline

# Released names use underscores (CUB) or slashes; the caller's differ in separators and case, and in order.
RELEASED_NAMES = ["Black_footed_Albatross", "red/circle", "Laysan_Albatross"]
CLASS_NAMES = ["red circle", "black footed albatross"]
RANK = 3


def _write_released(directory, unet, *, width=32, lora_dtype=torch.float32, seed=0):
    """``learned_embeds-steps-35000.bin`` + old attention-processor ``pytorch_lora_weights.safetensors``."""
    g = torch.Generator().manual_seed(seed)
    lora = {}
    for name, module in unet.named_modules():
        if isinstance(module, Attention):
            for proj, layer in (("to_q", module.to_q), ("to_k", module.to_k), ("to_v", module.to_v),
                                ("to_out", module.to_out[0])):
                lora[f"{name}.processor.{proj}_lora.down.weight"] = (
                    0.2 * torch.randn(RANK, layer.in_features, generator=g)).to(lora_dtype)
                lora[f"{name}.processor.{proj}_lora.up.weight"] = (
                    0.2 * torch.randn(layer.out_features, RANK, generator=g)).to(lora_dtype)
    lora_path = directory / "pytorch_lora_weights.safetensors"
    save_file(lora, lora_path)
    placeholders = [f"<class_{i}>" for i in range(len(RELEASED_NAMES))]
    embeds = {
        "learned_embeds_dict": {p: torch.randn(width, generator=g) for p in placeholders},
        "name2placeholder": dict(zip(RELEASED_NAMES, placeholders)),
        "placeholder2name": dict(zip(placeholders, RELEASED_NAMES)),
    }
    embeds_path = directory / "learned_embeds-steps-35000.bin"
    torch.save(embeds, embeds_path)
    return embeds_path, lora_path, embeds, lora


def _unet_output(pipe):
    ids = pipe.tokenizer(["a photo of a red circle shape"], padding="max_length",
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = pipe.text_encoder(ids)[0]
        latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
        return pipe.unet(latents, torch.tensor([500]), encoder_hidden_states=hidden).sample


@pytest.fixture(scope="module")
def pipe():
    """Read-only base weights for writing files and computing references."""
    return tiny_pipeline(seed=0)


@pytest.mark.parametrize("lora_dtype", [torch.float32, torch.float16])
def test_import_matches_class_names_and_converts_the_lora(tmp_path, pipe, lora_dtype):
    embeds_path, lora_path, embeds, lora = _write_released(tmp_path, pipe.unet, lora_dtype=lora_dtype)
    assert len(lora) == 64  # 4 transformer blocks x (attn1, attn2) x (q, k, v, out) x (down, up)
    concepts = import_released_concepts(embeds_path, lora_path, CLASS_NAMES, "bird")
    assert concepts.class_names == CLASS_NAMES and concepts.metaclass == "bird"
    assert concepts.tokens_per_class == 1 and concepts.lora_rank == RANK
    vectors = embeds["learned_embeds_dict"]
    assert torch.equal(concepts.embeddings[0, 0], vectors["<class_1>"])  # "red circle" was released as <class_1>
    assert torch.equal(concepts.embeddings[1, 0], vectors["<class_0>"])
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.lora_A.weight"
    assert torch.equal(concepts.lora_state_dict[key],
                       lora["down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight"]
                       .float())
    assert len(concepts.lora_state_dict) == len(lora)


def test_imported_lora_really_changes_the_unet_like_merged_weights(tmp_path, pipe):
    embeds_path, lora_path, embeds, lora = _write_released(tmp_path, pipe.unet)
    concepts = import_released_concepts(embeds_path, lora_path, CLASS_NAMES, "bird")
    applied = tiny_pipeline(seed=0)
    base = _unet_output(applied)
    concepts.apply(applied)
    output = _unet_output(applied)
    assert (output - base).abs().max() > 1e-3  # not silently dropped

    # Reference: W + up @ down on every targeted projection (LoRA scale 1, as the released processors).
    merged = tiny_pipeline(seed=0)
    modules = dict(merged.unet.named_modules())
    with torch.no_grad():
        for key, down in lora.items():
            if key.endswith("_lora.down.weight"):
                block, proj = key.split(".processor.")
                proj = proj.split("_lora.")[0]
                layer = modules[f"{block}.{proj}" if proj != "to_out" else f"{block}.to_out.0"]
                layer.weight += lora[key.replace(".down.", ".up.")] @ down
    torch.testing.assert_close(output, _unet_output(merged), atol=1e-5, rtol=1e-4)

    token_id = applied.tokenizer.convert_tokens_to_ids("<class_1>")
    assert torch.equal(applied.text_encoder.get_input_embeddings().weight[token_id].detach(),
                       embeds["learned_embeds_dict"]["<class_0>"])
    concepts.remove(applied)
    assert torch.equal(_unet_output(applied), base)


def test_plain_diffusers_loads_nothing_from_the_released_lora(tmp_path, pipe):
    """Why the conversion exists: current diffusers ignores the old layout instead of failing."""
    _, lora_path, _, _ = _write_released(tmp_path, pipe.unet)
    plain = tiny_pipeline(seed=0)
    base = _unet_output(plain)
    plain.load_lora_weights(lora_path)  # only logs "No LoRA keys associated to UNet2DConditionModel found"
    assert torch.equal(_unet_output(plain), base)
    assert not getattr(plain.unet, "peft_config", None)


def test_imported_concepts_round_trip_through_save_and_load(tmp_path, pipe):
    embeds_path, lora_path, _, _ = _write_released(tmp_path, pipe.unet)
    concepts = import_released_concepts(embeds_path, lora_path, CLASS_NAMES, "bird")
    concepts.save(tmp_path / "saved")
    assert ConceptSet.load(tmp_path / "saved").identity() == concepts.identity()


def test_unknown_class_names_are_all_listed(tmp_path, pipe):
    embeds_path, lora_path, _, _ = _write_released(tmp_path, pipe.unet)
    with pytest.raises(ValueError, match=r"2 class name\(s\): \['Sooty Albatross', 'blue square'\]"):
        import_released_concepts(embeds_path, lora_path, ["red circle", "Sooty Albatross", "blue square"], "bird")


def test_embedding_width_is_checked_before_anything_is_applied(tmp_path, pipe):
    embeds_path, lora_path, _, _ = _write_released(tmp_path, pipe.unet, width=768)
    concepts = import_released_concepts(embeds_path, lora_path, CLASS_NAMES, "bird")
    target = tiny_pipeline(seed=0)
    vocab = len(target.tokenizer)
    with pytest.raises(ValueError, match="768 wide.*expects 32"):
        concepts.apply(target)
    assert len(target.tokenizer) == vocab and not hasattr(target.unet, "peft_config")


def test_lora_for_another_unet_is_rejected_on_apply(tmp_path, pipe):
    embeds_path, lora_path, _, _ = _write_released(tmp_path, pipe.unet)
    concepts = import_released_concepts(embeds_path, lora_path, CLASS_NAMES, "bird")
    bigger = {k: (torch.zeros(RANK, 64) if k.endswith("lora_A.weight") and "attn2.to_k" in k else v)
              for k, v in concepts.lora_state_dict.items()}
    target = tiny_pipeline(seed=0)
    with pytest.raises(ValueError, match="shapes do not match the UNet"):
        ConceptSet(CLASS_NAMES, "bird", concepts.embeddings, bigger).apply(target)
    assert not hasattr(target.unet, "peft_config")


def test_corrupt_truncated_missing_and_misshapen_files(tmp_path, pipe):
    embeds_path, lora_path, embeds, lora = _write_released(tmp_path, pipe.unet)
    with pytest.raises(FileNotFoundError, match="nowhere.bin"):
        import_released_concepts(tmp_path / "nowhere.bin", lora_path, CLASS_NAMES, "bird")

    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(embeds_path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated.bin could not be read"):
        import_released_concepts(truncated, lora_path, CLASS_NAMES, "bird")

    short_lora = tmp_path / "short.safetensors"
    short_lora.write_bytes(lora_path.read_bytes()[:-64])
    with pytest.raises(ValueError, match="short.safetensors is not a readable safetensors file"):
        import_released_concepts(embeds_path, short_lora, CLASS_NAMES, "bird")

    pickled = tmp_path / "pickled.bin"  # arbitrary pickled objects are refused (weights_only=True)
    torch.save({"learned_embeds_dict": datetime.date(2024, 1, 1)}, pickled)
    with pytest.raises(ValueError, match="weights-only"):
        import_released_concepts(pickled, lora_path, CLASS_NAMES, "bird")

    plain = tmp_path / "plain.bin"
    torch.save({"<class_0>": torch.zeros(32)}, plain)
    with pytest.raises(ValueError, match="not a released embedding file"):
        import_released_concepts(plain, lora_path, CLASS_NAMES, "bird")

    peft_layout = tmp_path / "peft.safetensors"
    save_file({k.replace(".processor.", ".").replace("_lora.down", ".lora_A"): v for k, v in lora.items()},
              peft_layout)
    with pytest.raises(ValueError, match="not in the released attention-processor LoRA layout"):
        import_released_concepts(embeds_path, peft_layout, CLASS_NAMES, "bird")

    missing_up = tmp_path / "missing_up.safetensors"
    save_file({k: v for k, v in lora.items() if not k.endswith("attn1.processor.to_q_lora.up.weight")}, missing_up)
    with pytest.raises(ValueError, match="without both lora_A and lora_B"):
        import_released_concepts(embeds_path, missing_up, CLASS_NAMES, "bird")
