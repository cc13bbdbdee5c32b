"""Episodes of a policy on consecutive goals, greedily or with search at inference:
the `webgrove rollout` command (also what the improve loop and the demo evaluate with).

Greedy means the policy's own choice at every step (a model policy at `--temperature 0`:
the top-scored click, the greedy search query; scripted policies act as they do). With
`--mcts` the agent runs Agent Q's search before every real step
(`webgrove.search.inference.MCTSAgent`) over the same policy. Episode i runs goal
`start_goal + i`, resets with seed `seed + i` and draws from its own generator seeded by
`(seed, i)`, so a result does not depend on how episodes are spread over `--workers`
processes. Results carry WebShop's metrics (`webgrove.agents.episode.summarize`).

With `--attempts T` (T > 1; RISE's evaluation, `webgrove.search.attempts`) each goal also
runs as a multi-attempt episode with `--feedback` (stopping at the first success), without
feedback (every attempt), and as T independent samples; the results add `by_attempt`
(success rate and score at t = 1..T with 95% intervals, with and without oracle, and
parallel sampling) and the per-goal `attempt_outcomes`. The plain metrics stay those of
one attempt: attempt 1 of the with-oracle run is that episode (same goal, seed and generator).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from webgrove.agents.episode import Actor, EpisodeResult, run_episode, summarize
from webgrove.agents.specs import PolicyArgs
from webgrove.envs.errors import UsageError
from webgrove.envs.make import EnvArgs, OutputArgs
from webgrove.search.args import SearchArgs
from webgrove.search.backends import BackendArgs, adopt_environment, is_ray, worker_context
from webgrove.search.tracking import TrackingArgs, log_metrics
from webgrove.io import write_json_atomic
from webgrove.search.attempts import AttemptArgs


@dataclass(kw_only=True)
class RolloutConfig(EnvArgs, PolicyArgs, SearchArgs, OutputArgs, BackendArgs, TrackingArgs, AttemptArgs):
    """Runs a policy (greedily, or with --mcts search before every step) on consecutive goals
    of a split and reports WebShop's metrics: success rate (0-1) and score (0-100)."""

    episodes: int = field(default=100, metadata={"help": "episodes, on goals start_goal, start_goal+1, ..."})
    start_goal: int = field(default=0, metadata={"help": "first goal id"})
    mcts: bool = field(default=False, metadata={
        "help": "search at inference: run Agent Q's MCTS before every step (settings: the search flags)"})
    workers: int = field(default=1, metadata={"help": "worker processes (each one torch thread); 1 = here"})

    def __post_init__(self) -> None:
        checks = {"--episodes": (self.episodes >= 1, "at least 1"), "--start-goal": (self.start_goal >= 0, ">= 0"),
                  "--workers": (self.workers >= 1, "at least 1")}
        for flag, (ok, want) in checks.items():
            if not ok:
                raise UsageError(f"{flag} must be {want}, got {getattr(self, flag[2:].replace('-', '_'))}")
        if self.attempts > 1 and self.mcts:
            raise UsageError("--attempts runs the policy itself; leave out --mcts")
        if self.attempts == 1 and self.max_steps is not None:
            raise UsageError("--max-steps is the step limit of one attempt: it needs --attempts T (T > 1)")
        super().__post_init__()  # the argument groups' checks

    @property
    def goal_ids(self) -> range:
        return range(self.start_goal, self.start_goal + self.episodes)

    @property
    def label(self) -> str:
        """The policy as results name it: a model directory's name, plus "+ MCTS"."""
        name = Path(self.policy).name if os.sep in self.policy else self.policy
        return name + (" + MCTS" if self.mcts else "")


def make_actor(env, cfg: RolloutConfig) -> Callable[[int], Actor]:
    """The one actor factory: episode index -> the function that picks each action
    (the policy greedily, or MCTS over it)."""
    import numpy as np

    from webgrove.agents.specs import make_critic

    policy = cfg.make_policy(env)
    if cfg.mcts:
        from webgrove.search.inference import MCTSAgent

        agent = MCTSAgent(env, policy, make_critic(cfg.critic, policy=policy, env=env), cfg.search_config(cfg.seed))
        return lambda i: agent.act  # each episode starts a fresh tree from the config's seed

    def actor(i: int) -> Actor:
        from webgrove.search.attempts import policy_actor

        return policy_actor(policy, np.random.default_rng([cfg.seed, i]))

    return actor


