"""A tiny deterministic web-like env whose best path is known, and toy agents.

The goal of episode `goal_id` is a sequence of `length` colours (drawn from
`goal_id`). Each step clicks a colour; after `length` clicks the episode ends with
reward = fraction of positions that match the goal, so reward 1 only on the exact
sequence. `click[stop]` ends the episode at once with reward 0. Same contract as the
webgrove envs: `get_state` / `set_state` / `observe`, `info["goal"]`,
`info["available_actions"]`, `info["error"]`.

Importable as `toy_env` (tests/search is on sys.path under pytest, and spawned
workers inherit sys.path), so `gymnasium.make("toy_env:ToyTree-v0")` works there.
"""
from __future__ import annotations

import math
import os
import string
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import register, registry

from webgrove.agents.base import Proposal, StepContext
from webgrove.agents.scripted import ScriptedPolicy

COLOURS = ("red", "green", "blue")
ENV_ID = "ToyTree-v0"


def target_for(goal_id: int, length: int = 3) -> list[str]:
    rng = np.random.default_rng(goal_id)
    return [COLOURS[int(i)] for i in rng.integers(len(COLOURS), size=length)]


def best_actions(goal_id: int, length: int = 3) -> list[str]:
    return [f"click[{c}]" for c in target_for(goal_id, length)]


class ToyEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, split: str = "train", length: int = 3):
        self.split = split
        self.length = length
        self.observation_space = spaces.Text(max_length=10_000, charset=string.printable)
        self.action_space = spaces.Text(max_length=100, charset=string.printable)
        self.goal_id = 0
        self.picks: tuple[str, ...] = ()
        self.done = False
        self.steps = 0  # env.step calls, to check what the search costs

    @property
    def target(self) -> list[str]:
        return target_for(self.goal_id, self.length)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.goal_id = int((options or {}).get("goal_id", 0))
        self.picks, self.done = (), False
        return self.observe()

    def _reward(self) -> float:
        if "stop" in self.picks:
            return 0.0
        return sum(a == b for a, b in zip(self.picks, self.target)) / self.length

    def step(self, action: str):
        self.steps += 1
        error = None
        label = action[6:-1] if action.startswith("click[") and action.endswith("]") else None
        if self.done or label not in (*COLOURS, "stop"):
            error = f"invalid action {action!r}"
        else:
            self.picks = self.picks + (label,)
            self.done = label == "stop" or len(self.picks) == self.length
        reward = self._reward() if self.done and error is None else 0.0
        obs, info = self.observe()
        info["error"] = error
        return obs, reward, self.done, False, info

    def observe(self):
        goal = "pick " + ", then ".join(self.target)
        obs = f"Picked: {', '.join(self.picks) or 'nothing'}"
        actions = [] if self.done else [f"click[{c}]" for c in COLOURS] + ["click[stop]"]
        info = {"goal": goal, "goal_id": self.goal_id, "available_actions": actions, "error": None}
        if self.done:
            info["reward_info"] = {"matched": self._reward()}
        return obs, info

    def get_state(self):
        return (self.goal_id, self.picks, self.done)

    def set_state(self, state) -> None:
        self.goal_id, self.picks, self.done = state


class CrashingToyEnv(ToyEnv):
    """ToyEnv whose "browser" dies in goal 1: its first step ends the episode truncated with a
    crash report (as the browser envs report a dead browser), reward 0."""

    def step(self, action: str):
        if self.goal_id == 1:
            obs, info = self.observe()
            info.update(error="the browser died", reward_info={"error": "the browser died"})
            return obs, 0.0, False, True, info
        return super().step(action)


if ENV_ID not in registry:
    register(id=ENV_ID, entry_point=ToyEnv, max_episode_steps=5)
    register(id="ToyTreeCrash-v0", entry_point=CrashingToyEnv, max_episode_steps=5)


class ToyPolicy(ScriptedPolicy):
    """Clicks uniformly at random; proposes the available actions in an rng-drawn order."""

    name = "toy-random"

    def act(self, ctx: StepContext, rng=None) -> str:
        rng = rng if rng is not None else np.random.default_rng()
        return ctx.available_actions[int(rng.integers(len(ctx.available_actions)))]

    def propose(self, ctx: StepContext, k: int, rng) -> list[Proposal]:
        order = rng.permutation(len(ctx.available_actions))
        lp = -math.log(len(ctx.available_actions))
        return [Proposal(ctx.available_actions[i], lp) for i in order[:k]]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        return [-math.log(len(ctx.available_actions))] * len(actions)


class FixedOrderPolicy(ScriptedPolicy):
    """Proposes the available actions in page order; rolls out with the first one."""

    name = "toy-fixed"

    def act(self, ctx: StepContext, rng=None) -> str:
        return ctx.available_actions[0]

    def propose(self, ctx: StepContext, k: int, rng) -> list[Proposal]:
        return [Proposal(a, math.log(0.25)) for a in ctx.available_actions[:k]]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        return [math.log(0.25)] * len(actions)


class TableCritic:
    """Values actions from a fixed table (default 0)."""

    def __init__(self, table: dict[str, float]):
        self.table = table

    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        return [self.table.get(a, 0.0) for a in actions]


class ConstantCritic:
    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        return [0.5] * len(actions)


class CrashOncePolicy(ToyPolicy):
    """Fails on one goal the first time: raises, or kills its process.

    The failure happens once per marker file: `WEBGROVE_TEST_CRASH` names
    "<goal_id>:<raise|exit>:<marker path>"; the marker is created on the first failure.
    """

    def __init__(self, env):
        self.env = env
        goal, self.mode, marker = os.environ["WEBGROVE_TEST_CRASH"].split(":", 2)
        self.crash_goal, self.marker = int(goal), Path(marker)

    def propose(self, ctx, k, rng):
        if self.env.unwrapped.goal_id == self.crash_goal and not self.marker.exists():
            self.marker.write_text("crashed once")
            if self.mode == "exit":
                os._exit(3)
            raise RuntimeError(f"planned failure on goal {self.crash_goal}")
        return super().propose(ctx, k, rng)


class SlowPolicy(ToyPolicy):
    """ToyPolicy that thinks for `WEBGROVE_TEST_SLOW` seconds (default 0.02) per proposal, so that
    a collection lasts long enough to be interrupted."""

    def propose(self, ctx, k, rng):
        time.sleep(float(os.environ.get("WEBGROVE_TEST_SLOW", "0.02")))
        return super().propose(ctx, k, rng)


# Factories for `webgrove collect --policy toy_env:make_policy --critic toy_env:make_critic`.
def make_policy(env=None):
    return ToyPolicy()


def make_slow_policy(env=None):
    return SlowPolicy()


def make_versioned_policy(env=None):
    return ToyPolicy()


def _version() -> str:
    """The "weights" of the versioned policy: what `WEBGROVE_TEST_POLICY_VERSION` says."""
    return os.environ.get("WEBGROVE_TEST_POLICY_VERSION", "1")


make_versioned_policy.fingerprint = _version


def make_crash_policy(env=None):
    return CrashOncePolicy(env)


def make_critic(policy=None):
    return ConstantCritic()
