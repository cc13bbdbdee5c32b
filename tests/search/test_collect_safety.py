"""Collection that is safe to rerun and to interrupt: one configuration per folder, the
collecting policy's fingerprint, a lock, workers that die with the collector, prompt stops,
no temporary files left, env crashes reported as infrastructure errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from webgrove.search.collect import (CollectConfig, CollectError, CollectionBusy, CollectionMismatch, collection_lock,
                                     run_collect, tree_path)
from webgrove.search.tree import read_tree, write_tree

HERE = Path(__file__).resolve().parent
TOY = dict(env="toy_env:ToyTree-v0", policy="toy_env:make_policy", critic="toy_env:make_critic",
           simulations=4, k=3, progress=False)


def _config(out, **kw):
    return CollectConfig(**{**TOY, "out": str(out), **kw})


def _trees(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(out).glob("goal_*.jsonl"))}


def _temp_files(out) -> list[str]:
    return sorted(p.name for p in Path(out).iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------
# One configuration per folder, and the policy's fingerprint.


def test_a_rerun_with_other_settings_refuses_naming_them(tmp_path):
    run_collect(_config(tmp_path, goal_range="0:2"))
    before = _trees(tmp_path)
    recorded = json.loads((tmp_path / "collection.json").read_text())
    assert recorded["config"]["simulations"] == 4 and recorded["config"]["split"] == "train"
    assert recorded["config"]["policy_fingerprint"] == "factory:toy_env:make_policy"
    with pytest.raises(CollectionMismatch) as err:
        run_collect(_config(tmp_path, goal_range="0:5", simulations=3, critic="none", split="test"))
    message = str(err.value)
    assert "\n" not in message and "--force-new" in message and str(tmp_path) in message
    for name in ("critic", "simulations", "split"):
        assert f"{name}: " in message
    assert "goal_range" not in message and "k: " not in message
    assert _trees(tmp_path) == before  # nothing touched
    # more goals with the same settings: the same collection
    grown = run_collect(_config(tmp_path, goal_range="0:3"))
    assert (grown["collected"], grown["skipped"]) == (1, 2)
    # --force-new starts over
    fresh = run_collect(_config(tmp_path, goal_range="0:2", simulations=3, critic="none", force_new=True))
    assert (fresh["collected"], fresh["skipped"], fresh["trees"]) == (2, 0, 2)
    assert sorted(_trees(tmp_path)) == ["goal_00000.jsonl", "goal_00001.jsonl"]
    assert read_tree(tree_path(tmp_path, 0))[0].config["simulations"] == 3


def test_a_rerun_with_another_policy_fingerprint_does_not_reuse_trees(tmp_path, monkeypatch):
    """Retraining a model in place changes its fingerprint: its old trees are never reused."""
    cfg = _config(tmp_path, goal_range="0:2", policy="toy_env:make_versioned_policy")
    monkeypatch.setenv("WEBGROVE_TEST_POLICY_VERSION", "1")
    run_collect(cfg)
    old = _trees(tmp_path)
    header = read_tree(tree_path(tmp_path, 0))[0]
    assert header.policy_fingerprint == "factory:toy_env:make_versioned_policy:1"
    assert header.config["policy_fingerprint"] == header.policy_fingerprint
    monkeypatch.setenv("WEBGROVE_TEST_POLICY_VERSION", "2")
    with pytest.raises(CollectionMismatch, match="policy_fingerprint: '.*:1' there, '.*:2' now"):
        run_collect(cfg)
    new = run_collect(_config(tmp_path, goal_range="0:2", policy="toy_env:make_versioned_policy", force_new=True))
    assert (new["collected"], new["skipped"]) == (2, 0)
    assert all(read_tree(tree_path(tmp_path, g))[0].policy_fingerprint.endswith(":2") for g in (0, 1))
    # a tree of the old policy dropped into the folder is collected again, not reused
    tree_path(tmp_path, 0).write_bytes(old["goal_00000.jsonl"])
    again = run_collect(cfg)
    assert (again["collected"], again["skipped"]) == (1, 1)
    assert read_tree(tree_path(tmp_path, 0))[0].policy_fingerprint.endswith(":2")


def test_a_folder_without_a_collection_record_keeps_only_matching_trees(tmp_path):
    """A folder from before collection.json: trees without this policy's fingerprint are collected again."""
    run_collect(_config(tmp_path, goal_range="0:2"))
    header, nodes = read_tree(tree_path(tmp_path, 1))
    import dataclasses

    write_tree(tree_path(tmp_path, 1), dataclasses.replace(header, policy_fingerprint=None), nodes)
    (tmp_path / "collection.json").unlink()
    summary = run_collect(_config(tmp_path, goal_range="0:2"))
    assert (summary["collected"], summary["skipped"]) == (1, 1)
    assert read_tree(tree_path(tmp_path, 1))[0].policy_fingerprint == "factory:toy_env:make_policy"


# ---------------------------------------------------------------------------
# Files a crash leaves behind, and env crashes.


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path, caplog):
    run_collect(_config(tmp_path, goal_range="0:2"))
    for name in (".goal_00001.jsonl.4242.deadbeef.tmp", ".goal_00002.jsonl.4242.0badf00d.tmp",
                 ".summary.json.4242.12345678.tmp"):
        (tmp_path / name).write_text('{"type": "tree", "half a tr')
    summary = run_collect(_config(tmp_path, goal_range="0:3"))
    assert _temp_files(tmp_path) == []
    assert "removed 3 temporary file(s)" in caplog.text
    assert (summary["collected"], summary["skipped"]) == (1, 2)