class GoalRunner:
    """Episodes of one rollout in one process: the env and the policy (or the multi-attempt
    runner) built once, then `episode(i)` for episode indices i (goal start_goal + i, seed
    seed + i). What a local worker process and a Ray actor hold alike."""

    def __init__(self, cfg: RolloutConfig):
        self.cfg = cfg
        if cfg.attempts > 1:
            import dataclasses

            from webgrove.search.attempts import AttemptRunner, step_limit

            def make_policy(env, temperature: float):
                return dataclasses.replace(cfg, temperature=temperature).make_policy(env)

            self.runner = AttemptRunner(lambda: cfg.make(**step_limit(cfg.max_steps)), make_policy, cfg,
                                        cfg.temperature)
            return
        self.env = cfg.make()
        try:
            self.actor = make_actor(self.env, cfg)
        except BaseException:
            self.env.close()
            raise

    def episode(self, i: int) -> EpisodeResult:
        """Episode i; with --attempts, attempt 1 with the goal's by-attempt outcome."""
        cfg = self.cfg
        if cfg.attempts > 1:
            return self.runner.goal(cfg.start_goal + i, cfg.seed + i, [cfg.seed, i])
        return run_episode(self.env, self.actor(i), goal_id=cfg.start_goal + i, seed=cfg.seed + i)

    def close(self) -> None:
        (self.runner if self.cfg.attempts > 1 else self.env).close()


def _run_goals(cfg: RolloutConfig, indices: list[int], bar_disable: bool | None) -> list[EpisodeResult]:
    """Episodes i in `indices`, in this process."""
    from tqdm import tqdm

    runner = GoalRunner(cfg)
    try:
        label = f"rollout {cfg.label}" + (f" x{cfg.attempts}" if cfg.attempts > 1 else "")
        return [runner.episode(i) for i in tqdm(indices, desc=label, disable=bar_disable, unit="ep", leave=False)]
    finally:
        runner.close()


def _worker(args: tuple[RolloutConfig, list[int]]) -> tuple[list[EpisodeResult], float]:
    try:  # the workers share the cores; oversubscribed OpenMP threads spin-wait
        import torch

        torch.set_num_threads(1)
    except ImportError:  # scripted policies need no torch
        pass
    cfg, indices = args
    start = time.perf_counter()
    return _run_goals(cfg, indices, bar_disable=True), time.perf_counter() - start


def _episode_on_actor(runner: GoalRunner, cfg: RolloutConfig, i: int) -> dict:
    return {"goal_id": i, "episode": runner.episode(i)}


def _run_on_ray(cfg: RolloutConfig, workers: int) -> list[EpisodeResult]:
    """The episodes of one rollout on Ray actors (`webgrove.search.backends.run_on_ray`): each
    builds its `GoalRunner` once and returns each episode as it finishes, so an actor that dies
    loses only the episode it was in (Ray restarts it and retries that one). An episode lost
    beyond Ray's restarts stops the rollout: an evaluation with a goal missing is not one."""
    from tqdm import tqdm

    from webgrove.search.backends import INFRASTRUCTURE, run_on_ray

    done: dict[int, EpisodeResult] = {}
    bar = tqdm(total=cfg.episodes, desc=f"rollout {cfg.label} (ray)", disable=cfg.bar_disable, unit="ep", leave=False)

    def take(result: dict) -> None:
        if result.get("kind") == INFRASTRUCTURE:
            raise RuntimeError(f"rollout episode {result['goal_id']} (goal {cfg.start_goal + result['goal_id']}) "
                               f"lost: {result['error']}")
        done[result["goal_id"]] = result["episode"]
        bar.update()

    with bar:
        run_on_ray(GoalRunner, _episode_on_actor, cfg, list(range(cfg.episodes)), take, workers=workers,
                   address=cfg.ray_address)
    return [done[i] for i in range(cfg.episodes)]


