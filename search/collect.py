"""Tree collection over many goals: the `webgrove collect` command.

One Agent Q search (`webgrove.search.mcts.search_episode`) per goal, written as
`DIR/goal_00012.jsonl`. The folder DIR (`--out`) holds one collection:

- `collection.json`: the configuration every tree of the folder is collected with
  (`collection_identity`: env, split, goal set, policy fingerprint, critic, search
  settings, seed), written once by the first run. A rerun with another configuration
  refuses and names the differing fields; with `--force-new` it deletes the folder's
  trees instead and starts a new collection.
- `goal_*.jsonl`: a tree file exists only when whole (atomic writes). A rerun skips
  every goal whose tree validates and carries this collection's configuration and
  policy fingerprint, and collects the rest: a tree from another policy (say, the
  model before it was retrained in place) is collected again, never reused.
- `summary.json`: totals over the goal range of the last run.
- `.collect.lock`: held (flock) by the run writing to DIR; a second run fails at once.
  The kernel releases it when the run dies, however it dies.

With `--workers N > 1` goals run in N worker processes (`backends.worker_context`: forked
from a server that has the modules imported), each building its own env, policy and critic. Workers die with the collector, SIGKILL included (Linux's
parent-death signal, and a parent-pid watchdog elsewhere), and SIGINT/SIGTERM stop a
run promptly: finished trees stay, the goals in flight are abandoned with their
temporary files removed, and a rerun collects them (temporary files a SIGKILL left
mid-write are removed by the next run). An env that fails in a goal — it raises, or
ends the episode on a crash report as the browser envs do — is an infrastructure
error: the goal gets no tree (it never counts as reward 0), the summary lists it, and
a rerun retries it.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from webgrove.agents.specs import PolicyArgs
from webgrove.envs.errors import UsageError
from webgrove.envs.make import EnvArgs, OutputArgs, parse_goal_range
from webgrove.io import stale_temp_files, write_json_atomic, write_text_atomic
from webgrove.provenance import command_line
from webgrove.search.args import SearchArgs
from webgrove.search.backends import (BackendArgs, adopt_environment, collect_on_ray, worker_context,
                                      worker_parent_pid)
from webgrove.search.mcts import search_episode
from webgrove.search.tracking import TrackingArgs, log_metrics
from webgrove.search.tree import TreeFormatError, TreeIndex, make_header, read_tree, tree_stats, tree_text

log = logging.getLogger(__name__)

COLLECTION_FILE = "collection.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".collect.lock"
TREE_GLOB = "goal_*.jsonl"
COLLECTION_FORMAT = 1
# Settings that do not change what a tree is (where it goes, how fast, how it is shown).
# The policy spec is left out too: its fingerprint says which policy it is.
NOT_IDENTITY = ("policy", "goal_range", "out", "workers", "force_new", "progress", "json",
                "backend", "ray_address", "report_to", "run_dir", "track_step",
                "request_timeout", "max_retries")
INFRASTRUCTURE = "infrastructure"


class CollectError(RuntimeError):
    """Some goals could not be collected; the trees that were finished are on disk."""


class CollectionMismatch(UsageError):
    """The folder holds a collection made with another configuration."""


class CollectionBusy(UsageError):
    """Another run is writing to the folder."""


class EnvCrashed(RuntimeError):
    """The env failed during a goal (an infrastructure error, not the agent's failure)."""


def _group_field(group: type, name: str, default: Any) -> Any:
    """`group`'s field `name` (its help and choices) with another default."""
    original = next(f for f in dataclasses.fields(group) if f.name == name)
    return field(default=default, metadata=dict(original.metadata))


@dataclass(kw_only=True)
class CollectConfig(EnvArgs, PolicyArgs, SearchArgs, OutputArgs, BackendArgs, TrackingArgs):
    """Collects one MCTS tree per goal into --out; rerun the same command to resume.

    The folder records its configuration in collection.json; a rerun with other settings
    refuses (use another --out, or --force-new to delete the folder's trees and start over).
    """

    # collection's own defaults: trees are training data (train split), and their
    # proposals are sampled (a model policy at temperature 0 proposes one search query)
    split: str = _group_field(EnvArgs, "split", "train")
    temperature: float = _group_field(PolicyArgs, "temperature", 1.0)
    goal_range: str = field(default="0:10", metadata={"help": "goal ids A:B (A included, B excluded)"})
    out: str = field(default="runs/trees", metadata={
        "help": "folder of the collection: goal_*.jsonl trees, collection.json, summary.json"})
    workers: int = field(default=1, metadata={"help": "parallel worker processes (1 = this process)"})
    force_new: bool = field(default=False, metadata={
        "help": "when --out holds a collection made with other settings, delete its trees and start a new one "
                "(default: refuse)"})

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        super().__post_init__()  # the argument groups' checks
        self.check_goals(self.goal_ids)

    @property
    def goal_ids(self) -> range:
        return parse_goal_range(self.goal_range)


def collection_identity(cfg: CollectConfig, policy_fingerprint: str) -> dict:
    """What makes two trees comparable: every setting but `NOT_IDENTITY`, plus the policy's
    fingerprint and, for a learned critic, the critic model's (a critic since retrained makes
    other trees, as a retrained policy does)."""
    from webgrove.agents.specs import learned_critic_dir

    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_IDENTITY}
    if values.get("prompt_format") == "auto":  # the default: folders recorded before the flag existed still match
        del values["prompt_format"]
    identity = {"policy_fingerprint": policy_fingerprint, **values}
    critic_dir = learned_critic_dir(cfg.critic, cfg.policy)
    if critic_dir is not None and critic_dir.is_dir():  # (a missing one: making the critic says so)
        from webgrove.agents.fingerprint import model_fingerprint

        identity["critic_fingerprint"] = model_fingerprint(critic_dir)
    return identity


