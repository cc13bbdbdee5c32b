"""webgrove/WebShopBrowser-v0 in real headless Chromium: parity with webgrove/WebShop-v0."""
from urllib.parse import parse_qsl, urlsplit

import gymnasium as gym
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.agents.base import StepContext
from webgrove.agents.scripted import OraclePolicy, RulePolicy
from webgrove.envs.browser.env import StateDivergedError
from webgrove.envs.browser.shop import text_action_to_browser
from webgrove.envs.shop.pages import url_to_state
from webgrove.envs.shop.server import ShopServer

pytestmark = pytest.mark.browser
PARITY_GOALS = range(20)


@pytest.fixture(scope="module")
def pair(chromium):
    text = gym.make("webgrove/WebShop-v0", split="test")
    browser = gym.make("webgrove/WebShopBrowser-v0", split="test", browser=chromium)
    yield text, browser
    text.close()
    browser.close()


def lockstep(text, browser, policy, goal_id):
    """Drive both envs with the policy's text actions; check they stay on the same page."""
    tobs, tinfo = text.reset(options={"goal_id": goal_id})
    bobs, binfo = browser.reset(options={"goal_id": goal_id})
    assert bobs["goal"] == tinfo["goal"]
    history = []
    for _ in range(20):
        action = policy.act(StepContext(tinfo["goal"], tobs, tinfo["available_actions"], history))
        history.append(action)
        tobs, treward, tterm, ttrunc, tinfo = text.step(action)
        bobs, breward, bterm, btrunc, binfo = browser.step(text_action_to_browser(action, bobs["axtree"]))
        assert binfo["error"] is None, binfo["error"]
        url = urlsplit(bobs["url"])
        shown = url_to_state(text.unwrapped.engine, url.path, dict(parse_qsl(url.query)))
        assert shown == text.unwrapped.state, action
        assert (breward, bterm, btrunc) == (treward, tterm, ttrunc), action
        if tterm or ttrunc:
            return treward, breward, tinfo, binfo
    raise AssertionError("episode did not end")


def test_oracle_earns_the_same_rewards_on_20_test_goals(pair):
    text, browser = pair
    oracle = OraclePolicy(text)
    rewards = []
    for goal_id in PARITY_GOALS:
        treward, breward, tinfo, binfo = lockstep(text, browser, oracle, goal_id)
        assert breward == treward, goal_id
        assert binfo["reward_info"] == tinfo["reward_info"]
        rewards.append(breward)
    assert sum(r == 1.0 for r in rewards) >= 15  # the oracle mostly succeeds


def test_rule_policy_earns_the_same_partial_rewards(pair):
    text, browser = pair
    rule = RulePolicy()
    for goal_id in (20, 21, 22):
        treward, breward, *_ = lockstep(text, browser, rule, goal_id)
        assert breward == treward


def test_same_seed_picks_the_same_goal_as_the_text_env(pair):
    text, browser = pair
    for seed in (0, 1, 2):
        _, tinfo = text.reset(seed=seed)
        bobs, _ = browser.reset(seed=seed)
        assert bobs["goal"] == tinfo["goal"]
        assert browser.unwrapped.task.goal is text.unwrapped.goal


def test_restore_by_replay_on_the_shop(pair):
    text, browser = pair
    env = browser.unwrapped
    bobs, _ = browser.reset(options={"goal_id": 5})
    goal = env.task.goal
    bobs, *_ = browser.step(text_action_to_browser(f"search[{goal.instruction}]", bobs["axtree"]))
    bobs, *_ = browser.step(text_action_to_browser(f"click[{goal.asin}]", bobs["axtree"]))
    state = env.get_state()
    browser.step(text_action_to_browser("click[< prev]", bobs["axtree"]))
    env.set_state(state)
    obs, info = env.observe()
    assert obs == bobs
    obs, reward, terminated, *_ = browser.step(text_action_to_browser("click[buy now]", obs["axtree"]))
    assert terminated and 0 < reward <= 1
    tampered = type(state)(state.seed, {"goal_id": 6}, state.actions, state.axtree)
    with pytest.raises(StateDivergedError):
        env.set_state(tampered)


