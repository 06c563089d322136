"""Issue 26, item 9: a process only ever removes what it created itself, and an interrupt removes nothing.

Two real processes share a cache: the first fills a store and holds the concept lock (it is learning), the
second waits on that lock, and one of them gets SIGINT (Ctrl-C). Whichever it is, nothing of the other's work
goes: the store keeps its header, the survivor completes it, and verify finds it whole. 0.2.0 deleted the store
the first process was filling (2 of 2 trials) and then reported it complete over a directory without store.json.

This module is also the worker: ``python -m tests.test_robustness_interrupt ROLE CACHE SIGNALS [--other-knobs]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT
from tests.helpers.damage import verify

WAIT_S = 1800  # only catches a hang: a slow machine never fails these tests


def _start(role: str, cache: Path, signals: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DIFFII_TEST_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.test_robustness_interrupt", role, str(cache),
                             str(signals), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the worker ended before {path.name}: {process.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"no {path.name} after {WAIT_S} s"
        time.sleep(0.05)


def _finish(process: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = process.communicate(timeout=WAIT_S)
    lines = out.strip().splitlines()
    return process.returncode, json.loads(lines[-1]) if lines else None, err


def _interrupted(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    status, report, err = _finish(process)
    assert status != 0 and report is None and "KeyboardInterrupt" in err, err[-3000:]
    return err


def _stores(cache: Path) -> dict[str, set[str]]:
    """Each store directory of the cache with the names of its top-level entries."""
    return {p.name: {e.name for e in p.iterdir()} for p in cache.iterdir() if len(p.name) == 16}


@pytest.fixture
def signals(tmp_path):
    folder = tmp_path / "signals"
    folder.mkdir()
    return folder


def _filler_and_waiter(tmp_path, signals, *waiter_extra):
    """The filler, learning (concept lock held), and the waiter, blocked on that lock."""
    cache = tmp_path / "cache"
    filler = _start("fill", cache, signals)
    _wait_for(signals / "learning", filler)
    waiter = _start("wait", cache, signals, *waiter_extra)
    _wait_for(signals / "waiting", waiter)
    time.sleep(1.0)  # inside FileLock.acquire by now: nothing else runs between the signal and the lock
    assert waiter.poll() is None
    return cache, filler, waiter


def test_ctrl_c_on_a_process_waiting_for_the_concept_lock_removes_nothing(tmp_path, signals):
    cache, filler, waiter = _filler_and_waiter(tmp_path, signals)
    (store,) = _stores(cache)
    before = _stores(cache)
    _interrupted(waiter)
    assert _stores(cache) == before and (cache / store / "store.json").is_file()
    assert not list((cache / store / "locks").glob(f"user-{waiter.pid}.lock"))  # it let go of the store
    (signals / "go").touch()
    status, report, err = _finish(filler)
    assert status == 0, err[-3000:]
    assert report == {"generated": [0, 1, 2], "skipped": [], "complete": True, "store": str(cache / store)}
    assert verify(cache / store)[:2] == (0, [])


def test_ctrl_c_while_waiting_keeps_even_the_waiters_own_new_store(tmp_path, signals):
    """The waiter made a store of its own (other generation knobs, the same concepts): it is not removed either,
    and the next run fills it with the concepts the filler learned (they are not learned twice)."""
    cache, filler, waiter = _filler_and_waiter(tmp_path, signals, "--other-knobs")
    stores = _stores(cache)
    assert len(stores) == 2
    _interrupted(waiter)
    assert _stores(cache) == stores
    (signals / "go").touch()
    status, report, err = _finish(filler)
    assert status == 0 and report["complete"], err[-3000:]
    (signals / "learning").unlink()
    again = _start("fill", cache, signals, "--other-knobs")
    status, report, err = _finish(again)
    assert status == 0 and report["complete"] and report["generated"] == [0, 1, 2], err[-3000:]
    assert not (signals / "learning").exists()  # the concepts came from the cache
    assert sorted(_stores(cache)) == sorted(stores)
    for name in stores:
        assert verify(cache / name)[:2] == (0, [])


def test_ctrl_c_on_the_filler_lets_the_waiter_finish_the_store(tmp_path, signals):
    cache, filler, waiter = _filler_and_waiter(tmp_path, signals)
    (store,) = _stores(cache)
    (signals / "learning").unlink()
    _interrupted(filler)
    assert (cache / store / "store.json").is_file()
    (signals / "go").touch()
    status, report, err = _finish(waiter)
    assert status == 0, err[-3000:]
    assert report == {"generated": [0, 1, 2], "skipped": [], "complete": True, "store": str(cache / store)}
    assert verify(cache / store)[:2] == (0, [])


def test_a_failed_run_never_removes_a_store_another_process_just_opened(tmp_path, signals):
    """The process that made a store fails before any work, while another has found the store but not yet said
    it uses it: the store stays (it is the other's now), and the other fills it."""
    cache = tmp_path / "cache"
    failing = _start("fail", cache, signals)
    _wait_for(signals / "learning", failing)
    opener = _start("open", cache, signals)
    _wait_for(signals / "opened", opener)
    status, report, err = _finish(failing)
    assert status == 1 and "the model cannot be loaded" in err, err[-3000:]
    (signals / "failed").touch()
    (store,) = _stores(cache)
    assert (cache / store / "store.json").is_file()
    (signals / "go").touch()
    status, report, err = _finish(opener)
    assert status == 0, err[-3000:]
    assert report == {"generated": [0, 1, 2], "skipped": [], "complete": True, "store": str(cache / store)}
    assert verify(cache / store)[:2] == (0, [])


# -- the worker --------------------------------------------------------------------------------------------------


def _worker() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["fill", "wait", "fail", "open"])
    parser.add_argument("cache", type=Path)
    parser.add_argument("signals", type=Path)
    parser.add_argument("--other-knobs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["DIFFII_TEST_THREADS"]))

    import diffii_datasets.prepare as prepare_module
    from diffii_datasets.store import ConceptCache
    from diffii_datasets.store.upkeep import UserLock
    from diffii_datasets.testing import tiny_pipeline
    from tests.helpers.augment import FAST_CONFIG, make_dataset, make_wrapper

    learn, lock, hold = prepare_module._learn, ConceptCache.lock, UserLock.hold.__func__
    signals = args.signals

    def wait_for(name, limit=WAIT_S):
        deadline = time.monotonic() + limit
        while not (signals / name).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def learn_when_told(*pargs, **kwargs):  # "fill", "wait": holds the concept lock until the test says go
        (signals / "learning").touch()
        if args.role == "fail":  # a run that fails before any work, once the other process has opened the store
            wait_for("opened")
            raise RuntimeError("the model cannot be loaded")
        wait_for("go")
        return learn(*pargs, **kwargs)

    def announced_lock(self, key):
        held = lock(self, key)
        if args.role == "wait":
            (signals / "waiting").touch()
        return held

    def slow_hold(cls, store):  # "open": the store is found, the hold on it comes late
        if args.role == "open" and not (signals / "opened").exists():
            (signals / "opened").touch()
            wait_for("failed", limit=10)  # the failing process cannot remove the store meanwhile: it waits
        return hold(cls, store)

    prepare_module._learn = learn_when_told
    ConceptCache.lock = announced_lock
    UserLock.hold = classmethod(slow_hold)
    config = FAST_CONFIG.replace(guidance_scale=3.0) if args.other_knobs else FAST_CONFIG
    wrapper = make_wrapper(make_dataset(), args.cache, config=config, pipeline=tiny_pipeline(seed=0)).prepare()
    report = wrapper.report
    print(json.dumps({"generated": report.generated, "skipped": report.skipped, "complete": report.complete,
                      "store": str(report.store.path)}))


if __name__ == "__main__":
    _worker()