def _chunks(n: int, parts: int) -> list[list[int]]:
    """Episode indices 0..n-1 dealt round-robin into `parts` non-empty lists."""
    return [c for c in (list(range(w, n, parts)) for w in range(parts)) if c]


def run_many(cfgs: list[RolloutConfig], workers: int = 1) -> tuple[list[list[EpisodeResult]], list[float]]:
    """EpisodeResults of several rollouts (goal order each), sharing one pool of workers,
    and the wall seconds each took (with workers: its worker-seconds / workers).

    With `workers` > 1 every rollout's episodes are dealt to the same spawned processes
    (one torch thread each), so the processes start once for all of them.
    """
    for c in cfgs:
        c.check_goals(c.goal_ids, flag=f"--start-goal {c.start_goal} --episodes {c.episodes}")
    if is_ray(cfgs[0]) or workers == 1:  # one rollout after the other: here, or on Ray actors
        out, seconds = [], []
        for c in cfgs:
            start = time.perf_counter()
            out.append(_run_on_ray(c, workers) if is_ray(c) else _run_goals(c, list(range(c.episodes)), c.bar_disable))
            seconds.append(time.perf_counter() - start)
        return out, seconds
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    tasks = [(i, chunk) for i, c in enumerate(cfgs) for chunk in _chunks(c.episodes, workers)]
    results: list[list[EpisodeResult]] = [[] for _ in cfgs]
    seconds = [0.0 for _ in cfgs]
    args = [(cfgs[i], chunk) for i, chunk in tasks]
    with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=adopt_environment,
                             initargs=(dict(os.environ),)) as pool:
        parts = pool.map(_worker, args)
        bar = tqdm(zip(tasks, parts), total=len(tasks), desc="rollout", unit="chunk", leave=False,
                   disable=cfgs[0].bar_disable if cfgs else True)
        for (i, _), (part, s) in bar:
            results[i].extend(part)
            seconds[i] += s / workers
    return [sorted(r, key=lambda e: e.goal_id) for r in results], seconds


def policy_fingerprint_of(cfg: RolloutConfig) -> str | None:
    """The evaluated policy's fingerprint (`webgrove.agents.fingerprint`); None if it has none."""
    from webgrove.agents.fingerprint import policy_fingerprint

    try:
        return policy_fingerprint(cfg.policy, cfg.base_url, cfg.model_name)
    except UsageError:
        return None


def summarize_rollout(cfg: RolloutConfig, results: list[EpisodeResult], seconds: float) -> dict:
    """WebShop's metrics of one rollout with their 95% intervals, the per-goal outcomes (so two
    rollouts on the same goals compare goal by goal, `webgrove.stats.paired_comparison`), and
    what ran: seeds, the policy's fingerprint, package versions and the command. Written to
    `cfg.json` when set."""
    from webgrove.provenance import provenance

    summary = summarize(results, seconds, seed=cfg.seed)
    summary.update(policy=cfg.policy, policy_fingerprint=policy_fingerprint_of(cfg), env=cfg.env,
                   split=cfg.split, mcts=cfg.mcts, simulations=cfg.simulations if cfg.mcts else 0,
                   critic=cfg.critic if cfg.mcts else None, seed=cfg.seed,
                   episode_seeds=[cfg.seed + i for i in range(len(results))],
                   goal_ids=[r.goal_id for r in results], rewards=[r.reward for r in results],
                   successes=[r.success for r in results], provenance=provenance())
    if cfg.attempts > 1:
        from webgrove.search.attempts import attempt_summary

        summary.update(attempt_summary(cfg, results, cfg.seed))
    if cfg.json:
        write_json_atomic(cfg.json, dict(summary, config=asdict(cfg)), allow_nan=True)
    log_metrics(cfg, "eval", summary)
    return summary


def rollout(cfg: RolloutConfig) -> dict:
    """Run the episodes; returns the summary (episodes, success_rate, score, steps_per_second, ...)."""
    return rollout_many([cfg], cfg.workers)[0]


def rollout_many(cfgs: list[RolloutConfig], workers: int = 1) -> list[dict]:
    """Several rollouts on one pool of workers (see `run_many`), one summary each."""
    results, seconds = run_many(cfgs, workers)
    return [summarize_rollout(c, res, s) for c, res, s in zip(cfgs, results, seconds)]