def goal_seed(seed: int, goal_id: int) -> int:
    """The seed of one goal's env reset and search, derived from the base seed."""
    return int(np.random.SeedSequence([seed, goal_id]).generate_state(1)[0])


def tree_path(out: str | os.PathLike, goal_id: int) -> Path:
    return Path(out) / f"goal_{goal_id:05d}.jsonl"


# ---------------------------------------------------------------------------
# The folder: lock, configuration record, leftovers.


@contextlib.contextmanager
def collection_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold DIR's lock file for the block; raises CollectionBusy at once when another
    process holds it. The kernel drops the lock when its holder dies."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by workers
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise CollectionBusy(f"another `webgrove collect` (pid {holder}) is writing to {out}; "
                                 "wait for it to finish, or collect into another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _collection_differences(recorded: dict, identity: dict) -> list[str]:
    keys = sorted(set(recorded) | set(identity))
    return [f"{k}: {recorded.get(k)!r} there, {identity.get(k)!r} now" for k in keys
            if recorded.get(k) != identity.get(k)]


def _recorded_identity(path: Path) -> dict | None:
    """The configuration recorded in collection.json, or None when there is none."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        return {"<collection.json>": f"unreadable ({type(exc).__name__})"}
    return record.get("config") if isinstance(record, dict) and isinstance(record.get("config"), dict) \
        else {"<collection.json>": "no config"}


def open_collection(cfg: CollectConfig, identity: dict) -> None:
    """Check DIR's recorded configuration against `identity` (call with the lock held);
    record it when DIR has none, or start over with --force-new.

    Raises:
        CollectionMismatch: the folder was collected with other settings (one line naming them).
    """
    out = Path(cfg.out)
    recorded = _recorded_identity(out / COLLECTION_FILE)
    if recorded == identity:
        return
    if recorded is not None:
        differences = _collection_differences(recorded, identity)
        trees = sorted(out.glob(TREE_GLOB))
        if not cfg.force_new:
            raise CollectionMismatch(
                f"{out} holds a collection made with other settings ({'; '.join(differences)}); "
                f"collect into another --out, or add --force-new to delete its {len(trees)} trees and start over")
        for p in [*trees, out / SUMMARY_FILE]:
            p.unlink(missing_ok=True)
        log.warning(f"collect: --force-new: deleted the {len(trees)} trees of {out}'s previous collection "
                    f"({'; '.join(differences)})")
    write_json_atomic(out / COLLECTION_FILE, {
        "format": COLLECTION_FORMAT, "policy": cfg.policy, "config": identity,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command_line()})


def remove_stale_temp_files(out: str | os.PathLike) -> int:
    """Delete temporary files that a killed run left in DIR (call with the lock held)."""
    stale = stale_temp_files(out)
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.warning(f"collect: removed {len(stale)} temporary file(s) left by an interrupted run in {out}")
    return len(stale)


# ---------------------------------------------------------------------------
# One goal.


@dataclass
class _Parties:
    env: Any
    policy: Any
    critic: Any


def build_parties(cfg: CollectConfig) -> _Parties:
    from webgrove.agents.specs import make_critic

    env = cfg.make()
    policy = cfg.make_policy(env)
    return _Parties(env=env, policy=policy, critic=make_critic(cfg.critic, policy=policy, env=env))


class GuardedEnv:
    """The unwrapped env as the search drives it, with failures made explicit: an
    exception from the env, or a step that ends the episode on a crash report
    (truncated, `info["reward_info"]["error"]` set, as the browser envs report a dead
    browser), raises EnvCrashed instead of scoring the episode 0."""

    def __init__(self, env: Any) -> None:
        self._env = env.unwrapped
        self.spec = env.spec  # its max_episode_steps is the search's depth limit

    @property
    def unwrapped(self) -> "GuardedEnv":
        return self

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._env, method)(*args)
        except Exception as exc:
            raise EnvCrashed(f"the env failed in {method}(): {type(exc).__name__}: {exc}") from exc

    def step(self, action: str) -> tuple:
        out = self._call("step", action)
        info = out[4]
        crash = (info.get("reward_info") or {}).get("error") if out[3] else None
        if crash:
            raise EnvCrashed(f"the env crashed during a step: {crash}")
        return out

    def get_state(self) -> Any:
        return self._call("get_state")

    def set_state(self, state: Any) -> None:
        self._call("set_state", state)

    def observe(self) -> tuple:
        return self._call("observe")


def goal_tree(parties: _Parties, cfg: CollectConfig, identity: dict, goal_id: int) -> tuple[str, dict]:
    """Search one goal: its tree file's text and its stats (flat), with the seconds of each
    part: `reset_s`; the search's `total_s` = `env_s` + `policy_s` + `critic_s` + `mcts_s`
    (MCTS's own bookkeeping); `records_s`, the tree's records, checks and JSON."""
    start = time.perf_counter()
    seed = goal_seed(cfg.seed, goal_id)
    try:
        _, info = parties.env.reset(seed=seed, options={"goal_id": goal_id})
    except Exception as exc:
        raise EnvCrashed(f"the env failed in reset(): {type(exc).__name__}: {exc}") from exc
    reset_s = time.perf_counter() - start
    tree = search_episode(GuardedEnv(parties.env), parties.policy, parties.critic, cfg.search_config(seed=seed))
    t = time.perf_counter()
    # the search's own nodes go to the file as they are (no record object per node)
    timings = tree.timings.as_dict()
    stats = {**tree_stats(tree.nodes, [tree.nodes[i] for i in tree.best_path]),
             "simulations_run": timings["simulations"], "env_steps": timings["env_steps"], "seconds": t - start,
             **{k: timings[k] for k in ("total_s", "env_s", "policy_s", "critic_s", "mcts_s")}}
    header = make_header(env_id=cfg.env, goal_id=goal_id, goal=info["goal"], seed=seed, policy=cfg.policy,
                         config=identity, best_path=tree.best_path, stats=stats,
                         policy_fingerprint=identity["policy_fingerprint"])
    text = tree_text(header, tree.nodes, tree_path(cfg.out, goal_id))
    return text, {"goal_id": goal_id, **stats, "reset_s": reset_s, "records_s": time.perf_counter() - t}


def collect_goal(parties: _Parties, cfg: CollectConfig, identity: dict, goal_id: int) -> dict:
    """Search one goal and write its tree; returns its stats (flat, `goal_tree`'s), `write_s`
    (the atomic write) and `seconds` (the whole goal) included."""
    start = time.perf_counter()
    text, result = goal_tree(parties, cfg, identity, goal_id)
    t = time.perf_counter()
    write_text_atomic(tree_path(cfg.out, goal_id), text)
    end = time.perf_counter()
    return {**result, "write_s": end - t, "seconds": end - start}


def collect_goal_safely(parties: _Parties, cfg: CollectConfig, identity: dict, goal_id: int,
                        collect: Callable[[_Parties, CollectConfig, dict, int], dict] = collect_goal) -> dict:
    """`collect(...)` (by default `collect_goal`), with an exception turned into an error
    entry (KeyboardInterrupt still stops)."""
    try:
        return collect(parties, cfg, identity, goal_id)
    except EnvCrashed as exc:
        return {"goal_id": goal_id, "error": f"{exc}\n{traceback.format_exc()}", "kind": INFRASTRUCTURE}
    except Exception:
        return {"goal_id": goal_id, "error": traceback.format_exc(), "kind": "error"}


# ---------------------------------------------------------------------------
# Worker processes.

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class _Stop(BaseException):
    """Raised in a worker told to stop: the goal in flight is abandoned (and its temp file removed)."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def _watch_parent(parent_pid: int) -> None:
    """Fallback where the parent-death signal is missing: stop once reparented."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5.0)  # the main thread may be stuck in native code
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Make this process get SIGTERM when `parent_pid` (its parent) dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _worker_main(cfg: CollectConfig, identity: dict, parent_pid: int, conn: Any,
                 environ: dict[str, str]) -> None:
    """A worker: collect each goal the collector sends down `conn`, its own pipe, until None;
    answer each with ("done", goal, result) on the same pipe."""
    adopt_environment(environ)
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches every process; the collector decides
    signal.signal(signal.SIGTERM, _raise_stop)
    # one OpenMP/torch thread per worker: N workers share the cores, and oversubscribed
    # OpenMP threads spin-wait (measured: collection 10x slower)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    try:
        parties = build_parties(cfg)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        try:
            while (goal_id := conn.recv()) is not None:
                conn.send(("done", goal_id, collect_goal_safely(parties, cfg, identity, goal_id)))
        finally:
            parties.env.close()
    except _Stop:  # the goal in flight is abandoned and its temp file gone; nothing else to flush
        os._exit(0)  # now, not after the interpreter's teardown (seconds with torch loaded)
    except EOFError:  # the collector has gone
        os._exit(0)


def _stop_workers(procs: list, wait_s: float) -> None:
    """Let workers exit for `wait_s`, then SIGTERM them (they abandon their goal), then SIGKILL."""
    deadline = time.monotonic() + wait_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5.0
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


class _Dispatch:
    """The collector's side of `_run_in_workers`: one duplex pipe per worker; a worker gets its
    next goal when it answers the last one, None when none are left. Nothing is shared between
    workers, so a worker that dies -- wherever it is -- blocks no other: its pipe reads as
    end-of-file, and its goal (if it had one) is reported as an infrastructure error."""

    def __init__(self, procs: list, conns: list, todo: list[int], on_result):
        self.procs = dict(zip(conns, procs))
        self.queue = collections.deque(todo)
        self.left = set(todo)
        self.assigned: dict[Any, int] = {}  # conn -> the goal its worker is on
        self.on_result = on_result

    def give(self, conn) -> None:
        goal_id = self.queue.popleft() if self.queue else None
        try:
            conn.send(goal_id)
        except OSError:  # that worker is gone; its end-of-file is read next
            if goal_id is not None:
                self.queue.appendleft(goal_id)
            return
        if goal_id is not None:
            self.assigned[conn] = goal_id

    def answer(self, conn) -> bool:
        """Read one message from `conn`; False once that worker has exited."""
        try:
            _, goal_id, result = conn.recv()
        except EOFError:
            self.lost(conn)
            return False
        self.assigned.pop(conn, None)
        self.left.discard(goal_id)
        self.on_result(result)
        self.give(conn)
        return True

    def lost(self, conn) -> None:
        goal_id = self.assigned.pop(conn, None)
        if goal_id is None:
            return
        proc = self.procs[conn]
        proc.join(5.0)
        self.left.discard(goal_id)
        self.on_result({"goal_id": goal_id, "kind": INFRASTRUCTURE,
                        "error": f"worker process {proc.pid} died (exit code {proc.exitcode}) in goal {goal_id}"})

    def abandon(self) -> None:
        """Every goal not collected once no worker is left."""
        for goal_id in sorted(self.left):
            self.on_result({"goal_id": goal_id, "kind": INFRASTRUCTURE,
                            "error": "not collected: every worker process had exited"})
        self.left.clear()


def _run_in_workers(cfg: CollectConfig, identity: dict, todo: list[int], on_result) -> None:
    """Collect `todo` in `cfg.workers` processes, each fed its goals one at a time down its own
    pipe (`_Dispatch`). (Shared queues hung: a worker that died while holding a queue's lock --
    its feeder thread's, or a `get`'s -- left every other worker blocked on it; a dying worker hit
    that once in a few full test runs.)"""
    from multiprocessing.connection import wait

    context = worker_context()
    n = min(cfg.workers, len(todo))
    pipes = [context.Pipe() for _ in range(n)]  # (collector's end, worker's end)
    procs = [context.Process(target=_worker_main, name=f"collect-worker-{i}", daemon=True,
                             args=(cfg, identity, worker_parent_pid(context), child, dict(os.environ)))
             for i, (_, child) in enumerate(pipes)]
    for p in procs:
        p.start()
    for _, child in pipes:
        child.close()  # the worker holds the only other end: its exit reads as end-of-file
    conns = [conn for conn, _ in pipes]
    dispatch = _Dispatch(procs, conns, todo, on_result)
    interrupted = True
    try:
        for conn in conns:
            dispatch.give(conn)
        listening = list(conns)
        while dispatch.left and listening:
            for conn in wait(listening, timeout=1.0):
                if not dispatch.answer(conn):
                    listening.remove(conn)
        dispatch.abandon()
        interrupted = False
    finally:
        for conn in conns:
            conn.close()
        _stop_workers(procs, wait_s=0.0 if interrupted else 10.0)


def _run_in_process(cfg: CollectConfig, identity: dict, todo: list[int], on_result) -> None:
    parties = build_parties(cfg)
    try:
        for goal_id in todo:
            on_result(collect_goal_safely(parties, cfg, identity, goal_id))
    finally:
        parties.env.close()


# ---------------------------------------------------------------------------
# The command.


def _finished_stats(cfg: CollectConfig, identity: dict) -> tuple[dict[int, dict], list[int]]:
    """Stats of the goals whose tree validates and belongs to this collection, and the goals to do."""
    done: dict[int, dict] = {}
    todo = []
    for goal_id in cfg.goal_ids:
        path = tree_path(cfg.out, goal_id)
        try:
            header, nodes = read_tree(path)
        except FileNotFoundError:
            todo.append(goal_id)
            continue
        except (OSError, TreeFormatError) as exc:
            log.warning(f"collect: {exc}; collecting goal {goal_id} again")
            todo.append(goal_id)
            continue
        if header.config != identity or header.policy_fingerprint != identity["policy_fingerprint"]:
            log.warning(f"collect: {path} was collected with another policy or settings "
                        f"(policy fingerprint {header.policy_fingerprint}); collecting goal {goal_id} again")
            todo.append(goal_id)
            continue
        done[goal_id] = {"goal_id": goal_id, **(header.stats or {}), **TreeIndex.build(header, nodes).stats()}
    return done, todo


def summarize_trees(stats: list[dict]) -> dict:
    """Totals over trees' stats: trees, nodes, best-path success rate and score (0-100)."""
    n = len(stats)
    return {
        "trees": n,
        "nodes": sum(s["nodes"] for s in stats),
        "success_rate": sum(bool(s["success"]) for s in stats) / n if n else 0.0,
        "score": 100.0 * sum(s["best_reward"] for s in stats) / n if n else 0.0,
    }


# Where a goal's collection time goes (`goal_tree`, `collect_goal`); `other_s` is the rest.
TIMING_PARTS = ("reset_s", "env_s", "policy_s", "critic_s", "mcts_s", "records_s", "write_s")


def collection_timings(stats: list[dict]) -> dict:
    """Seconds of collection summed over goals' stats, by part (`TIMING_PARTS`, `other_s`,
    `goal_s` the total), and `mcts_share`: MCTS's own part (the search's bookkeeping
    `mcts_s` and the tree's records `records_s`) over `goal_s`."""
    total = sum(s.get("seconds", 0.0) for s in stats)
    parts = {k: sum(s.get(k, 0.0) for s in stats) for k in TIMING_PARTS}
    return {"timings": {**parts, "other_s": total - sum(parts.values()), "goal_s": total},
            "mcts_share": (parts["mcts_s"] + parts["records_s"]) / total if total > 0 else 0.0}


def _summary(cfg: CollectConfig, identity: dict, done: dict[int, dict], results: list[dict],
             seconds: float, interrupted: bool) -> dict:
    new = [r for r in results if "error" not in r]
    failed = sorted((r for r in results if "error" in r), key=lambda r: r["goal_id"])
    infra = [r["goal_id"] for r in failed if r["kind"] == INFRASTRUCTURE]
    search_s = sum(s["total_s"] for s in new)
    simulations_run = sum(s["simulations_run"] for s in new)
    return {
        **summarize_trees(sorted([*done.values(), *new], key=lambda s: s["goal_id"])),
        "collected": len(new), "skipped": len(done), "failed": [r["goal_id"] for r in failed],
        "infrastructure_errors": {"count": len(infra), "goal_ids": infra},
        "errors": [{"goal_id": r["goal_id"], "kind": r["kind"], "error": r["error"].strip().splitlines()[-1]}
                   for r in failed],
        "interrupted": interrupted, "seconds": seconds, "simulations_run": simulations_run,
        "simulations_per_second": simulations_run / search_s if search_s > 0 else 0.0,
        **collection_timings(new),
        "env": cfg.env, "policy": cfg.policy, "critic": cfg.critic, "split": cfg.split,
        "goal_range": cfg.goal_range, "out": cfg.out, "config": identity, "command": command_line(),
    }


def format_summary(summary: dict) -> str:
    """The line `webgrove collect` prints."""
    infra = summary["infrastructure_errors"]["count"]
    return (f"collect: {summary['trees']} trees ({summary['collected']} new, {summary['skipped']} already there"
            + (f", {len(summary['failed'])} failed ({infra} infrastructure errors)" if summary["failed"] else "")
            + f"), {summary['nodes']} nodes, best-path success rate {summary['success_rate']:.3f} "
            f"in {summary['seconds']:.1f}s -> {summary['out']}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C (main thread only; elsewhere signals stay as they are)."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_collect(cfg: CollectConfig) -> dict:
    """Collect the missing trees of the goal range and write DIR/summary.json.

    Raises:
        CollectionBusy: another run holds DIR.
        CollectionMismatch: DIR holds a collection made with other settings (see --force-new).
        CollectError: some goals failed; every finished tree is on disk and a rerun
            collects the rest.
        KeyboardInterrupt: on SIGINT or SIGTERM, after the summary of what finished.
    """
    from tqdm import tqdm

    from webgrove.agents.fingerprint import policy_fingerprint

    start = time.perf_counter()
    identity = collection_identity(cfg, policy_fingerprint(cfg.policy, cfg.base_url, cfg.model_name))
    with collection_lock(cfg.out), _sigterm_as_interrupt():
        open_collection(cfg, identity)
        remove_stale_temp_files(cfg.out)
        done, todo = _finished_stats(cfg, identity)
        results: list[dict] = []
        bar = tqdm(total=len(cfg.goal_ids), initial=len(done), desc=f"collect {Path(cfg.policy).name}",
                   unit="tree", disable=cfg.bar_disable)

        counts = {"ok": 0, "success": 0}  # running totals for the bar (not a pass over all results per goal)

        def on_result(result: dict) -> None:
            results.append(result)
            if result.get("kind") == "error":  # a bug or a policy failure: its traceback, once
                log.warning(f"collect: goal {result['goal_id']} failed:\n{result['error']}")
            if "error" not in result:
                counts["ok"] += 1
                counts["success"] += bool(result["success"])
            bar.set_postfix(success=f"{counts['success'] / max(1, counts['ok']):.2f}",
                            failed=len(results) - counts["ok"], refresh=False)
            bar.update(1)

        interrupted = True
        try:
            if todo:
                run = collect_on_ray if cfg.backend == "ray" else (
                    _run_in_process if cfg.workers == 1 else _run_in_workers)
                run(cfg, identity, todo, on_result)
            interrupted = False
        finally:
            bar.close()
            summary = _summary(cfg, identity, done, results, time.perf_counter() - start, interrupted)
            write_json_atomic(Path(cfg.out) / SUMMARY_FILE, summary)
            log_metrics(cfg, "collect", {**summary,
                                         "trees_per_s": summary["collected"] / max(summary["seconds"], 1e-9)})
            if cfg.json:
                write_json_atomic(cfg.json, summary)
    _raise_for_failures(summary)
    return summary


def _raise_for_failures(summary: dict) -> None:
    failed = summary["failed"]
    if not failed:
        return
    for e in summary["errors"]:
        log.warning(f"collect: goal {e['goal_id']} failed ({e['kind']}): {e['error']}")
    infra = summary["infrastructure_errors"]
    raise CollectError(f"{len(failed)} goal(s) failed: {failed} ({infra['count']} infrastructure errors: "
                       f"{infra['goal_ids']}); the {summary['trees']} finished trees are in {summary['out']}; "
                       "rerun the same command to collect the rest")
