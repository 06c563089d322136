"""The subcommands on tiny data and the tiny model: exit codes, what they print, what they write.

Each subcommand runs at least once in a subprocess, as a user would run it; argument
handling and error paths also run in-process through ``cli.main`` (same code, faster).
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from diffii_datasets import cli
from diffii_datasets.cli.generate import config_from_args
from diffii_datasets.config import DiffIIConfig
from diffii_datasets.preview import preview_store
from diffii_datasets.store import SyntheticStore
from tests.classify.fixtures import write_store
from tests.helpers.cli import (
    CLASS_NAMES,
    EXPECTED_COUNTS,
    FAST_FLAGS,
    OWN_FLAGS,
    SAMPLE_DIR,
    generate_args,
    make_inputs,
    run_cli,
    store_path_from,
)

COMMANDS = ("demo", "generate", "plan", "info", "verify", "preview", "export", "push")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def generated(inputs, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    result = run_cli(*generate_args(*inputs, cache))
    assert result.returncode == 0, result.stderr
    return SimpleNamespace(cache=cache, result=result, store=store_path_from(result.stdout))


def _main(capsys, *argv):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


# -- help and arguments -------------------------------------------------------------------------------------------


def test_console_script_lists_every_subcommand():
    script = Path(sys.executable).with_name("diffii-datasets")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_with_examples(capsys, command):
    status, out, _ = _main(capsys, command, "--help")
    assert status == 0
    assert "examples:" in out and f"diffii-datasets {command}" in out.split("examples:")[1]


def _subcommand(name):
    """The parser of subcommand ``name``."""
    (subparsers,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[name]


def _flags(parser):
    """``{option string: action}`` of a parser."""
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_every_config_knob_is_a_generate_flag(tmp_path):
    values = {  # a non-default value for every DiffIIConfig knob
        "model": "someone/some-model", "resolution": 256, "expansion_rate": 3.5, "split_ratio": 0.1,
        "inversion_steps": 50, "inversion_guidance_scale": 2.0, "denoising_steps": 10, "guidance_scale": 5.0,
        "interpolation": "spherical", "batch_size": 2, "concept_train_steps": 100, "concept_batch_size": 4,
        "concept_tokens_per_class": 2, "concept_lora_rank": 0, "concept_learning_rate": 1e-4,
        "concept_weight_decay": 0.0, "concept_checkpoint_steps": 50, "concept_gradient_checkpointing": True,
        "concept_mixed_precision": False, "concept_resolution": 64, "concept_lora_target_modules": ("to_q", "to_v"),
        "concept_crop": "center", "concept_random_flip": False, "concept_vae_posterior": "mean",
        "concept_lora_grad_clip_norm": 0.5, "concept_balance_classes": True, "concept_token_init": "class_name",
        "suffixes": "builtin:flower", "image_format": "jpeg", "seed": 3, "autocast_dtype": "bfloat16",
        "concept_image_order": "replacement", "concept_seed": 7, "concept_prompts": "imagenet_templates_small",
        "concept_separate_classes": True, "concept_max_crop_positions": 8, "concept_max_aspect_ratio": 4.0,
    }
    knobs = DiffIIConfig.knobs()
    assert set(values) == {item.name for item in knobs}
    flags = _flags(_subcommand("generate"))
    for item in knobs:  # each flag is spelled, typed and explained by its knob's declaration (Diff-II's meaning
        action = flags[item.flag]  # labelled "diff-ii: " where the baselines' differs)
        assert action.dest == item.name and action.default is None
        assert action.help.startswith((item.help, f"diff-ii: {item.help}"))
        assert (item.default is None or item.default == ()) or "(default: " in action.help
    argv = ["generate", "cub-5shot", "--root", "r", "--cache-dir", "c"]
    for item in knobs:
        value = values[item.name]
        if isinstance(value, bool):
            argv += [item.flag if value else "--no-" + item.flag[2:]]
        else:
            argv += [item.flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    expected = DiffIIConfig(**values)
    assert _config(*argv) == expected
    # Flags override a --config file.
    (tmp_path / "config.json").write_text(expected.to_json())
    overridden = _config("generate", "cub-10shot", "--root", "r", "--seed", "5",
                         "--no-concept-gradient-checkpointing", "--config", str(tmp_path / "config.json"))
    assert overridden == expected.replace(seed=5, concept_gradient_checkpointing=False)


def test_demo_and_generate_spell_every_shared_flag_alike():
    demo, generate = _flags(_subcommand("demo")), _flags(_subcommand("generate"))
    assert set(demo) - set(generate) == {"--output-dir"}  # the demo's own flag; every other is generate's
    for flag in ("--denoising-steps", "--concept-train-steps", "--expansion-rate", "--quiet"):
        assert demo[flag].dest == generate[flag].dest and demo[flag].type == generate[flag].type
    assert "--steps" not in demo and "--concept-steps" not in demo
    args = _subcommand("demo").parse_args(["--denoising-steps", "3", "--concept-train-steps", "4",
                                           "--expansion-rate", "1.5"])
    assert (args.denoising_steps, args.concept_train_steps, args.expansion_rate) == (3, 4, 1.5)


@pytest.mark.parametrize("setting, split_ratio, long_tail, suffixes", [
    (["cub-5shot"], 0.3, False, "bird"), (["pet-10shot"], 0.1, False, "animal"), (["cub-lt-if100"], 1.0, True, "bird"),
    (["flower-lt-if10"], 1.0, True, "flower"), (["cub", "--shots", "3"], 0.3, False, "bird"),
    (["aircraft", "--shots", "7"], 0.1, False, "aircraft"), (["cub-lt", "--imbalance-factor", "50"], 1.0, True, "bird"),
])
def test_unset_knobs_are_the_paper_defaults_with_the_settings_split_ratio(setting, split_ratio, long_tail, suffixes):
    # the long-tail settings also learn concepts class-balanced, as the published long-tail runs; each family's
    # suffix list is its own
    expected = DiffIIConfig(split_ratio=split_ratio, concept_balance_classes=long_tail, suffixes=f"builtin:{suffixes}")
    assert _config("generate", *setting, "--root", "r") == expected
    assert _config("generate", *setting, "--root", "r", "--split-ratio", "0.5").split_ratio == 0.5
    assert not _config("generate", *setting, "--root", "r", "--no-concept-balance-classes").concept_balance_classes


def _config(*argv):
    return config_from_args(cli.build_parser().parse_args(list(argv)))


@pytest.mark.parametrize("argv, status, message", [
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["generate", "cub-3shot", "--root", "r", "--cache-dir", "c"], 2, "'cub-5shot', 'cub-10shot'"),
    (["generate", "cub", "--root", ".", "--cache-dir", "c"], 1, "cub is a few-shot family: pass --shots N"),
    (["generate", "cub", "--root", ".", "--imbalance-factor", "5"], 1,
     "cub is a few-shot family: pass --shots N (the paper uses 5 and 10), not --imbalance-factor"),
    (["generate", "cub-lt", "--root", ".", "--shots", "5"], 1, "cub-lt is a long-tail family: pass "
                                                               "--imbalance-factor F"),
    (["generate", "cub-5shot", "--root", ".", "--imbalance-factor", "5"], 1,
     "cub-5shot is a few-shot setting: --imbalance-factor does not apply to it"),
    (["generate", "cub-5shot", "--root", "/does/not/exist", "--cache-dir", "c"], 1,
     "--root /does/not/exist: no such directory"),
    (["generate", "cub-5shot", "--root", ".", "--cache-dir", "c", "--shots", "7"], 1,
     "cub-5shot fixes shots=5; to use 7, name the family instead: generate cub --shots 7"),
    (["generate", "cub-5shot", "--root", ".", "--cache-dir", "c", "--split-ratio", "1.5"], 1,
     "--split-ratio must be a finite number in [0, 1], got 1.5"),
    (["generate", "cub-5shot", "--root", ".", "--cache-dir", "c", "--resolution", "30"], 1,
     "--resolution must be a positive multiple of 8, got 30"),
    (["generate", "cub-5shot", "--root", ".", "--cache-dir", "c", "--concept-batch-size", "0"], 1,
     "--concept-batch-size must be a positive int, got 0"),
    (["demo", "--denoising-steps", "0"], 1, "--denoising-steps must be a positive int, got 0"),
    (["generate", "cub-5shot", "--root", ".", "--concept-steps", "5"], 2, "unrecognized arguments: --concept-steps "
                                                                          "(did you mean --concept-train-steps?)"),
    (["generate", "cub-5shot", "--root", ".", "--concept-train", "5"], 2, "unrecognized arguments: --concept-train "
                                                                          "(did you mean --concept-train-steps?)"),
    (["plan", "my-birds", "--root", "."], 2, "'my-birds' is not one of the paper's settings or families"),
    (["plan", "cub-5shott", "--root", "."], 2, "did you mean 'cub-5shot'?"),
    (["plan", "cub-5shot", "--image-folder", ".", "--metaclass", "bird"], 1, "pass SETTING (cub-5shot) or "
                                                                             "--image-folder, not both"),
    (["plan", "--root", "."], 1, "name the images: a paper setting (e.g. cub-5shot --root data/) or your own "
                                 "(--image-folder DIR --metaclass WORD)"),
    (["plan", "cub-5shot", "--root", ".", "--metaclass", "bird"], 1, "--metaclass applies to --image-folder"),
    (["plan", "cub-5shot"], 1, "cub-5shot needs --root DIR"),
    (["generate", "--image-folder", str(SAMPLE_DIR), "--metaclass", "shape", "--shots", "2"], 1,
     "--shots applies to the paper's settings (SETTING), not to --image-folder"),
    (["generate", "--image-folder", str(SAMPLE_DIR.parent), "--metaclass", "shape"], 1,
     f"--image-folder {SAMPLE_DIR.parent}: expected one folder per class holding its images"),
    (["generate", "cub-5shot", "--root", ".", "--released-from", "/does/not/exist"], 1,
     "--released-from /does/not/exist: no such folder"),
    (["train", "--test-folder", str(SAMPLE_DIR), "--output-dir", "o"], 1, "--test-folder trains on a store made "
                                                                          "from your images (--store DIR"),
    (["train", "cub-5shot", "--test-folder", str(SAMPLE_DIR), "--output-dir", "o"], 1, "pass SETTING (cub-5shot) "
                                                                                       "or --test-folder, not both"),
    (["train", "cub-5shot", "--root", ".", "--image-folder", str(SAMPLE_DIR), "--output-dir", "o"], 1,
     "--image-folder applies to your own images, with --test-folder"),
    (["generate", "cub-5shot", "--root", ".", "--cache-dir", "c", "--concepts", "/no/such/concepts"], 1,
     "--concepts /no/such/concepts"),
    (["info", "/does/not/exist"], 1, "no such store directory"),
    (["preview", "/does/not/exist"], 2, "the following arguments are required: -o/--output"),
])
def test_bad_input_is_one_clear_line(capsys, argv, status, message):
    got, out, err = _main(capsys, *argv)
    assert got == status
    assert message in err and "Traceback" not in err


def test_a_family_without_its_count_names_only_the_flags_given(capsys):
    status, _, err = _main(capsys, "generate", "cub", "--root", ".")
    assert status == 1
    assert "cub is a few-shot family: pass --shots N (the paper uses 5 and 10)" in err
    assert "imbalance" not in err  # --imbalance-factor was not passed
    status, _, err = _main(capsys, "generate", "flower-lt", "--root", ".")
    assert status == 1
    assert "flower-lt is a long-tail family: pass --imbalance-factor F (the paper uses 100, 20 and 10)" in err
    assert "--shots" not in err


def test_missing_dataset_under_the_root_is_explained(capsys, tmp_path):
    status, _, err = _main(capsys, "generate", "pet-5shot", "--root", str(tmp_path), "--cache-dir",
                           str(tmp_path / "c"), *FAST_FLAGS)
    assert status == 1
    assert f"cannot load pet-5shot from {tmp_path}" in err and "Dataset not found" in err
    assert "use --download" in err and "download=True" not in err  # the flag, not the library's keyword


# -- generate -----------------------------------------------------------------------------------------------------


def test_generate_writes_a_complete_store_and_says_where(generated, inputs):
    out = generated.result.stdout
    assert f"cub-5shot: 5 real images in 3 classes (metaclass 'bird') from {inputs[0]}" in out
    assert "generated 10 synthetic images for 3 classes" in out
    assert f"store: {generated.store} (10 synthetic images, complete)" in out
    store = SyntheticStore.open(generated.store)
    assert generated.store.parent == generated.cache and store.manifest()["complete"]
    assert [store.class_record(c)["count"] for c in range(3)] == EXPECTED_COUNTS
    assert list(store.header.classes) == CLASS_NAMES and store.header.model == str(inputs[1])
    assert len(list((generated.cache / "concepts").iterdir())) == 1


def test_a_quiet_generate_prints_only_its_own_warnings(generated):
    # The model is loaded from a directory and the learned concepts applied to it: no loading bars, no
    # library notices (mean resizing, LoRA keys, deprecated keywords), only this package's one-line warnings.
    lines = generated.result.stderr.splitlines()
    assert lines and all(line.startswith("diffii-datasets generate: warning: ") for line in lines), lines


def test_plan_counts_a_fresh_caches_work_and_none_for_a_complete_store(generated, inputs, capsys, tmp_path):
    root, model = inputs
    flags = ["--root", str(root), "--model", str(model), *FAST_FLAGS]
    status, out, _ = _main(capsys, "plan", "cub-5shot", "--cache-dir", str(tmp_path / "fresh"), *flags)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("cub-5shot: 5 real images in 3 classes (metaclass 'bird')")
    assert lines[1] == "Diff-II plan: 3 of 3 classes to generate; images at 32 px, concepts learned at 32 px"
    assert lines[2].split() == "concept learning 3 steps x batch 2 6 UNet evaluations (forward and backward)".split()
    assert lines[3].split() == "DDIM inversion 5 real images x 4 steps 20 UNet evaluations".split()
    assert lines[4].split() == "generation 10 synthetic images x 3 steps x 2 (guidance 7.5) 60 UNet evaluations".split()
    assert lines[5].split() == ["total", "86", "UNet", "evaluations"]
    assert lines[6] == ("  estimated time    unknown (no model was run: pass --estimate to time a few UNet calls on "
                        "this machine)")
    assert lines[7].endswith("(not made yet)") and not (tmp_path / "fresh").exists()
    status, out, _ = _main(capsys, "plan", "cub-5shot", "--cache-dir", str(generated.cache), *flags)
    assert status == 0
    assert "0 of 3 classes to generate (3 already in the store)" in out and "none: nothing to generate" in out
    assert "  estimated time    none (nothing to run)" in out.splitlines()
    assert out.splitlines()[-1] == f"store: {generated.store} (complete)"


def test_plan_of_a_filter_counts_the_store_it_filters_first(inputs, capsys, tmp_path):
    root, model = inputs
    status, out, _ = _main(capsys, "plan", "cub-5shot", "--method", "real-filter", "--root", str(root), "--model",
                           str(model), "--denoising-steps", "4", "--cache-dir", str(tmp_path / "cache"))
    assert status == 0
    lines = out.splitlines()
    assert lines[1] == "Real-Filter reads the Real-Guidance store of the same images, made first:"
    assert lines[2].startswith("Real-Guidance plan: 3 of 3 classes to generate")
    # 25 images (rate 5), each edited at strength 0.5 over PNDM's 4-step schedule (3 UNet calls) with guidance
    editing = lines[3].split()
    assert editing[:3] == ["image-to-image", "25", "synthetic"] and editing[-3:] == ["150", "UNet", "evaluations"]
    stores = [line for line in lines if line.startswith("store: ")]
    assert len(stores) == 2 and all(line.endswith("(not made yet)") for line in stores)
    filtering = lines[lines.index(stores[0]) + 1:]
    assert filtering[0].startswith("Real-Filter plan: 3 of 3 classes to generate")
    assert filtering[1].split()[:3] == ["CLIP", "filter", "25"]
    assert filtering[2].split()[1:] == ["0", "UNet", "evaluations"]
    assert filtering[3] == "  estimated time    unknown (the method runs no UNet)"


def test_generate_again_skips_what_is_in_the_store(generated, inputs):
    again = run_cli(*generate_args(*inputs, generated.cache), "-v")
    assert again.returncode == 0, again.stderr
    assert ("skipped 3 classes already in the store: 0 (Black footed Albatross), 1 (Laysan Albatross), "
            "2 (Sooty Albatross)") in again.stdout
    assert "nothing to generate: the store was already complete" in again.stdout
    assert f"class 1 (Laysan Albatross) is already in the store {generated.store}, skipped" in again.stderr
    assert "loaded" not in again.stderr  # no pipeline was loaded
    assert store_path_from(again.stdout) == generated.store


def test_generate_with_saved_concepts(generated, inputs, tmp_path):
    (concepts,) = (generated.cache / "concepts").iterdir()
    result = run_cli(*generate_args(*inputs, tmp_path / "cache", "--concepts", str(concepts), "--expansion-rate",
                                    "1"))
    assert result.returncode == 0, result.stderr
    store = SyntheticStore.open(store_path_from(result.stdout))
    assert store.header.concepts != SyntheticStore.open(generated.store).header.concepts
    assert not store.header.concepts.startswith("learned:")
    assert not (tmp_path / "cache" / "concepts").exists()  # nothing was learned
    assert store.manifest()["total_images"] == 5


# -- info, verify, preview ----------------------------------------------------------------------------------------


def test_info_reports_config_counts_completeness_and_size(generated, capsys):
    result = run_cli("info", str(generated.store), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    store = SyntheticStore.open(generated.store)
    assert info["complete"] and info["size_bytes"] == store.size_on_disk()
    assert info["header"]["config"]["split_ratio"] == 0.3 and info["header"]["metaclass"] == "bird"
    assert [(r["name"], r["real"], r["synthetic"], r["committed"]) for r in info["classes"]] == [
        ("Black footed Albatross", 2, 4, True), ("Laysan Albatross", 2, 4, True), ("Sooty Albatross", 1, 2, True)]
    status, out, _ = _main(capsys, "info", str(generated.store))
    assert status == 0
    assert "status: complete" in out and f"({store.size_on_disk()} bytes)" in out
    assert "images: 5 real, 10 synthetic of 10 expected" in out and '"split_ratio": 0.3' in out
    assert any(line.split()[:4] == ["1", "Laysan", "Albatross", "2"] and line.endswith("committed")
               for line in out.splitlines())


def test_info_on_a_cache_dir_names_the_stores_in_it(generated, capsys):
    status, _, err = _main(capsys, "info", str(generated.cache))
    assert status == 1 and f"stores in it: {generated.store}" in err


def test_info_on_a_store_of_an_older_format_says_so(capsys, tmp_path):
    (tmp_path / "store.json").write_text(json.dumps({"format": 1, "classes": ["a"]}))
    status, _, err = _main(capsys, "info", str(tmp_path))
    assert status == 1 and "written in store format 1 (diffii-datasets 0.1)" in err and "Traceback" not in err


def test_verify_passes_then_finds_damage_and_missing_classes(generated, capsys, tmp_path):
    ok = run_cli("verify", str(generated.store))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK (3 classes, 10 synthetic images, every checksum matches, every image decodes)" in ok.stdout

    damaged = tmp_path / "damaged"
    shutil.copytree(generated.store, damaged)
    image = damaged / "classes/00001/images/00002.png"
    image.write_bytes(image.read_bytes()[:-10])
    result = run_cli("verify", str(damaged))
    assert result.returncode == 1
    assert "PROBLEM class 1 (Laysan Albatross): images/00002.png is checksum mismatch" in result.stdout
    assert "NOT OK (1 problems, 0 classes missing)" in result.stdout

    record = damaged / "classes/00001/class.json"  # a commit record rewritten to match the damage
    record.write_text(record.read_text().replace('"count": 4', '"count": 3'))
    status, out, _ = _main(capsys, "verify", str(damaged))
    assert status == 1 and "class 1: its commit record does not match the manifest" in out

    shutil.rmtree(damaged / "classes/00002")
    (damaged / "manifest.json").unlink()
    status, out, _ = _main(capsys, "verify", str(damaged))
    assert status == 1 and "INCOMPLETE classes not generated yet: [2]" in out


def test_preview_writes_the_grid_of_the_requested_classes(generated, capsys, tmp_path):
    output = tmp_path / "sub" / "grid.png"
    result = run_cli("preview", str(generated.store), "-o", str(output), "--classes", "0,Sooty Albatross",
                     "--per-class", "3", "--tile", "40")
    assert result.returncode == 0, result.stderr
    expected = preview_store(SyntheticStore.open(generated.store), [0, 2], per_class=3, tile=40)
    with Image.open(output) as image:
        assert image.format == "PNG" and image.size == expected.size
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(expected))
    assert f"preview: {output} ({expected.width}x{expected.height} px)" in result.stdout
    status, _, err = _main(capsys, "preview", str(generated.store), "-o", str(output), "--classes", "Dodo")
    assert status == 1 and "'Dodo' is neither a class index (0..2) nor a class name" in err
    status, _, err = _main(capsys, "preview", str(generated.store), "-o", str(output), "--classes", "0,7")
    assert status == 1 and "--classes: '7' is neither a class index (0..2)" in err


# -- export and push (diffii_datasets.hf) -------------------------------------------------------------------------


def test_export_writes_a_loadable_dataset_folder(generated, inputs, tmp_path):
    import datasets

    folder = tmp_path / "export"
    result = run_cli("export", str(generated.store), str(folder), "--config-name", "cub-5shot",
                     "--test-root", str(inputs[0]))
    assert result.returncode == 0, result.stderr
    assert f"exported cub-5shot: 4 files in {folder}" in result.stdout
    assert (folder / "README.md").is_file()
    loaded = datasets.load_dataset(str(folder), "cub-5shot", cache_dir=str(tmp_path / "hf-cache"))
    assert {split: len(rows) for split, rows in loaded.items()} == {"train": 5, "synthetic": 10, "test": 3}


def test_export_refuses_an_incomplete_store_and_test_root_without_a_setting(generated, capsys, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(generated.store, partial)
    SyntheticStore.open(partial).discard(2)
    status, _, err = _main(capsys, "export", str(partial), str(tmp_path / "out"), "--config-name", "cub-5shot")
    assert status == 1 and "Sooty Albatross" in err
    status, _, err = _main(capsys, "export", str(generated.store), str(tmp_path / "out"), "--config-name", "mine",
                           "--card", "cub", "--test-root", ".")
    assert status == 1 and "--test-root needs --config-name to be one of the paper's settings" in err


def test_push_without_a_token_fails_before_any_upload(generated, tmp_path):
    result = run_cli("push", str(generated.store), "--repo-id", "someone/diffii-cub", "--config-name", "cub-5shot",
                     HF_TOKEN="", HF_HOME=str(tmp_path / "hf-home"))
    assert result.returncode == 1
    assert "no Hugging Face token found" in result.stderr and "Traceback" not in result.stderr


def test_push_uploads_the_exported_folder(generated, capsys, monkeypatch, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError

    uploads = []

    def upload_folder(api, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        uploads.append((kwargs["repo_id"], api.token, files))
        return SimpleNamespace(commit_url="https://huggingface.co/datasets/someone/diffii-cub/commit/abc")

    def no_readme(api, repo_id, filename, **kwargs):
        raise EntryNotFoundError(f"{filename} not in {repo_id}")

    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "repo_info", lambda api, repo_id, **kwargs: SimpleNamespace(sha="abc"))
    monkeypatch.setattr(HfApi, "hf_hub_download", no_readme)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    status, out, err = _main(capsys, "push", str(generated.store), "--repo-id", "someone/diffii-cub",
                             "--config-name", "cub-5shot", "--token", "hf_secret", "--private")
    assert status == 0, err
    assert uploads == [("someone/diffii-cub", "hf_secret", [
        "README.md", "data/cub-5shot/synthetic-00000-of-00001.parquet",
        "data/cub-5shot/train-00000-of-00001.parquet"])]
    assert "pushed cub-5shot to someone/diffii-cub: https://huggingface.co/datasets/someone/diffii-cub/commit/abc" \
        in out
    assert "hf_secret" not in out + err


def test_library_wording_is_rewritten_as_flags():
    assert cli.cli_wording("Dataset not found at data/x. You can use download=True to download it") == \
        "Dataset not found at data/x. You can use --download to download it"
    assert cli.cli_wording("Use another cache_dir or delete /tmp/my_cache_dir/cache_dir/3f9c") == \
        "Use another --cache-dir or delete /tmp/my_cache_dir/cache_dir/3f9c"


# -- your own images -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """generate --image-folder on the bundled sample with the tiny model, run as a user would."""
    cache = tmp_path_factory.mktemp("own-cache")
    result = run_cli("generate", *OWN_FLAGS, "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    return SimpleNamespace(cache=cache, result=result, store=store_path_from(result.stdout))


def test_generate_takes_your_own_images_and_the_tiny_model(own):
    out = own.result.stdout
    assert f"{SAMPLE_DIR}: 12 real images in 3 classes (metaclass 'shape'); method Diff-II\n" in out
    assert "generated 12 synthetic images for 3 classes" in out
    store = SyntheticStore.open(own.store)
    assert store.header.model == "tiny" and store.header.metaclass == "shape" and store.manifest()["complete"]
    assert list(store.header.classes) == ["blue triangle", "green square", "red circle"]  # the class folders
    plan = own.result.stderr[own.result.stderr.index("Diff-II plan: "):].splitlines()
    assert plan[0].startswith("Diff-II plan: 3 of 3 classes to generate; images at 32 px")
    assert plan[5].startswith("  estimated time    about ")  # from a probe of the tiny model on the CPU
    assert "\x1b" not in own.result.stderr  # not a terminal: whole lines, no cursor moves


def test_your_own_images_name_the_store_python_names(own, capsys):
    from torchvision.datasets import ImageFolder

    from diffii_datasets.job import build_job
    from diffii_datasets.store.cache import store_path

    config = DiffIIConfig.preset("tiny", concept_train_steps=2, inversion_steps=3, denoising_steps=2,
                                 expansion_rate=1.0)
    job = build_job(ImageFolder(str(SAMPLE_DIR)), "shape", config)
    assert store_path(own.cache, job.header()) == own.store  # DiffIIAugmented(ImageFolder(DIR), WORD, config=...)
    status, out, _ = _main(capsys, "plan", *OWN_FLAGS, "--cache-dir", str(own.cache))
    assert status == 0 and out.splitlines()[-1] == f"store: {own.store} (complete)"


def test_train_tests_on_your_own_folder_with_a_store_or_the_images_alone(own, capsys, tmp_path):
    tiny = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "32", "--resize", "32",
            "--batch-size", "6", "--workers", "0", "--epochs", "1", "-q"]
    test_folder = tmp_path / "test"
    shutil.copytree(SAMPLE_DIR, test_folder)
    status, out, err = _main(capsys, "train", "--test-folder", str(test_folder), "--store", str(own.store),
                             "--output-dir", str(tmp_path / "joint"), *tiny)
    assert status == 0, err
    assert out.startswith(f"test set: every image of {test_folder}\n")
    report = json.loads((tmp_path / "joint" / "report.json").read_text())
    assert report["store"] == str(own.store) and report["recipe"]["synthetic_probability"] == 0.5
    assert report["recipe"]["lr"] == 0.05  # the few-shot CUB recipe, as --help says
    status, out, err = _main(capsys, "train", "--test-folder", str(test_folder), "--image-folder", str(SAMPLE_DIR),
                             "--output-dir", str(tmp_path / "baseline"), *tiny)
    assert status == 0, err
    assert json.loads((tmp_path / "baseline" / "report.json").read_text())["baseline"]
    shutil.rmtree(test_folder / "red circle")
    status, _, err = _main(capsys, "train", "--test-folder", str(test_folder), "--store", str(own.store),
                           "--output-dir", str(tmp_path / "x"), *tiny)
    assert status == 1 and f"--test-folder {test_folder} must hold the class folders of --store {own.store}" in err
    assert "missing: ['red circle']" in err


def test_report_works_on_a_store_of_your_own_images(own, capsys, tmp_path):
    status, out, err = _main(capsys, "report", str(own.store), "-o", str(tmp_path), "--tiny-models", "-q")
    assert status == 0, err
    assert "3 classes, 12 real and 12 synthetic images" in out and (tmp_path / "report.html").is_file()


def test_every_data_command_takes_the_same_data_flags():
    flags = {name: _flags(_subcommand(name)) for name in ("generate", "plan", "train", "evaluate")}
    for flag in ("--image-folder", "--metaclass", "--root", "--released", "--released-from", "--cache-dir",
                 "--model", "--concept-train-steps"):
        assert flags["generate"][flag].help == flags["plan"][flag].help
    for name in ("train", "evaluate"):
        assert "--released-from" in flags[name]
    assert "--test-folder" in flags["train"] and "--image-folder" in flags["train"]


def test_workers_are_at_most_the_cpus(monkeypatch):
    import warnings

    from diffii_datasets.classify.data import DEFAULT_WORKERS, loader_workers
    from diffii_datasets.cli import cli_wording

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert DEFAULT_WORKERS > 2 and loader_workers(None) == 2
    assert loader_workers(1) == 1
    with pytest.warns(UserWarning, match="workers=8: this machine has 2 CPUs, 2; starting 2 data-loading") as caught:
        assert loader_workers(8) == 2
    assert cli_wording(str(caught[0].message)).startswith("--workers 8: this machine has 2 CPUs")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks on this machine: one CPU each
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert loader_workers(None) == 1 and loader_workers(4) == 1


# -- push --dry-run ------------------------------------------------------------------------------------------------


def test_push_dry_run_shows_what_would_be_uploaded_without_a_network_or_a_token(capsys, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    for name in ("create_repo", "repo_info", "hf_hub_download", "upload_folder"):
        monkeypatch.setattr(HfApi, name, lambda *args, **kwargs: pytest.fail("the network was used"))
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved token either
    store = write_store(tmp_path / "store", [2, 1], classes=["red circle", "blue square"])
    status, out, err = _main(capsys, "push", str(store.path), "--repo-id", "someone/shapes", "--config-name",
                             "shapes", "--dry-run", "--private")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == ("dry run: nothing uploaded, no network used. A push would upload to the dataset repository "
                        "someone/shapes (created private if it does not exist), config shapes, in one commit "
                        "'Add Diff-II config shapes':")
    assert [line.split("  (")[0].strip() for line in lines[1:4]] == [
        "README.md", "data/shapes/synthetic-00000-of-00001.parquet", "data/shapes/train-00000-of-00001.parquet"]
    assert all(line.endswith(" bytes)") for line in lines[1:4])
    assert 'load_dataset("someone/shapes", "shapes")' in out and "config_name: shapes" in out  # the card itself


@pytest.mark.parametrize("command, says", [
    ("generate", "--image-folder DIR --metaclass WORD instead of SETTING and --root"),
    ("plan", "--image-folder DIR --metaclass WORD instead of SETTING and --root"),
    ("train", "--test-folder DIR instead of SETTING: your test images"),
])
def test_help_says_how_to_use_your_own_images(capsys, command, says):
    status, out, _ = _main(capsys, command, "--help")
    assert status == 0 and "your own images:" in out and says in out
