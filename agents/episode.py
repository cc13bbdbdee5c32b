"""Running an agent in an env: one episode on a fixed goal, and WebShop's metrics over many.

An actor is any function from a `StepContext` to an action string: a policy acting
greedily, a scripted agent, or search at inference (`webgrove.search.inference.MCTSAgent.act`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from webgrove.agents.base import StepContext, context_from
from webgrove.envs import is_success

Actor = Callable[[StepContext], str]


@dataclass
class EpisodeResult:
    """One finished episode: its goal, final reward, success and the actions taken."""

    goal_id: int
    reward: float
    success: bool
    steps: int
    actions: list[str] = field(default_factory=list)
    errors: int = 0  # steps whose action the env rejected (info["error"] set)


def run_episode(env, act: Actor, goal_id: int, seed: int) -> EpisodeResult:
    """One episode on a fixed goal; `act` maps a step context to an action string."""
    obs, info = env.reset(seed=seed, options={"goal_id": goal_id})
    history: list[str] = []
    reward, errors = 0.0, 0
    while True:
        action = act(context_from(obs, info, history))
        obs, reward, terminated, truncated, info = env.step(action)
        history.append(action)
        errors += info.get("error") is not None
        if terminated or truncated:
            break
    return EpisodeResult(goal_id=goal_id, reward=float(reward), success=is_success(reward),
                         steps=len(history), actions=history, errors=errors)


def summarize(results: list[EpisodeResult], seconds: float, seed: int = 0) -> dict:
    """WebShop's metrics: success rate (0-1) and score (100 x mean reward), each with its 95%
    interval (`webgrove.stats.outcome_summary`), plus speed."""
    from webgrove.stats import outcome_summary

    n = len(results)
    steps = sum(r.steps for r in results)
    return {
        **outcome_summary([r.reward for r in results], [r.success for r in results], seed=seed),
        "mean_steps": steps / n if n else 0.0,
        "steps_per_second": steps / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
        "invalid_actions": sum(r.errors for r in results),
    }