def test_restore_by_fork_on_the_shop(pair, monkeypatch):
    """snapshot -> act -> restore -> the same observation, at several depths, by one
    navigation (replay is switched off), the purchase included."""
    text, browser = pair
    env = browser.unwrapped
    obs, _ = browser.reset(options={"goal_id": 3})
    goal = env.task.goal
    plan = [f"search[{goal.instruction}]", f"click[{goal.asin}]", "click[description]", "click[< prev]", "click[buy now]"]
    saved = []
    for action in plan:
        saved.append((env.get_state(), obs))
        obs, reward, terminated, _, info = browser.step(text_action_to_browser(action, obs["axtree"]))
        assert info["error"] is None, info["error"]
    assert terminated and reward > 0
    saved.append((env.get_state(), obs))

    def no_replay(action):
        raise AssertionError(f"replayed {action!r}: the fork was not used")

    monkeypatch.setattr(env, "_apply", no_replay)
    for state, seen in reversed(saved):
        assert state.fork is not None
        env.set_state(state)
        restored, info = env.observe()
        assert restored == seen
        assert env._terminated == (state is saved[-1][0])
    assert env.task.validate(env.page, None)[0] == 0.0  # the first state: nothing bought yet


def test_envs_share_one_server_with_separate_sessions(chromium):
    from webgrove.envs.shop.engine import get_engine

    with ShopServer(get_engine(), split="test") as server:
        a = gym.make("webgrove/WebShopBrowser-v0", split="test", server=server, browser=chromium)
        b = gym.make("webgrove/WebShopBrowser-v0", split="test", server=server, browser=chromium)
        try:
            oa, _ = a.reset(options={"goal_id": 0})
            ob, _ = b.reset(options={"goal_id": 1})
            assert oa["goal"] != ob["goal"] and oa["url"] == ob["url"] == server.url
            goal = a.unwrapped.task.goal
            for action in (f"search[{goal.instruction}]", f"click[{goal.asin}]", "click[buy now]"):
                oa, reward, terminated, *_ = a.step(text_action_to_browser(action, oa["axtree"]))
            assert terminated
            _, reward_b, terminated_b, *_ = b.step("scroll [down]")
            assert (reward_b, terminated_b) == (0.0, False)
        finally:
            a.close()
            b.close()
        with pytest.raises(ValueError, match="split"):
            gym.make("webgrove/WebShopBrowser-v0", split="train", server=server)


def test_text_action_mapping_errors():
    tree = '- textbox "Search query" [ref=e8]\n- link "Next >" [ref=e9]'
    assert text_action_to_browser("search[red  shoes ]", tree) == "type [e8] [red  shoes] [enter]"
    assert text_action_to_browser("click[NEXT >]", tree) == "click [e9]"
    with pytest.raises(LookupError):
        text_action_to_browser("click[buy now]", tree)
    with pytest.raises(ValueError):
        text_action_to_browser("buy it", tree)


def test_scripted_policies_drive_the_browser_shop_with_text_actions(chromium):
    """No translation by the caller: the env lists and takes the text env's actions."""
    from webgrove.agents.base import context_from

    with gym.make("webgrove/WebShopBrowser-v0", split="test", browser=chromium) as env:
        oracle = OraclePolicy(env)
        rewards = []
        for goal_id in range(3):
            obs, info = env.reset(options={"goal_id": goal_id})
            assert info["available_actions"] == ["search[...]"]
            history, terminated, truncated, reward = [], False, False, 0.0
            while not (terminated or truncated):
                action = oracle.act(context_from(obs, info, history))
                history.append(action)
                obs, reward, terminated, truncated, info = env.step(action)
                assert info["error"] is None, (action, info["error"])
            rewards.append(reward)
        assert rewards == [1.0, 1.0, 1.0]


def test_a_text_action_naming_nothing_on_the_page_is_a_noop(chromium):
    with gym.make("webgrove/WebShopBrowser-v0", split="test", browser=chromium,
                  available_actions="refs") as env:
        obs, info = env.reset(options={"goal_id": 0})
        assert all(a.startswith("e") for a in info["available_actions"])
        obs2, reward, terminated, truncated, info = env.step("click[buy now]")
        assert "no link or button 'buy now'" in info["error"]
        assert obs2["url"] == obs["url"] and not terminated


@pytest.mark.parametrize("goal_id", [1.7, "1", True, -1, 10**9])
def test_a_bad_goal_id_is_refused_at_reset(goal_id, chromium):
    with gym.make("webgrove/WebShopBrowser-v0", split="test", browser=chromium) as env:
        with pytest.raises(ValueError, match="goal_id"):
            env.reset(options={"goal_id": goal_id})


def test_webgrove_rollout_with_the_oracle_on_the_browser_shop(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "oracle.json"
    subprocess.run([sys.executable, "-m", "webgrove", "rollout", "--env", "webgrove/WebShopBrowser-v0",
                    "--policy", "oracle", "--split", "test", "--episodes", "2", "--json", str(out)],
                   check=True, timeout=300, capture_output=True)
    summary = json.loads(out.read_text())
    assert summary["success_rate"] == 1.0
