"""Episodes of an agent in an env, and the `webgrove rollout` command."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from webgrove.agents.base import StepContext, context_from

SHOP_IDS = ("webgrove/WebShop-v0", "webgrove/WebShopBrowser-v0")


@dataclass
class EpisodeResult:
    goal_id: int
    reward: float
    success: bool
    steps: int
    actions: list[str] = field(default_factory=list)
    errors: int = 0


def make_env(env_id: str, split: str = "test", data_dir: str | None = None,
             goals: str = "synthetic", num_products: int | None = None, **kwargs):
    """`gymnasium.make` with the shop arguments passed only to shop envs."""
    import gymnasium as gym

    import webgrove.envs  # noqa: F401  (registers the ids)

    if env_id in SHOP_IDS:
        kwargs.update(split=split, data_dir=data_dir, goals=goals, num_products=num_products)
    return gym.make(env_id, **kwargs)


def run_episode(env, act: Callable[[StepContext], str], goal_id: int, seed: int) -> EpisodeResult:
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
    return EpisodeResult(goal_id=goal_id, reward=float(reward), success=float(reward) >= 1.0 - 1e-9,
                         steps=len(history), actions=history, errors=errors)


def summarize(results: list[EpisodeResult], seconds: float) -> dict:
    """WebShop's metrics: success rate (0-1) and score (100 x mean reward)."""
    n = len(results)
    steps = sum(r.steps for r in results)
    return {
        "episodes": n,
        "success_rate": sum(r.success for r in results) / n if n else 0.0,
        "score": 100.0 * sum(r.reward for r in results) / n if n else 0.0,
        "mean_steps": steps / n if n else 0.0,
        "steps_per_second": steps / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
    }


@dataclass
class RolloutConfig:
    """Runs N episodes on consecutive goals of a split and reports WebShop's metrics."""

    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    policy: str = field(default="rule", metadata={
        "help": "oracle | rule | random | a local model directory | openai"})
    split: str = field(default="test", metadata={"help": "goal split", "choices": ["train", "test"]})
    episodes: int = field(default=100, metadata={"help": "number of episodes (goals start_goal, start_goal+1, ...)"})
    start_goal: int = field(default=0, metadata={"help": "first goal id"})
    seed: int = field(default=0, metadata={"help": "base seed; episode i uses seed + i"})
    mcts: bool = field(default=False, metadata={"help": "search at inference: run MCTS before each step"})
    simulations: int = field(default=10, metadata={"help": "MCTS simulations per step (with --mcts)"})
    critic: str = field(default="lexical", metadata={"help": "critic for MCTS: none | lexical | self"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server URL (policy openai)"})
    model_name: str | None = field(default=None, metadata={"help": "model name on the server (policy openai)"})
    data_dir: str | None = field(default=None, metadata={"help": "directory with the original WebShop files"})
    goals: str = field(default="synthetic", metadata={
        "help": "goal set with --data-dir", "choices": ["synthetic", "human"]})
    num_products: int | None = field(default=None, metadata={
        "help": "catalog size (default: 1000 synthetic products, or all products with --data-dir)"})
    json: str | None = field(default=None, metadata={"help": "write the summary JSON here"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError("--episodes must be at least 1")
        if self.simulations < 1:
            raise ValueError("--simulations must be at least 1")
        if self.policy == "openai" and not (self.base_url and self.model_name):
            raise ValueError("--policy openai needs --base-url and --model-name")


def make_actor(env, cfg: RolloutConfig) -> Callable[[StepContext], str]:
    """The function that picks each action: the policy greedily, or MCTS over it."""
    from webgrove.agents.specs import make_critic, make_policy

    policy = make_policy(cfg.policy, env=env, base_url=cfg.base_url, model_name=cfg.model_name)
    rng = np.random.default_rng(cfg.seed)
    if cfg.mcts:
        from webgrove.search.inference import MCTSAgent
        from webgrove.search.mcts import SearchConfig

        critic = make_critic(cfg.critic, policy=policy)
        agent = MCTSAgent(env, policy, critic, SearchConfig(simulations=cfg.simulations, seed=cfg.seed))
        return agent.act
    if hasattr(policy, "act"):
        return lambda ctx: policy.act(ctx, rng)
    return lambda ctx: policy.propose(ctx, 1, rng)[0].action


def run_rollout(cfg: RolloutConfig) -> dict:
    from tqdm import tqdm

    env = make_env(cfg.env, split=cfg.split, data_dir=cfg.data_dir, goals=cfg.goals,
                   num_products=cfg.num_products)
    try:
        act = make_actor(env, cfg)
        results = []
        start = time.perf_counter()
        goal_ids = range(cfg.start_goal, cfg.start_goal + cfg.episodes)
        bar = tqdm(goal_ids, desc=f"rollout {cfg.policy}", disable=not cfg.progress, unit="ep")
        for i, goal_id in enumerate(bar):
            results.append(run_episode(env, act, goal_id=goal_id, seed=cfg.seed + i))
            bar.set_postfix(success=f"{sum(r.success for r in results) / len(results):.2f}")
        summary = summarize(results, time.perf_counter() - start)
    finally:
        env.close()
    summary.update(env=cfg.env, policy=cfg.policy, split=cfg.split, mcts=cfg.mcts,
                   simulations=cfg.simulations if cfg.mcts else 0,
                   critic=cfg.critic if cfg.mcts else None,
                   rewards=[r.reward for r in results])
    print(f"{cfg.policy}{' + MCTS' if cfg.mcts else ''} on {cfg.env} ({cfg.split}, {summary['episodes']} episodes): "
          f"success rate {summary['success_rate']:.3f}, score {summary['score']:.1f}, "
          f"{summary['steps_per_second']:.0f} steps/s")
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(dict(summary, config=asdict(cfg)), indent=2))
    return summary
