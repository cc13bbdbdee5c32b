"""Held-out evaluation of a model policy, greedy or with search: the `webgrove eval` command.

Greedy means the model's most likely action at every step (`HFPolicy` at temperature 0:
the top-scored click, the greedy search query). With `--mcts` the agent runs Agent Q's
search before every real step (`webgrove.search.inference.MCTSAgent`) over the same policy,
proposing its top-k actions and rolling out greedily, so an evaluation is deterministic
given its seed. Episodes run on consecutive goals of a split, optionally spread over
worker processes (each with its own env, model and one torch thread), and are reported
with WebShop's metrics (`webgrove.search.rollout.summarize`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class EvalConfig:
    """Evaluate a model directory on held-out goals: success rate (0-1) and score (0-100)."""

    model: str = field(metadata={"help": "model directory (or any policy spec: oracle, rule, random)"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    split: str = field(default="test", metadata={"help": "goal split", "choices": ["train", "test"]})
    episodes: int = field(default=200, metadata={"help": "episodes, on goals start_goal, start_goal+1, ..."})
    start_goal: int = field(default=0, metadata={"help": "first goal id"})
    seed: int = field(default=0, metadata={"help": "base seed; episode i resets with seed + i"})
    mcts: bool = field(default=False, metadata={"help": "search before every step (Agent Q's MCTS at inference)"})
    simulations: int = field(default=4, metadata={"help": "MCTS simulations per step (with --mcts)"})
    k: int = field(default=3, metadata={"help": "proposals per expanded node (with --mcts)"})
    critic: str = field(default="lexical", metadata={"help": "critic for --mcts: none | lexical | self"})
    alpha: float = field(default=0.5, metadata={"help": "weight of Q_mcts against the critic's value (with --mcts)"})
    max_depth: int = field(default=15, metadata={"help": "most actions a search looks ahead (with --mcts)"})
    rollout_temperature: float = field(default=0.0, metadata={
        "help": "temperature of MCTS rollouts (0 = greedy, deterministic)"})
    temperature: float = field(default=0.0, metadata={"help": "policy temperature (0 = greedy)"})
    num_products: int = field(default=1000, metadata={"help": "synthetic catalog size (shop envs)"})
    workers: int = field(default=1, metadata={"help": "worker processes (each one torch thread); 1 = here"})
    json: str | None = field(default=None, metadata={"help": "write the summary JSON here"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        checks = {"episodes": self.episodes >= 1, "simulations": self.simulations >= 1, "k": self.k >= 1,
                  "max_depth": self.max_depth >= 1,
                  "alpha": 0.0 <= self.alpha <= 1.0, "temperature": self.temperature >= 0,
                  "rollout_temperature": self.rollout_temperature >= 0, "workers": self.workers >= 1,
                  "start_goal": self.start_goal >= 0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))


def make_actor(env, cfg: EvalConfig):
    """A function episode index -> act function: the greedy policy, or MCTS over it.

    Each episode gets its own random generator (seeded by `cfg.seed` and the episode), so
    results do not depend on how episodes are spread over workers.
    """
    import numpy as np

    from webgrove.agents.specs import make_critic, make_policy

    opts = {} if cfg.model in ("oracle", "rule", "random") else {"temperature": cfg.temperature}
    policy = make_policy(cfg.model, env=env, **opts)
    if cfg.mcts:
        from webgrove.search.inference import MCTSAgent
        from webgrove.search.mcts import SearchConfig

        search = SearchConfig(simulations=cfg.simulations, k=cfg.k, alpha=cfg.alpha,
                              rollout_temperature=cfg.rollout_temperature, max_depth=cfg.max_depth,
                              seed=cfg.seed)
        agent = MCTSAgent(env, policy, make_critic(cfg.critic, policy=policy), search)
        return lambda i: agent.act  # each episode starts a fresh tree from the config's seed

    def actor(i: int):
        rng = np.random.default_rng([cfg.seed, i])
        return lambda ctx: policy.act(ctx, rng)

    return actor


def _run_goals(cfg: EvalConfig, indices: list[int], progress: bool) -> list:
    """Episodes i in `indices` (goal start_goal + i, seed seed + i), in this process."""
    from tqdm import tqdm

    from webgrove.search.rollout import make_env, run_episode

    env = make_env(cfg.env, split=cfg.split, num_products=cfg.num_products)
    try:
        actor = make_actor(env, cfg)
        bar = tqdm(indices, desc=f"eval {Path(cfg.model).name}{' +mcts' if cfg.mcts else ''}",
                   disable=not progress, unit="ep", leave=False)
        return [run_episode(env, actor(i), goal_id=cfg.start_goal + i, seed=cfg.seed + i) for i in bar]
    finally:
        env.close()


def _worker(args: tuple[EvalConfig, list[int]]) -> tuple[list, float]:
    import torch

    torch.set_num_threads(1)  # the workers share the cores
    cfg, indices = args
    start = time.perf_counter()
    return _run_goals(cfg, indices, progress=False), time.perf_counter() - start


def _chunks(n: int, parts: int) -> list[list[int]]:
    """Episode indices 0..n-1 dealt round-robin into `parts` non-empty lists."""
    return [c for c in (list(range(w, n, parts)) for w in range(parts)) if c]


def run_many(cfgs: list[EvalConfig], workers: int = 1, progress: bool = True) -> tuple[list[list], list[float]]:
    """EpisodeResults of several evaluations (goal order each), sharing one pool of workers,
    and the wall seconds each took (with workers: its worker-seconds / workers).

    With `workers` > 1 every evaluation's episodes are dealt to the same spawned processes
    (one torch thread each), so the processes start once for all of them.
    """
    if workers == 1:
        out, seconds = [], []
        for c in cfgs:
            start = time.perf_counter()
            out.append(_run_goals(c, list(range(c.episodes)), progress))
            seconds.append(time.perf_counter() - start)
        return out, seconds
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    tasks = [(i, chunk) for i, c in enumerate(cfgs) for chunk in _chunks(c.episodes, workers)]
    results: list[list] = [[] for _ in cfgs]
    seconds = [0.0 for _ in cfgs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = pool.map(_worker, [(cfgs[i], chunk) for i, chunk in tasks])
        for (i, _), (part, s) in tqdm(zip(tasks, parts), total=len(tasks), desc="eval", disable=not progress,
                                      unit="chunk", leave=False):
            results[i].extend(part)
            seconds[i] += s / workers
    return [sorted(r, key=lambda e: e.goal_id) for r in results], seconds


def summarize_eval(cfg: EvalConfig, results: list, seconds: float) -> dict:
    """WebShop's metrics of one evaluation, written to `cfg.json` when set."""
    from webgrove.search.rollout import summarize

    summary = summarize(results, seconds)
    summary.update(model=cfg.model, env=cfg.env, split=cfg.split, mcts=cfg.mcts,
                   simulations=cfg.simulations if cfg.mcts else 0,
                   rewards=[r.reward for r in results])
    if cfg.json:
        path = Path(cfg.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(dict(summary, config=asdict(cfg)), indent=2))
        os.replace(tmp, path)
    return summary


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation; returns the summary (episodes, success_rate, score, steps_per_second, ...)."""
    start = time.perf_counter()
    results, _ = run_many([cfg], cfg.workers, cfg.progress)
    return summarize_eval(cfg, results[0], time.perf_counter() - start)


def evaluate_many(cfgs: list[EvalConfig], workers: int = 1, progress: bool = True) -> list[dict]:
    """Several evaluations on one pool of workers (see `run_many`), one summary each."""
    results, seconds = run_many(cfgs, workers, progress)
    return [summarize_eval(c, res, s) for c, res, s in zip(cfgs, results, seconds)]


def run_eval(cfg: EvalConfig) -> int:
    s = evaluate(cfg)
    print(f"{cfg.model}{' + MCTS' if cfg.mcts else ''} on {cfg.env} ({cfg.split}, {s['episodes']} episodes): "
          f"success rate {s['success_rate']:.3f}, score {s['score']:.1f}, "
          f"{s['steps_per_second']:.1f} steps/s, {s['seconds']:.1f}s", file=sys.stdout)
    return 0
