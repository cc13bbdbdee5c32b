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


def _curve(values: list[list[float]]) -> dict:
    """{"success_rate": [...], "score": [...]} from per-goal rewards at t = 1..T."""
    n = len(values)
    horizon = len(values[0]) if values else 0
    return {"success_rate": [sum(is_success(v[t]) for v in values) / n for t in range(horizon)],
            "score": [100.0 * sum(v[t] for v in values) / n for t in range(horizon)]}


def attempt_curves(outcomes: list[dict], attempts: int) -> dict[str, dict]:
    """Every curve of the module docstring from per-goal outcomes.

    An outcome holds `sequential` (rewards of the with-oracle run, stopping at a success),
    `sequential_none` and `parallel` ({"rewards", "answers"}, `attempts` each).
    """
    def best_so_far(r: list[float]) -> list[float]:
        # after a success the oracle run stops: the success stands for every later t
        return [max(r[:t + 1]) if t < len(r) else max(r) for t in range(attempts)]

    def majority(run: dict) -> list[float]:
        return [majority_reward(run["rewards"][:t + 1], run["answers"][:t + 1]) for t in range(attempts)]

    return {
        "sequential_oracle": _curve([best_so_far(o["sequential"]) for o in outcomes]),
        "sequential_last": _curve([o["sequential_none"]["rewards"] for o in outcomes]),
        "sequential_majority": _curve([majority(o["sequential_none"]) for o in outcomes]),
        "parallel_oracle": _curve([best_so_far(o["parallel"]["rewards"]) for o in outcomes]),
        "parallel_majority": _curve([majority(o["parallel"]) for o in outcomes]),
        "parallel_first": _curve([[o["parallel"]["rewards"][0]] * attempts for o in outcomes]),
    }


# -- running -----------------------------------------------------------------------

@dataclass(kw_only=True)
class RiseEvalConfig:
    """Success rate and score at each attempt t = 1..T on held-out goals, sequential and parallel."""

    policy: str = field(metadata={"help": "model directory (or oracle | rule | random)"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    split: str = field(default="test", metadata={"help": "goal split", "choices": ["train", "test"]})
    num_products: int | None = field(default=None, metadata={"help": "synthetic catalog size (default 1000)"})
    episodes: int = field(default=50, metadata={"help": "goals start_goal, start_goal+1, ..."})
    start_goal: int = field(default=0, metadata={"help": "first goal id"})
    attempts: int = field(default=5, metadata={"help": "attempts T"})
    max_steps: int | None = field(default=None, metadata={"help": "step limit of one attempt (default: the id's)"})
    feedback: str = field(default="components", metadata={
        "help": "feedback of the with-oracle run", "choices": [m for m in FEEDBACK_MODES if m != "none"]})
    temperature: float = field(default=0.0, metadata={"help": "temperature of the sequential attempts (0: greedy)"})
    parallel_temperature: float = field(default=1.0, metadata={"help": "temperature of the parallel samples"})
    seed: int = field(default=0, metadata={"help": "base seed; goal g's episodes and samples derive from it"})
    json: str | None = field(default=None, metadata={"help": "write the summary JSON here"})
    plot: str | None = field(default=None, metadata={"help": "write the success-by-attempt PNG here"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.attempts < 1 or self.start_goal < 0:
            raise UsageError("--episodes and --attempts must be >= 1, --start-goal >= 0")
        if self.feedback not in FEEDBACK_MODES or self.feedback == "none":
            raise UsageError(f"--feedback must be retry, score or components, got {self.feedback!r} "
                             "(the no-feedback run is always made)")
        if self.temperature < 0 or self.parallel_temperature < 0:
            raise UsageError("temperatures must be >= 0")


class _Runner:
    """The envs and the two policies (sequential, parallel) of one evaluation."""

    def __init__(self, cfg: RiseEvalConfig):
        from webgrove.envs.make import make_env
        from webgrove.envs.multi_attempt import MultiAttemptWrapper
        from webgrove.training.rise import _policy, step_limit

        def env():
            return make_env(cfg.env, split=cfg.split, num_products=cfg.num_products, **step_limit(cfg.max_steps))

        self.cfg = cfg
        self.oracle_env = MultiAttemptWrapper(env(), cfg.attempts, cfg.feedback)
        self.none_env = MultiAttemptWrapper(env(), cfg.attempts, "none")
        self.single_env = env()
        self.policy = _policy(cfg.policy, self.oracle_env, cfg.temperature)
        self.sampler = _policy(cfg.policy, self.single_env, cfg.parallel_temperature)

    def close(self) -> None:
        for e in (self.oracle_env, self.none_env, self.single_env):
            e.close()

    def goal(self, goal_id: int, seed: int) -> dict:
        import numpy as np

        from webgrove.agents.episode import run_episode
        from webgrove.envs.multi_attempt import attempt_answer
        from webgrove.training.rise import run_attempts

        def act(policy, rng):
            return lambda ctx: policy.act(ctx, rng)

        # the oracle policy reads its env's goal: each run's policy sees its own env's
        seq = run_attempts(self.oracle_env, act(self.policy, np.random.default_rng([seed, 0])), goal_id, seed)
        none = run_attempts(self.none_env, act(self.policy, np.random.default_rng([seed, 0])), goal_id, seed)
        rewards, answers = [], []
        for k in range(self.cfg.attempts):
            result = run_episode(self.single_env, act(self.sampler, np.random.default_rng([seed, 1, k])),
                                 goal_id, seed)
            rewards.append(result.reward)
            answers.append(attempt_answer(self.single_env.unwrapped, result.actions))
        return {"goal_id": goal_id, "sequential": [r["reward"] for r in seq],
                "sequential_none": {"rewards": [r["reward"] for r in none], "answers": [r["answer"] for r in none]},
                "parallel": {"rewards": rewards, "answers": answers},
                "sequential_feedback": [r["feedback"] for r in seq], "sequential_actions": [r["actions"] for r in seq]}


def evaluate_rise(cfg: RiseEvalConfig) -> dict:
    """Run the evaluation; returns (and writes to `cfg.json`) the summary with `by_attempt` curves."""
    from tqdm import tqdm

    from webgrove.search.collect import goal_seed

    start = time.perf_counter()
    runner = _Runner(cfg)
    try:
        goals = range(cfg.start_goal, cfg.start_goal + cfg.episodes)
        outcomes = [runner.goal(g, goal_seed(cfg.seed, g)) for g in
                    tqdm(goals, desc="rise eval", disable=None if cfg.progress else True, unit="goal", leave=False)]
    finally:
        runner.close()
    summary = {"policy": cfg.policy, "env": cfg.env, "split": cfg.split, "episodes": len(outcomes),
               "attempts": cfg.attempts, "feedback": cfg.feedback,
               "by_attempt": attempt_curves(outcomes, cfg.attempts), "outcomes": outcomes,
               "seconds": time.perf_counter() - start, "config": asdict(cfg),
               "provenance": provenance()}
    if cfg.json:
        from webgrove.io import write_json_atomic

        write_json_atomic(cfg.json, summary)
    if cfg.plot:
        from webgrove.training.plots import plot_attempts

        plot_attempts({k: summary["by_attempt"][k] for k in ("sequential_oracle", "parallel_oracle",
                                                              "sequential_last", "parallel_majority")},
                      cfg.plot, title=f"{Path(cfg.policy).name}: success by attempt ({cfg.feedback})")
    return summary


def format_curves(by_attempt: dict[str, dict]) -> str:
    """A table: one line per curve, success rate (%) / score at t = 1..T."""
    lines = []
    for name in CURVES:
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
