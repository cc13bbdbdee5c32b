"""Success by attempt (RISE's evaluation): sequential attempts with feedback against parallel sampling.

For each held-out goal, three runs of the policy, T attempts each at most:

- **sequential, with oracle**: `MultiAttemptWrapper` with the feedback mode (e.g.
  `components`); the episode stops at the first success. At attempt t: success if any of
  the first t attempts succeeded, score = the best reward among them.
- **sequential, without oracle**: the same with feedback `none` -- no success signal,
  every attempt runs. At attempt t: `last` (attempt t's own reward) and `majority` (the
  reward of the answer most of the first t attempts settled on; ties go to the answer
  seen most recently).
- **parallel**: t independent single attempts (a fresh episode each, no history), the
  policy sampled at `parallel_temperature`, the same number of episodes. With oracle: best
  of t; without: `majority` of t, or `first` (attempt 1, whatever t is).

Success rate is 0-1 and score 0-100 (WebShop's 100 × mean reward), per attempt t = 1..T.
The sequential runs act at `temperature` (0: greedy); the first attempt of the sequential
runs is therefore the plain one-attempt policy.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from webgrove.agents.episode import EpisodeResult

from webgrove.envs.errors import UsageError
from webgrove.envs.multi_attempt import FEEDBACK_MODES, is_success
from webgrove.provenance import provenance

log = logging.getLogger(__name__)

CURVES = ("sequential_oracle", "sequential_last", "sequential_majority",
          "parallel_oracle", "parallel_majority", "parallel_first")


# -- metrics (pure) ----------------------------------------------------------------

def majority_reward(rewards: list[float], answers: list[str]) -> float:
    """The reward of the most frequent answer; ties go to the answer seen most recently."""
    counts = Counter(answers)
    top = max(counts.values())
    latest = max(i for i, a in enumerate(answers) if counts[a] == top)
    return rewards[latest]


def _curve(values: list[list[float]], seed: int = 0) -> dict:
    """Success rate and score at t = 1..T from per-goal rewards, with their 95% intervals
    (`webgrove.stats.outcome_summary`: Wilson for success, bootstrap for score)."""
    from webgrove.stats import outcome_summary

    horizon = len(values[0]) if values else 0
    per_t = [outcome_summary([v[t] for v in values], [is_success(v[t]) for v in values], seed=seed)
             for t in range(horizon)]
    return {k: [s[k] for s in per_t] for k in ("success_rate", "success_rate_ci95", "score", "score_ci95")}


def attempt_curves(outcomes: list[dict], attempts: int, seed: int = 0) -> dict[str, dict]:
    """Every curve of the module docstring from per-goal outcomes.

    An outcome holds `sequential` (rewards of the with-oracle run, stopping at a success),
    and, when those runs were made, `sequential_none` and `parallel` ({"rewards", "answers"},
    `attempts` each); curves of runs not made are left out.
    """
    def best_so_far(r: list[float]) -> list[float]:
        # after a success the oracle run stops: the success stands for every later t
        return [max(r[:t + 1]) if t < len(r) else max(r) for t in range(attempts)]

    def majority(run: dict) -> list[float]:
        return [majority_reward(run["rewards"][:t + 1], run["answers"][:t + 1]) for t in range(attempts)]

    runs = {"sequential_oracle": lambda o: best_so_far(o["sequential"]),
            "sequential_last": lambda o: o["sequential_none"]["rewards"],
            "sequential_majority": lambda o: majority(o["sequential_none"]),
            "parallel_oracle": lambda o: best_so_far(o["parallel"]["rewards"]),
            "parallel_majority": lambda o: majority(o["parallel"]),
            "parallel_first": lambda o: [o["parallel"]["rewards"][0]] * attempts}
    made = {"sequential_oracle": True, "sequential_last": all("sequential_none" in o for o in outcomes),
            "parallel_oracle": all("parallel" in o for o in outcomes)}
    made.update(sequential_majority=made["sequential_last"], parallel_majority=made["parallel_oracle"],
                parallel_first=made["parallel_oracle"])
    return {name: _curve([f(o) for o in outcomes], seed) for name, f in runs.items() if made[name]}


# -- running -----------------------------------------------------------------------

@dataclass(kw_only=True)
class AttemptArgs:
    """Multi-attempt evaluation settings: an argument group (`webgrove rollout --attempts T`)."""

    attempts: int = field(default=1, metadata={
        "help": "attempts per goal T (RISE); above 1 the results add success and score at each attempt "
                "t = 1..T with and without oracle, and parallel sampling with as many episodes"})
    feedback: str = field(default="components", metadata={
        "help": "feedback after a failed attempt (the with-oracle run)", "choices": ["retry", "score", "components"]})
    parallel_temperature: float = field(default=1.0, metadata={
        "help": "temperature of the parallel samples (with --attempts)"})
    without_oracle: bool = field(default=True, metadata={
        "help": "also run every attempt without feedback (RISE's without oracle: last / majority)"})
    parallel: bool = field(default=True, metadata={
        "help": "also sample T independent episodes per goal (parallel sampling: best of t / majority)"})
    max_steps: int | None = field(default=None, metadata={
        "help": "step limit of one attempt, attempt 1 included (with --attempts; default: the id's own)"})

    def __post_init__(self) -> None:
        from webgrove.envs.make import next_post_init

        if self.attempts < 1:
            raise UsageError(f"--attempts must be at least 1, got {self.attempts}")
        if self.feedback not in FEEDBACK_MODES or self.feedback == "none":
            raise UsageError(f"--feedback must be retry, score or components, got {self.feedback!r} "
                             "(the no-feedback run is --without-oracle)")
        if self.parallel_temperature < 0:
            raise UsageError(f"--parallel-temperature must be >= 0, got {self.parallel_temperature}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, got {self.max_steps}")
        next_post_init(self, AttemptArgs)


@dataclass
class AttemptEpisode(EpisodeResult):
    """Attempt 1 of a goal's with-oracle run as a plain episode (what a one-attempt rollout
    of the same goal, seed and generator does), with the goal's by-attempt `outcome`."""

    outcome: dict = field(default_factory=dict)


