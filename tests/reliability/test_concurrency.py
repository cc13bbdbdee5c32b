"""Reliability: two AsyncVectorEnvs of the text shop stepping at the same time give exactly
the results of sequential single-env runs (no state shared across processes or envs)."""
from __future__ import annotations

import threading

import gymnasium as gym
import numpy as np
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)

NUM_ENVS, STEPS = 2, 6
SEEDS = {"a": [3, 4], "b": [10, 11]}


def _policy(step: int, env_index: int, available: list[str]) -> str:
    """A fixed, state-dependent choice (the same for vector and single runs)."""
    clickables = [a for a in available if a.startswith("click[")]
    if "search" in available or not clickables:
        return f"search[item {step} {env_index}]"
    return clickables[(step + env_index) % len(clickables)]


def _sequential(seed: int, env_index: int) -> list[tuple]:
    env = gym.make("webgrove/WebShop-v0", split="test")
    obs, info = env.reset(seed=seed)
    trace = [(obs, 0.0, False, False)]
    for step in range(STEPS):
        obs, reward, term, trunc, info = env.step(_policy(step, env_index, info["available_actions"]))
        trace.append((obs, float(reward), bool(term), bool(trunc)))
        if term or trunc:
            break
    env.close()
    return trace


def _vector(seeds: list[int], out: dict, key: str) -> None:
    envs = gym.vector.AsyncVectorEnv([lambda: gym.make("webgrove/WebShop-v0", split="test")] * NUM_ENVS,
                                     autoreset_mode=gym.vector.AutoresetMode.DISABLED,
                                     shared_memory=False)  # text observations travel by pipe
    try:
        obs, info = envs.reset(seed=seeds)
        traces = [[(obs[i], 0.0, False, False)] for i in range(NUM_ENVS)]
        done = np.zeros(NUM_ENVS, bool)
        for step in range(STEPS):
            actions = tuple(_policy(step, i, list(info["available_actions"][i])) for i in range(NUM_ENVS))
            obs, reward, term, trunc, info = envs.step(actions)
            for i in np.flatnonzero(~done):
                traces[i].append((obs[i], float(reward[i]), bool(term[i]), bool(trunc[i])))
            done |= term | trunc
            if done.all():
                break
        out[key] = traces
    finally:
        envs.close()


def test_two_async_vector_envs_in_parallel_match_sequential_runs():
    results: dict[str, list] = {}
    threads = [threading.Thread(target=_vector, args=(seeds, results, key)) for key, seeds in SEEDS.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["a", "b"]
    for key, seeds in SEEDS.items():
        for i, seed in enumerate(seeds):
            assert len(results[key][i]) > 3 and results[key][i] == _sequential(seed, i), (key, seed)


def test_shared_memory_is_refused_with_a_clear_error():
    """Gymnasium's shared memory would read non-charset characters back as garbage."""
    with pytest.raises(TypeError, match="shared_memory=False"):
        gym.vector.AsyncVectorEnv([lambda: gym.make("webgrove/WebShop-v0", num_products=100)] * 2)
