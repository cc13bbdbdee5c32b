"""Multi-attempt episodes and success by attempt (RISE's evaluation): sequential attempts with feedback against parallel sampling.

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

Running attempts (`run_attempt_runs`) is shared by evaluation (`webgrove rollout --attempts`,
`webgrove rise eval`) and RISE's data collection (`webgrove.training.rise`).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from webgrove.agents.base import StepContext, context_from
from webgrove.agents.episode import EpisodeResult
from webgrove.envs.errors import UsageError
from webgrove.envs.multi_attempt import FEEDBACK_MODES, is_success

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Running attempts

@dataclass
class AttemptRun:
    """One attempt inside a multi-attempt episode, and where the episode stands after it."""

    steps: list[tuple[StepContext, str]]
    record: dict  # the finished attempt's record (webgrove.envs.multi_attempt)
    done: bool  # the whole episode is over
    obs: Any  # the next attempt's first observation when not done
    info: dict
    errors: int = 0  # steps whose action the env rejected (info["error"] set)


def run_attempt(env, obs, info: dict, act: Callable[[StepContext], str]) -> AttemptRun:
    """Act from (obs, info) until the current attempt ends; the history restarts per attempt."""
    history: list[str] = []
    steps: list[tuple[StepContext, str]] = []
    errors = 0
    while True:
        ctx = context_from(obs, info, history)
        action = act(ctx)
        steps.append((ctx, action))
        history.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        # the step that starts the next attempt carries the ended attempt's own info inside
        errors += (info.get("attempt_ended") or info).get("error") is not None
        if terminated or truncated or "attempt_ended" in info:
            return AttemptRun(steps, info["attempts"][-1], bool(terminated or truncated), obs, info, errors)


def run_attempt_runs(env, act: Callable[[StepContext], str], goal_id: int, seed: int) -> list[AttemptRun]:
    """A whole multi-attempt episode on one goal, one `AttemptRun` per attempt, oldest first."""
    obs, info = env.reset(seed=seed, options={"goal_id": goal_id})
    runs = []
    while True:
        runs.append(run_attempt(env, obs, info, act))
        if runs[-1].done:
            return runs
        obs, info = runs[-1].obs, runs[-1].info


def run_attempts(env, act: Callable[[StepContext], str], goal_id: int, seed: int) -> list[dict]:
    """A whole multi-attempt episode on one goal; returns its attempt records, oldest first."""
    return run_attempt_runs(env, act, goal_id, seed)[-1].info["attempts"]


def step_limit(max_steps: int | None) -> dict:
    """`gymnasium.make` arguments for a per-attempt step limit (none: the id's own)."""
    return {} if max_steps is None else {"max_episode_steps": int(max_steps)}


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


def retry_counts(outcomes: list[dict], attempts: int) -> list[dict]:
    """What each retry of the with-oracle run did, t = 2..T: over the goals whose attempt t − 1
    failed (so attempt t ran), how many attempts t earned more, the same or less than attempt
    t − 1, and the mean reward of both. The oracle curve hides a retry that does worse (the
    best so far stands); this shows it."""
    out = []
    for t in range(1, attempts):
        pairs = [(o["sequential"][t - 1], o["sequential"][t]) for o in outcomes if len(o["sequential"]) > t]
        n = len(pairs)
        out.append({"attempt": t + 1, "goals": n,
                    "better": sum(b > a for a, b in pairs), "same": sum(b == a for a, b in pairs),
                    "worse": sum(b < a for a, b in pairs),
                    "mean_reward_before": sum(a for a, _ in pairs) / n if n else None,
                    "mean_reward": sum(b for _, b in pairs) / n if n else None})
    return out


def format_retries(retries: list[dict]) -> str:
    """One line per retry: "attempt 2: 412 goals retried, 6 better / 52 same / 354 worse, mean reward 0.58 -> 0.11"."""
    return "\n".join(
        f"attempt {r['attempt']}: {r['goals']} goals retried, {r['better']} better / {r['same']} same / "
        f"{r['worse']} worse, mean reward {r['mean_reward_before']:.2f} -> {r['mean_reward']:.2f}"
        if r["goals"] else f"attempt {r['attempt']}: no goal retried" for r in retries)


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
    later_temperature: float | None = field(default=None, metadata={
        "help": "temperature of attempts 2..T of the sequential runs (RISE samples its later turns; "
                "attempt 1 keeps the policy's own temperature; default: the same as attempt 1)"})

    def __post_init__(self) -> None:
        from webgrove.envs.make import next_post_init

        if self.attempts < 1:
            raise UsageError(f"--attempts must be at least 1, got {self.attempts}")
        if self.feedback not in FEEDBACK_MODES or self.feedback == "none":
            raise UsageError(f"--feedback must be retry, score or components, got {self.feedback!r} "
                             "(the no-feedback run is --without-oracle)")
        if self.parallel_temperature < 0:
            raise UsageError(f"--parallel-temperature must be >= 0, got {self.parallel_temperature}")
        if self.later_temperature is not None and self.later_temperature < 0:
            raise UsageError(f"--later-temperature must be >= 0, got {self.later_temperature}")
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


def attempt_actor(first, later, rng) -> Callable:
    """`policy_actor` of `first` on an attempt's first try, of `later` once the context holds
    earlier attempts (`later` None: `first` throughout)."""
    act_first = policy_actor(first, rng)
    if later is None:
        return act_first
    act_later = policy_actor(later, rng)
    return lambda ctx: act_later(ctx) if ctx.attempts else act_first(ctx)


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
        later = args.later_temperature
        self.later = make_policy(self.oracle_env, later) if later is not None else None
        self.none_later = make_policy(self.none_env, later) if later is not None and self.none_env else None
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
        
        runs = run_attempt_runs(self.oracle_env,
                                attempt_actor(self.policy, self.later, np.random.default_rng(rng_key)), goal_id, seed)
        seq = runs[-1].info["attempts"]
        outcome = {"goal_id": goal_id, "sequential": [r["reward"] for r in seq],
                   "sequential_feedback": [r["feedback"] for r in seq],
                   "sequential_actions": [r["actions"] for r in seq]}
        if self.none_env is not None:
            none = run_attempts(self.none_env, attempt_actor(self.none_policy, self.none_later,
                                                             np.random.default_rng(rng_key)), goal_id, seed)
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
            "later_temperature": args.later_temperature,
            "by_attempt": attempt_curves(outcomes, args.attempts, seed),
            "retries": retry_counts(outcomes, args.attempts), "attempt_outcomes": outcomes}
