"""`webgrove rise eval`: success by attempt of a policy on held-out goals (RISE's evaluation).

The runs and the curves -- sequential attempts with and without oracle against parallel
sampling with the same number of episodes -- are `webgrove.search.attempts`, which
`webgrove rollout --attempts` shares; this module adds the command, its results file and plot.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from webgrove.envs.errors import UsageError
from webgrove.provenance import provenance
from webgrove.search.attempts import CURVES, AttemptArgs, AttemptRunner, attempt_summary, format_retries

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RiseEvalConfig(AttemptArgs):
    """Success rate and score at each attempt t = 1..T on held-out goals, sequential and parallel."""

    policy: str = field(metadata={"help": "model directory (or oracle | rule | rule-options | random)"})
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
    log.info("with oracle, each retry against the attempt before it:\n" + format_retries(s["retries"]))
    return 0
