"""Several ranks under torchrun (gloo, loopback): sharding, the shared-filesystem check, data-parallel
concept learning, and stores identical to a one-process run, also after a rank was killed."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.cli import (
    CLASS_NAMES,
    EXPECTED_COUNTS,
    generate_args,
    make_inputs,
    run_cli,
    store_files,
    store_path_from,
    torchrun,
)
from diffii_datasets.diffusion.concepts import learn_concepts
from diffii_datasets.distributed import World, detect_launch, shard_classes
from diffii_datasets.testing import tiny_pipeline
from tests.helpers.distributed_worker import LEARN_BATCHES, learning_config, learning_inputs

WORKER = ("-m", "tests.helpers.distributed_worker")

# -- launch detection and sharding (no processes) -------------------------------------------------------------------


def test_launch_is_read_from_torchrun_and_accelerate_variables():
    assert detect_launch({}) is None
    assert detect_launch({"PATH": "/bin"}) is None
    launch = detect_launch({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1"})
    assert (launch.rank, launch.world_size, launch.local_rank) == (3, 8, 1)


@pytest.mark.parametrize("env, match", [
    ({"RANK": "0"}, "found RANK but not WORLD_SIZE, LOCAL_RANK"),
    ({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK must be an integer, got 'x'"),
    ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "inconsistent"),
    ({"RANK": "0", "WORLD_SIZE": "0", "LOCAL_RANK": "0"}, "inconsistent"),
])
def test_partial_or_inconsistent_launch_variables_are_errors(env, match):
    with pytest.raises(ValueError, match=match):
        detect_launch(env)


def test_a_single_process_world_needs_no_process_group():
    world = World()
    assert (world.rank, world.size, world.is_main) == (0, 1, True)
    world.barrier()
    assert world.all_gather({"a": 1}) == [{"a": 1}] and world.broadcast(7) == 7


def test_shards_balance_expected_images_greedily_and_deterministically():
    work = {0: 10, 1: 8, 2: 7, 3: 5, 4: 5, 5: 1}
    shards = shard_classes(work, 2)
    # LPT: 10->r0, 8->r1, 7->r1 (15), 5->r0 (15), 5->r0 (20; tie goes to rank 0), 1->r1 (16)
    assert shards == [[0, 3, 4], [1, 2, 5]]
    assert shard_classes(dict(reversed(work.items())), 2) == shards  # order of the mapping does not matter
    three = shard_classes(work, 3)
    assert sorted(c for shard in three for c in shard) == sorted(work)
    loads = [sum(work[c] for c in shard) for shard in three]
    assert max(loads) - min(loads) <= max(work.values())


def test_more_ranks_than_classes_leaves_idle_ranks():
    assert shard_classes({4: 6, 9: 2}, 4) == [[4], [9], [], []]
    assert shard_classes({}, 2) == [[], []]
    assert shard_classes({0: 0, 1: 0, 2: 0}, 2) == [[0, 2], [1]]


def test_bad_sharding_arguments():
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        shard_classes({0: 1}, 0)
    with pytest.raises(ValueError, match="non-negative"):
        shard_classes({0: -1}, 2)


# -- torchrun ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = tmp_path_factory.mktemp("checks")
    result = torchrun(2, *WORKER, "checks", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return out, [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]


def test_leaving_the_world_stops_the_gloo_threads_even_after_importing_torchvision(tmp_path):
    # Left running, these threads can abort a successful run at interpreter exit (SIGABRT).
    result = torchrun(2, "-m", "tests.helpers.exit_worker", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in range(2):
        threads = json.loads((tmp_path / f"rank-{rank}.json").read_text())
        assert "pt_gloo_runloop" in threads["inside"]
        assert not [name for name in threads["after"] if "gloo" in name], threads["after"]


def test_ranks_see_their_launch_and_detect_an_unshared_directory(checks):
    _, ranks = checks
    for rank, result in enumerate(ranks):
        assert result["launch"] == [rank, 2, rank] and result["world"] == [rank, 2, "cpu"]
        assert result["shared_markers_left"] == []  # the check cleans up after itself
        message = result["private_error"]
        assert f"private-{rank} is not on a filesystem shared by all 2 ranks" in message
        assert "rank 0 on" in message and "cannot see the markers of ranks [1]" in message
        assert "rank 1 on" in message and "cannot see the markers of ranks [0]" in message


@pytest.mark.parametrize("batch", LEARN_BATCHES)
def test_data_parallel_concepts_match_one_process(checks, batch):
    out, ranks = checks
    images, names = learning_inputs()
    losses = []
    single = learn_concepts(tiny_pipeline(seed=0), images, names, "shape", learning_config(batch),
                            progress=False, callback=lambda step, loss: losses.append(loss))
    weights = [load_file(out / f"rank-{r}-batch-{batch}.safetensors") for r in range(2)]
    # Every rank holds the same weights, bit for bit (the gradients were all-reduced before each step).
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    # Same batches and the mean gradient: equal to one process up to float summation order. Missing the
    # all-reduce would make each rank follow its own half-batch, off by about the learning rate (5e-5) per step.
    expected = {"embeddings": single.embeddings, **single.lora_state_dict}
    for key, value in expected.items():
        torch.testing.assert_close(weights[0][key], value, rtol=0, atol=2e-6)
    for result in ranks:
        assert result[f"losses-{batch}"] == pytest.approx(losses, rel=1e-5)
        assert result[f"resumed_equal-{batch}"]  # a relaunch finds the rank-0 checkpoint on every rank
    # the final checkpoint, and the previous one kept until it was durable
    assert len(list((out / f"work-{batch}").glob("concepts-checkpoint-*.safetensors"))) == 2


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def two_ranks(inputs, tmp_path_factory):
    """``torchrun --nproc_per_node=2 -m diffii_datasets generate ...``, learning concepts data-parallel."""
    cache = tmp_path_factory.mktemp("two-ranks")
    result = torchrun(2, "-m", "diffii_datasets", *generate_args(*inputs, cache))
    assert result.returncode == 0, result.stdout + result.stderr
    return cache, result


@pytest.fixture(scope="module")
def reference(inputs, two_ranks, tmp_path_factory):
    """One process, same arguments, reusing the concepts the two ranks learned (so only generation is compared)."""
    cache = tmp_path_factory.mktemp("one-process")
    shutil.copytree(two_ranks[0] / "concepts", cache / "concepts")
    result = run_cli(*generate_args(*inputs, cache))
    assert result.returncode == 0, result.stdout + result.stderr
    return store_path_from(result.stdout)


def test_two_ranks_write_the_same_store_as_one_process(two_ranks, reference):
    cache, result = two_ranks
    assert "generated 10 synthetic images for 3 classes on 2 ranks" in result.stdout
    assert result.stdout.count("store: ") == 1  # only rank 0 reports
    store = store_path_from(result.stdout)
    assert store.name == reference.name and store.parent == cache
    files = store_files(store)
    assert files == store_files(reference)  # every file, manifest included, byte for byte
    manifest = json.loads(files["manifest.json"])
    assert manifest["complete"] and manifest["total_images"] == sum(EXPECTED_COUNTS)
    assert [json.loads(files[f"classes/{c:05d}/class.json"])["count"] for c in range(3)] == EXPECTED_COUNTS
    assert len(list((cache / "concepts").iterdir())) == 1  # learned once, by both ranks together


def test_killed_rank_leaves_finished_classes_and_a_relaunch_completes_the_store(
        inputs, two_ranks, reference, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(two_ranks[0] / "concepts", cache / "concepts")
    args = generate_args(*inputs, cache)
    # Shards of the 4, 4, 2 expected images: rank 0 gets classes 0 and 2, rank 1 class 1. Rank 1 dies
    # in the middle of class 1 once rank 0 has committed its two classes; torchrun then stops rank 0.
    killed = torchrun(2, *WORKER, "cli", "--kill-rank", "1", "--kill-in-class", "1", "--after-committed", "0,2",
                      "--", *args)
    assert killed.returncode != 0
    store = cache / reference.name
    committed = sorted(p.name for p in (store / "classes").iterdir() if (p / "class.json").is_file())
    assert committed == ["00000", "00002"]
    assert list((store / "classes").glob(".tmp-00001-*")) and not (store / "manifest.json").exists()

    # The relaunch has one pending class for two ranks: rank 1 idles, rank 0 finishes class 1.
    relaunched = torchrun(2, "-m", "diffii_datasets", "-v", *args)
    assert relaunched.returncode == 0, relaunched.stdout + relaunched.stderr
    assert f"skipped 2 classes already in the store: 0 ({CLASS_NAMES[0]}), 2 ({CLASS_NAMES[2]})" in relaunched.stdout
    assert "generated 4 synthetic images for 1 classes on 2 ranks" in relaunched.stdout
    assert "rank 1 of 2: 0 of 1 pending classes (0 images)" in relaunched.stderr
    assert not list((store / "classes").glob(".tmp-*"))
    assert store_files(store) == store_files(reference)