def policy_actor(policy, rng) -> Callable:
    """The function that picks each action: `policy.act`, or its first proposal."""
    if hasattr(policy, "act"):
        return lambda ctx: policy.act(ctx, rng)
    return lambda ctx: policy.propose(ctx, 1, rng)[0].action


class AttemptRunner:
    """The envs and the two policies (sequential, parallel) of a by-attempt evaluation.

    Args:
        make_env: builds one env (called once per run kind).
        make_policy: (env, temperature) -> the policy acting in that env.
        args: the attempt settings; `temperature` is the sequential attempts' own.
    """

    def __init__(self, make_env: Callable[[], Any], make_policy: Callable[[Any, float], Any], args: AttemptArgs,
                 temperature: float):
        from webgrove.envs.multi_attempt import MultiAttemptWrapper

        self.args = args
        self.oracle_env = MultiAttemptWrapper(make_env(), args.attempts, args.feedback)
        self.none_env = MultiAttemptWrapper(make_env(), args.attempts, "none") if args.without_oracle else None
        self.single_env = make_env() if args.parallel else None
        # the oracle policy reads its env's goal: each env gets its own policy
        self.policy = make_policy(self.oracle_env, temperature)
        self.none_policy = make_policy(self.none_env, temperature) if self.none_env else None
        self.sampler = make_policy(self.single_env, args.parallel_temperature) if self.single_env else None

    def close(self) -> None:
        for e in (self.oracle_env, self.none_env, self.single_env):
            if e is not None:
                e.close()

    def goal(self, goal_id: int, seed: int, rng_key: list[int]) -> AttemptEpisode:
        """Every run of one goal; the sequential runs draw from `default_rng(rng_key)`, parallel
        sample k from `default_rng(rng_key + [1, k])`."""
        import numpy as np

        from webgrove.agents.episode import run_episode
        from webgrove.envs.multi_attempt import attempt_answer
        from webgrove.training.rise import run_attempt_runs, run_attempts

        runs = run_attempt_runs(self.oracle_env, policy_actor(self.policy, np.random.default_rng(rng_key)),
                                goal_id, seed)
        seq = runs[-1].info["attempts"]
        outcome = {"goal_id": goal_id, "sequential": [r["reward"] for r in seq],
                   "sequential_feedback": [r["feedback"] for r in seq],
                   "sequential_actions": [r["actions"] for r in seq]}
        if self.none_env is not None:
            none = run_attempts(self.none_env, policy_actor(self.none_policy, np.random.default_rng(rng_key)),
                                goal_id, seed)
            outcome["sequential_none"] = {"rewards": [r["reward"] for r in none],
                                          "answers": [r["answer"] for r in none]}
        if self.sampler is not None:
            results = [run_episode(self.single_env, policy_actor(self.sampler, np.random.default_rng([*rng_key, 1, k])),
                                   goal_id, seed) for k in range(self.args.attempts)]
            answers = [attempt_answer(self.single_env.unwrapped, r.actions) for r in results]
            outcome["parallel"] = {"rewards": [r.reward for r in results], "answers": answers}
        first = runs[0].record
        return AttemptEpisode(goal_id=goal_id, reward=float(first["reward"]), success=bool(first["success"]),
                              steps=len(first["actions"]), actions=list(first["actions"]), errors=runs[0].errors,
                              outcome=outcome)