@pytest.mark.parametrize("corrupt", [
    lambda text: text[:-30],                                            # cut mid-write
    lambda text: text.splitlines()[0] + "\n" + "[" * 100_000 + "]" * 100_000 + "\n",  # deep nesting
    lambda text: "\x89PNG\r\n\x1a\n\udcff",                              # binary
    lambda text: text.replace('"logprob": -', '"logprob": ', 1),        # a positive log-probability
])
def test_a_corrupted_tree_file_is_collected_again(tmp_path, corrupt):
    run_collect(_config(tmp_path, goal_range="0:2"))
    path = tree_path(tmp_path, 1)
    path.write_bytes(corrupt(path.read_text()).encode("utf-8", "surrogateescape"))
    summary = run_collect(_config(tmp_path, goal_range="0:2"))
    assert (summary["collected"], summary["skipped"]) == (1, 1)
    read_tree(path)


def test_a_crashed_env_is_an_infrastructure_error_not_reward_0(tmp_path):
    with pytest.raises(CollectError, match=r"1 infrastructure errors: \[1\]"):
        run_collect(_config(tmp_path, env="ToyTreeCrash-v0", goal_range="0:3"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["infrastructure_errors"] == {"count": 1, "goal_ids": [1]}
    assert summary["failed"] == [1] and summary["trees"] == 2
    assert "browser died" in summary["errors"][0]["error"] and summary["errors"][0]["kind"] == "infrastructure"
    assert sorted(_trees(tmp_path)) == ["goal_00000.jsonl", "goal_00002.jsonl"]  # no reward-0 tree for goal 1


# ---------------------------------------------------------------------------
# A real collector process: the lock, SIGINT, SIGKILL.


def _start_collect(out, *, workers: int, slow: float = 0.03) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
           "WEBGROVE_TEST_SLOW": str(slow), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "webgrove", "collect", "--env", TOY["env"], "--policy", "toy_env:make_slow_policy",
            "--critic", TOY["critic"], "--simulations", "4", "--k", "3", "--goal-range", "0:60",
            "--out", str(out), "--workers", str(workers), "--no-progress"]
    # the child starts with SIGINT's default action whatever this process has set (a child inherits
    # an ignored SIGINT, and Python then never raises KeyboardInterrupt)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_trees(out, proc: subprocess.Popen, n: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_trees(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the collector wrote no trees"
        time.sleep(0.05)


def _running_after(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after `timeout` s (a zombie has exited: only its reaping is left, which
    is the job of whoever adopted it)."""
    def running(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while (left := [p for p in procs if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _slow_config(out, **kw):
    return _config(out, policy="toy_env:make_slow_policy", goal_range="0:60", **kw)


@pytest.mark.slow
def test_a_second_collect_fails_at_once_and_sigint_stops_promptly(tmp_path, capsys):
    proc = _start_collect(tmp_path, workers=2)
    try:
        _wait_for_trees(tmp_path, proc, 2)
        # a second run on the same folder: refused at once, naming the running one
        t0 = time.monotonic()
        with pytest.raises(CollectionBusy, match=rf"pid {proc.pid}\).*{tmp_path}"):
            run_collect(_slow_config(tmp_path))
        from webgrove.cli import main

        assert main(["collect", "--env", TOY["env"], "--policy", "toy_env:make_slow_policy", "--critic", TOY["critic"],
                     "--simulations", "4", "--k", "3", "--goal-range", "0:60", "--out", str(tmp_path)]) == 2
        assert time.monotonic() - t0 < 2.0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another `webgrove collect`" in err[0]
        # Ctrl-C in the terminal: SIGINT to the whole process group
        workers = psutil.Process(proc.pid).children(recursive=True)
        at_signal = len(_trees(tmp_path))
        assert proc.poll() is None and at_signal < 60, "the collection ended before the signal"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    assert stopped_in < 6.0, stopped_in
    assert _running_after(workers, timeout=5) == []
    trees = _trees(tmp_path)
    assert len(trees) <= at_signal + 2  # at most the goals in flight were finished, not the queue drained
    for name in trees:
        read_tree(tmp_path / name)
    assert _temp_files(tmp_path) == []
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["trees"] == len(trees)


@pytest.mark.slow
def test_sigkill_of_the_collector_takes_its_workers_and_a_rerun_completes_the_rest(tmp_path, monkeypatch):
    proc = _start_collect(tmp_path, workers=2)
    workers: list[psutil.Process] = []
    try:
        _wait_for_trees(tmp_path, proc, 2)
        workers = psutil.Process(proc.pid).children(recursive=True)  # the workers and the resource tracker
        assert len(workers) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        t0 = time.monotonic()
        alive = _running_after(workers, timeout=5)
        assert alive == [], [(p.pid, p.cmdline()) for p in alive]
        assert time.monotonic() - t0 < 5
    finally:
        for p in workers:  # never leave one behind
            if p.is_running():
                p.kill()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    before = _trees(tmp_path)
    for name in before:
        read_tree(tmp_path / name)  # every finished tree is whole
    # the rerun (a faster policy clock, same settings) collects only the missing goals
    monkeypatch.setenv("WEBGROVE_TEST_SLOW", "0")
    summary = run_collect(_slow_config(tmp_path, workers=2))
    assert (summary["skipped"], summary["collected"], summary["trees"]) == (len(before), 60 - len(before), 60)
    after = _trees(tmp_path)
    assert {k: after[k] for k in before} == before
    assert _temp_files(tmp_path) == []


def test_the_lock_is_released_when_its_holder_ends(tmp_path):
    with collection_lock(tmp_path):
        with pytest.raises(CollectionBusy, match=rf"pid {os.getpid()}"):
            with collection_lock(tmp_path):
                pass
    with collection_lock(tmp_path):  # free again
        pass
