"""Every registered webgrove id passes Gymnasium's env checker and is deterministic per seed."""
import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import webgrove.envs  # noqa: F401

# Browser ids need Chromium; MiniWoB has ~100 task pages, so a fixed sample of them runs here
# (every MiniWoB id is still made and reset once in tests/envs/test_browser_miniwob.py).
MINIWOB_SAMPLE = ("click-test", "click-button", "enter-text", "click-checkboxes")


def _ids():
    ids = []
    for env_id in sorted(gym.registry):
        if not env_id.startswith("webgrove/"):
            continue
        if env_id.startswith("webgrove/miniwob."):
            task = env_id[len("webgrove/miniwob."):-len("-v0")]
            if task not in MINIWOB_SAMPLE:
                continue
        ids.append(env_id)
    return ids


def _kwargs(env_id):
    if env_id == "webgrove/Browser-v0":
        from webgrove.envs.browser.conformance import conformance_kwargs  # a local page + goal + evaluator
        return conformance_kwargs()
    return {}


def _marks(env_id):
    return [pytest.mark.browser] if env_id != "webgrove/WebShop-v0" else []


@pytest.mark.parametrize("env_id", [pytest.param(i, marks=_marks(i)) for i in _ids()])
def test_check_env_and_same_seed_determinism(env_id):
    env = gym.make(env_id, **_kwargs(env_id))
    try:
        check_env(env.unwrapped, skip_render_check=True)
        first = _rollout(env, seed=7)
        second = _rollout(env, seed=7)
        assert first == second
    finally:
        env.close()


def _rollout(env, seed, steps=4):
    obs, info = env.reset(seed=seed)
    trace = [_comparable(obs), info["goal"]]
    for _ in range(steps):
        actions = info["available_actions"]
        action = _first_action(actions)
        obs, reward, term, trunc, info = env.step(action)
        trace.append((action, _comparable(obs), reward, term, trunc, info.get("error")))
        if term or trunc:
            break
    return trace


def _first_action(actions):
    if not actions:
        return "scroll [down]"
    a = actions[0]
    if a == "search[...]":
        return "search[red]"
    if "[" not in a:  # browser envs list element refs; act on the first one
        return f"click [{a}]"
    return a


def _comparable(obs):
    if isinstance(obs, dict):
        return {k: v for k, v in obs.items() if k != "screenshot"}
    return obs


def test_registered_ids_cover_design():
    ids = set(gym.registry)
    for required in ("webgrove/WebShop-v0", "webgrove/WebShopBrowser-v0", "webgrove/Browser-v0"):
        assert required in ids
    assert any(i.startswith("webgrove/miniwob.") for i in ids)
