"""Held-out evaluation of a model policy, greedy or with search: the `webgrove eval` command.

Greedy means the model's most likely action at every step (`HFPolicy` at temperature 0:
the top-scored click, the greedy search query). With `--mcts` the agent runs Agent Q's
search before every real step (`search.inference.MCTSAgent`) over the same policy,
proposing its top-k actions and rolling out greedily, so an evaluation is deterministic
given its seed. Episodes run on consecutive goals of a split, optionally spread over
worker processes (each with its own env, model and one torch thread), and are reported
with WebShop's metrics (`search.rollout.summarize`).
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


def make_agent(env, cfg: EvalConfig):
    """(act function, policy): the greedy policy, or MCTS over it."""
    import numpy as np

    from agents.specs import make_critic, make_policy

    opts = {} if cfg.model in ("oracle", "rule", "random") else {"temperature": cfg.temperature}
    policy = make_policy(cfg.model, env=env, **opts)
    rng = np.random.default_rng(cfg.seed)
    if cfg.mcts:
        from search.inference import MCTSAgent
        from search.mcts import SearchConfig

        search = SearchConfig(simulations=cfg.simulations, k=cfg.k, alpha=cfg.alpha,
                              rollout_temperature=cfg.rollout_temperature, max_depth=cfg.max_depth,
                              seed=cfg.seed)
        agent = MCTSAgent(env, policy, make_critic(cfg.critic, policy=policy), search)
        return agent.act, policy
    return (lambda ctx: policy.act(ctx, rng)), policy


def _run_goals(cfg: EvalConfig, indices: list[int], progress: bool) -> list:
    """Episodes i in `indices` (goal start_goal + i, seed seed + i), in this process."""
    from tqdm import tqdm

    from search.rollout import make_env, run_episode

    env = make_env(cfg.env, split=cfg.split, num_products=cfg.num_products)
    try:
        act, _ = make_agent(env, cfg)
        bar = tqdm(indices, desc=f"eval {Path(cfg.model).name}{' +mcts' if cfg.mcts else ''}",
                   disable=not progress, unit="ep", leave=False)
        return [run_episode(env, act, goal_id=cfg.start_goal + i, seed=cfg.seed + i) for i in bar]
    finally:
        env.close()


def _worker(args: tuple[EvalConfig, list[int]]) -> list:
    import torch

    torch.set_num_threads(1)  # the workers share the cores
    cfg, indices = args
    return _run_goals(cfg, indices, progress=False)


def run_episodes(cfg: EvalConfig) -> list:
    """EpisodeResults of every episode, in goal order."""
    indices = list(range(cfg.episodes))
    if cfg.workers == 1:
        return _run_goals(cfg, indices, cfg.progress)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [indices[w::cfg.workers] for w in range(cfg.workers)]
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_worker, [(cfg, c) for c in chunks if c]))
    results = [r for part in parts for r in part]
    return sorted(results, key=lambda r: r.goal_id)


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation; returns the summary (episodes, success_rate, score, steps_per_second, ...)."""
    from search.rollout import summarize

    start = time.perf_counter()
    results = run_episodes(cfg)
    summary = summarize(results, time.perf_counter() - start)
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


def run_eval(cfg: EvalConfig) -> int:
    s = evaluate(cfg)
    print(f"{cfg.model}{' + MCTS' if cfg.mcts else ''} on {cfg.env} ({cfg.split}, {s['episodes']} episodes): "
          f"success rate {s['success_rate']:.3f}, score {s['score']:.1f}, "
          f"{s['steps_per_second']:.1f} steps/s, {s['seconds']:.1f}s", file=sys.stdout)
    return 0