def attempt_summary(args: AttemptArgs, episodes: list[AttemptEpisode], seed: int = 0) -> dict:
    """The by-attempt part of a results file: settings, `by_attempt` curves (with 95% intervals)
    and the per-goal outcomes."""
    outcomes = [e.outcome for e in episodes]
    return {"attempts": args.attempts, "feedback": args.feedback, "parallel_temperature": args.parallel_temperature,
            "by_attempt": attempt_curves(outcomes, args.attempts, seed), "attempt_outcomes": outcomes}


@dataclass(kw_only=True)
class RiseEvalConfig(AttemptArgs):
    """Success rate and score at each attempt t = 1..T on held-out goals, sequential and parallel."""

    policy: str = field(metadata={"help": "model directory (or oracle | rule | random)"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    split: str = field(default="test", metadata={"help": "goal split", "choices": ["train", "test"]})
    num_products: int | None = field(default=None, metadata={"help": "synthetic catalog size (default 1000)"})
    episodes: int = field(default=50, metadata={"help": "goals start_goal, start_goal+1, ..."})
    start_goal: int = field(default=0, metadata={"help": "first goal id"})
    attempts: int = field(default=5, metadata={"help": "attempts T"})
    temperature: float = field(default=0.0, metadata={"help": "temperature of the sequential attempts (0: greedy)"})
    seed: int = field(default=0, metadata={"help": "base seed; goal g's episodes and samples derive from it"})
    json: str | None = field(default=None, metadata={"help": "write the summary JSON here"})
    plot: str | None = field(default=None, metadata={"help": "write the success-by-attempt PNG here"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.start_goal < 0:
            raise UsageError("--episodes must be >= 1, --start-goal >= 0")
        if self.temperature < 0:
            raise UsageError("temperatures must be >= 0")
        super().__post_init__()


def _runner(cfg: RiseEvalConfig) -> AttemptRunner:
    from webgrove.envs.make import make_env
    from webgrove.training.rise import _policy, step_limit

    def env():
        return make_env(cfg.env, split=cfg.split, num_products=cfg.num_products, **step_limit(cfg.max_steps))

    return AttemptRunner(env, lambda e, t: _policy(cfg.policy, e, t), cfg, cfg.temperature)


def evaluate_rise(cfg: RiseEvalConfig) -> dict:
    """Run the evaluation; returns (and writes to `cfg.json`) the summary with `by_attempt` curves."""
    from tqdm import tqdm

    from webgrove.search.collect import goal_seed

    start = time.perf_counter()
    runner = _runner(cfg)
    try:
        goals = range(cfg.start_goal, cfg.start_goal + cfg.episodes)
        episodes = [runner.goal(g, goal_seed(cfg.seed, g), [goal_seed(cfg.seed, g), 0]) for g in
                    tqdm(goals, desc="rise eval", disable=None if cfg.progress else True, unit="goal", leave=False)]
    finally:
        runner.close()
    attempts = attempt_summary(cfg, episodes, cfg.seed)
    summary = {"policy": cfg.policy, "env": cfg.env, "split": cfg.split, "episodes": len(episodes),
               **{k: v for k, v in attempts.items() if k != "attempt_outcomes"},
               "outcomes": attempts["attempt_outcomes"],
               "seconds": time.perf_counter() - start, "config": asdict(cfg),
               "provenance": provenance()}
    if cfg.json:
        from webgrove.io import write_json_atomic

        write_json_atomic(cfg.json, summary)
    if cfg.plot:
        from webgrove.training.plots import plot_attempts

        plot_attempts({k: summary["by_attempt"][k] for k in ("sequential_oracle", "parallel_oracle",
                                                              "sequential_last", "parallel_majority")
                       if k in summary["by_attempt"]},
                      cfg.plot, title=f"{Path(cfg.policy).name}: success by attempt ({cfg.feedback})")
    return summary


def format_curves(by_attempt: dict[str, dict]) -> str:
    """A table: one line per curve, success rate (%) / score at t = 1..T."""
    lines = []
    for name in (c for c in CURVES if c in by_attempt):
        c = by_attempt[name]
        cells = "  ".join(f"{100 * s:5.1f}/{sc:5.1f}" for s, sc in zip(c["success_rate"], c["score"]))
        lines.append(f"{name:>20}  {cells}")
    return "\n".join(lines)


def run_rise_eval(cfg: RiseEvalConfig) -> int:
    s = evaluate_rise(cfg)
    log.info(f"{cfg.policy} on {cfg.env} ({cfg.split}, {s['episodes']} goals, T={cfg.attempts}, feedback "
             f"{cfg.feedback}): success rate (%) / score at t = 1..{cfg.attempts}")
    log.info(format_curves(s["by_attempt"]))
    return 0
