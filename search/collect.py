"""Tree collection over many goals: the `webgrove collect` command.

One Agent Q search (`webgrove.search.mcts.search_episode`) per goal, written as
`DIR/goal_00012.jsonl`. A tree file exists only when whole (atomic writes), so a
crash loses only the goals in flight; a rerun of the same command skips every goal
whose file exists and validates, and collects the rest. With `--workers N > 1`
goals run in N spawned processes, each building its own env, policy and critic.
`DIR/summary.json` sums up every tree of the goal range.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from webgrove.search.mcts import SearchConfig, search_episode
from webgrove.io import write_json_atomic
from webgrove.search.tree import TreeFormatError, TreeIndex, make_header, read_tree, with_stats, write_tree

SUMMARY_FILE = "summary.json"
_OBJECT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:factory"


class CollectError(RuntimeError):
    """Some goals could not be collected; the trees that were finished are on disk."""


def _search_help(name: str) -> dict:
    """The help of SearchConfig's field `name`, so it is written once."""
    return dict(next(f for f in dataclasses.fields(SearchConfig) if f.name == name).metadata)


@dataclass
class CollectConfig:
    """Collects one MCTS tree per goal into DIR; rerun the same command to resume."""

    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    policy: str = field(default="rule", metadata={
        "help": "oracle | rule | random | a local model directory | openai | package.module:factory"})
    critic: str = field(default="lexical", metadata={
        "help": "none | lexical | self | package.module:factory"})
    split: str = field(default="train", metadata={"help": "goal split", "choices": ["train", "test"]})
    goals: str = field(default="0:10", metadata={"help": "goal ids A:B (A included, B excluded)"})
    out: str = field(default="runs/trees", metadata={"help": "directory of the tree files"})
    workers: int = field(default=1, metadata={"help": "parallel worker processes (1 = this process)"})
    simulations: int = field(default=10, metadata=_search_help("simulations"))
    k: int = field(default=5, metadata=_search_help("k"))
    c: float = field(default=1.0, metadata=_search_help("c"))
    alpha: float = field(default=0.5, metadata=_search_help("alpha"))
    max_depth: int = field(default=15, metadata=_search_help("max_depth"))
    rollout_temperature: float = field(default=1.0, metadata=_search_help("rollout_temperature"))
    stop_on_success: bool = field(default=False, metadata=_search_help("stop_on_success"))
    seed: int = field(default=0, metadata={"help": "base seed; each goal's env and search seed derive from it"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server URL (policy openai)"})
    model_name: str | None = field(default=None, metadata={"help": "model name on the server (policy openai)"})
    data_dir: str | None = field(default=None, metadata={"help": "directory with the original WebShop files"})
    goal_set: str = field(default="synthetic", metadata={
        "help": "shop goal set with --data-dir", "choices": ["synthetic", "human"]})
    num_products: int = field(default=1000, metadata={"help": "synthetic catalog size"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        parse_goals(self.goals)
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if self.policy == "openai" and not (self.base_url and self.model_name):
            raise ValueError("--policy openai needs --base-url and --model-name")
        self.search_config(seed=self.seed)  # validates the search settings

    def search_config(self, seed: int) -> SearchConfig:
        return SearchConfig(simulations=self.simulations, k=self.k, c=self.c, alpha=self.alpha,
                            max_depth=self.max_depth, rollout_temperature=self.rollout_temperature,
                            seed=seed, stop_on_success=self.stop_on_success)


def parse_goals(text: str) -> range:
    """Goal ids from "A:B" (B excluded), e.g. "0:100" -> 0..99."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if m is None:
        raise ValueError(f"--goals must look like A:B (e.g. 0:100), got {text!r}")
    start, stop = int(m.group(1)), int(m.group(2))
    if stop <= start:
        raise ValueError(f"--goals {text!r} is empty: B must be greater than A")
    return range(start, stop)


def goal_seed(seed: int, goal_id: int) -> int:
    """The seed of one goal's env reset and search, derived from the base seed."""
    return int(np.random.SeedSequence([seed, goal_id]).generate_state(1)[0])


def tree_path(out: str | os.PathLike, goal_id: int) -> Path:
    return Path(out) / f"goal_{goal_id:05d}.jsonl"


# ---------------------------------------------------------------------------
# Building the parties (in each worker).


def _load_object(spec: str) -> Any:
    module_name, name = spec.split(":")
    return getattr(importlib.import_module(module_name), name)


def build_policy(spec: str, env: Any, base_url: str | None = None, model_name: str | None = None) -> Any:
    """A policy from a spec; "package.module:factory" calls `factory(env=env)`."""
    if _OBJECT_SPEC.match(spec):
        return _load_object(spec)(env=env)
    from webgrove.agents.specs import make_policy

    return make_policy(spec, env=env, base_url=base_url, model_name=model_name)


def build_critic(spec: str, policy: Any) -> Any:
    """A critic from a spec; "package.module:factory" calls `factory(policy=policy)`."""
    if _OBJECT_SPEC.match(spec):
        return _load_object(spec)(policy=policy)
    from webgrove.agents.specs import make_critic

    return make_critic(spec, policy=policy)


@dataclass
class _Parties:
    env: Any
    policy: Any
    critic: Any


def build_parties(cfg: CollectConfig) -> _Parties:
    from webgrove.search.rollout import make_env

    env = make_env(cfg.env, split=cfg.split, data_dir=cfg.data_dir, goals=cfg.goal_set,
                   num_products=cfg.num_products)
    policy = build_policy(cfg.policy, env, cfg.base_url, cfg.model_name)
    return _Parties(env=env, policy=policy, critic=build_critic(cfg.critic, policy))


def collect_goal(parties: _Parties, cfg: CollectConfig, goal_id: int) -> dict:
    """Search one goal and write its tree; returns its stats (flat)."""
    start = time.perf_counter()
    seed = goal_seed(cfg.seed, goal_id)
    _, info = parties.env.reset(seed=seed, options={"goal_id": goal_id})
    search_cfg = cfg.search_config(seed=seed)
    tree = search_episode(parties.env, parties.policy, parties.critic, search_cfg)
    records = tree.records()
    timings = tree.timings.as_dict()
    stats = {"simulations_run": timings["simulations"], "env_steps": timings["env_steps"],
             "seconds": time.perf_counter() - start,
             **{k: timings[k] for k in ("total_s", "env_s", "policy_s", "critic_s", "mcts_s")}}
    config = {"critic": cfg.critic, "split": cfg.split, **dataclasses.asdict(search_cfg)}
    header = make_header(env_id=cfg.env, goal_id=goal_id, goal=info["goal"], seed=seed, policy=cfg.policy,
                         config=config, best_path=tree.best_path)
    header = with_stats(header, records, stats)
    write_tree(tree_path(cfg.out, goal_id), header, records)
    return {"goal_id": goal_id, **header.stats}


# Spawned workers keep their parties in this global, built once by the initializer.
_WORKER: tuple[CollectConfig, _Parties] | None = None


def _init_worker(cfg: CollectConfig) -> None:
    global _WORKER
    try:  # one torch thread per worker: N workers share the cores, and oversubscribed
        import torch  # OpenMP threads spin-wait (measured: collection 10x slower)

        torch.set_num_threads(1)
    except ImportError:  # scripted policies need no torch
        pass
    _WORKER = (cfg, build_parties(cfg))


def _collect_in_worker(goal_id: int) -> dict:
    assert _WORKER is not None, "worker not initialized"
    cfg, parties = _WORKER
    try:
        return collect_goal(parties, cfg, goal_id)
    except Exception:  # reported to the parent, which goes on with the other goals
        return {"goal_id": goal_id, "error": traceback.format_exc()}


# ---------------------------------------------------------------------------
# The command.


def _finished_stats(cfg: CollectConfig, goal_ids: range) -> tuple[dict[int, dict], list[int]]:
    """Stats of the goals whose tree file exists and validates, and the goals to do."""
    done: dict[int, dict] = {}
    todo = []
    for goal_id in goal_ids:
        path = tree_path(cfg.out, goal_id)
        try:
            header, nodes = read_tree(path)
        except FileNotFoundError:
            todo.append(goal_id)
        except (OSError, TreeFormatError) as exc:
            print(f"collect: {exc}; collecting goal {goal_id} again", file=sys.stderr)
            todo.append(goal_id)
        else:
            done[goal_id] = {"goal_id": goal_id, **(header.stats or {}), **TreeIndex.build(header, nodes).stats()}
    return done, todo


def _advance(bar, results: list[dict]) -> None:
    done = [r for r in results if "error" not in r]
    bar.set_postfix(success=f"{sum(r['success'] for r in done) / max(1, len(done)):.2f}",
                    failed=len(results) - len(done), refresh=False)
    bar.update(1)


def _run_in_process(cfg: CollectConfig, todo: list[int], bar) -> list[dict]:
    parties = build_parties(cfg)
    results = []
    try:
        for goal_id in todo:
            try:
                results.append(collect_goal(parties, cfg, goal_id))
            except Exception:
                results.append({"goal_id": goal_id, "error": traceback.format_exc()})
            _advance(bar, results)
    finally:
        parties.env.close()
    return results


def _run_in_workers(cfg: CollectConfig, todo: list[int], bar) -> list[dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(cfg.workers, len(todo)), mp_context=context,
                             initializer=_init_worker, initargs=(cfg,)) as pool:
        futures = {pool.submit(_collect_in_worker, g): g for g in todo}
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except BrokenProcessPool as exc:
                results.append({"goal_id": futures[future], "error": f"worker process died: {exc}"})
            _advance(bar, results)
    return results


def summarize_trees(stats: list[dict]) -> dict:
    """Totals over trees' stats: trees, nodes, best-path success rate and score (0-100)."""
    n = len(stats)
    return {
        "trees": n,
        "nodes": sum(s["nodes"] for s in stats),
        "success_rate": sum(bool(s["success"]) for s in stats) / n if n else 0.0,
        "score": 100.0 * sum(s["best_reward"] for s in stats) / n if n else 0.0,
    }


def run_collect(cfg: CollectConfig) -> dict:
    """Collect the missing trees of the goal range and write DIR/summary.json.

    Raises:
        CollectError: when some goals failed; every finished tree is on disk and a
            rerun collects the rest.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    goal_ids = parse_goals(cfg.goals)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    done, todo = _finished_stats(cfg, goal_ids)
    bar = tqdm(total=len(goal_ids), initial=len(done), desc=f"collect {cfg.policy}",
               unit="tree", disable=not cfg.progress)
    try:
        if not todo:
            results = []
        elif cfg.workers == 1:
            results = _run_in_process(cfg, todo, bar)
        else:
            results = _run_in_workers(cfg, todo, bar)
    finally:
        bar.close()
    new = [r for r in results if "error" not in r]
    failed = sorted((r for r in results if "error" in r), key=lambda r: r["goal_id"])
    all_stats = sorted([*done.values(), *new], key=lambda s: s["goal_id"])
    seconds = time.perf_counter() - start
    simulations_run = sum(s["simulations_run"] for s in new)
    search_s = sum(s["total_s"] for s in new)
    summary = {
        **summarize_trees(all_stats),
        "collected": len(new), "skipped": len(done), "failed": [r["goal_id"] for r in failed],
        "seconds": seconds,
        "simulations_run": simulations_run,
        "simulations_per_second": simulations_run / search_s if search_s > 0 else 0.0,
        "mcts_share": sum(s["mcts_s"] for s in new) / search_s if search_s > 0 else 0.0,
        "env": cfg.env, "policy": cfg.policy, "critic": cfg.critic, "split": cfg.split, "goals": cfg.goals,
        "config": dataclasses.asdict(cfg), "command": " ".join(sys.argv),
    }
    write_json_atomic(Path(cfg.out) / SUMMARY_FILE, summary)
    print(f"collect: {summary['trees']} trees ({len(new)} new, {len(done)} already there), "
          f"{summary['nodes']} nodes, best-path success rate {summary['success_rate']:.3f} "
          f"in {seconds:.1f}s -> {cfg.out}")
    if failed:
        for r in failed:
            print(f"collect: goal {r['goal_id']} failed:\n{r['error']}", file=sys.stderr)
        raise CollectError(f"{len(failed)} goal(s) failed: {[r['goal_id'] for r in failed]}; "
                           f"the {summary['trees']} finished trees are in {cfg.out}; "
                           "rerun the same command to collect the rest")
    return summary

