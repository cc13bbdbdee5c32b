"""The shop text env: pages, actions, errors, snapshots, determinism."""
import pickle

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import webgrove.envs  # noqa: F401
from webgrove.agents.scripted import OraclePolicy
from webgrove.envs.shop.engine import SEARCH_ACTION
from webgrove.agents.episode import run_episode


@pytest.fixture(scope="module")
def env():
    e = gym.make("webgrove/WebShop-v0", split="test")
    yield e
    e.close()


def _goto_item(env, goal_id=0):
    """Search the target's title and open the target's page."""
    obs, info = env.reset(seed=0, options={"goal_id": goal_id})
    goal = env.unwrapped.goal
    title = env.unwrapped.catalog.product(goal.asin).title
    obs, _, _, _, info = env.step(f"search[{title}]")
    assert f"click[{goal.asin.lower()}]" in info["available_actions"], "target not on page 1 for its own title"
    obs, _, _, _, info = env.step(f"click[{goal.asin.lower()}]")
    return obs, info


def test_reset_shows_search_page(env):
    obs, info = env.reset(seed=0, options={"goal_id": 3})
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] ")
    assert obs.endswith(" [SEP] Search")
    assert info["goal"] == env.unwrapped.goal.instruction
    assert info["goal"] in obs
    assert info["available_actions"] == [SEARCH_ACTION]
    assert info["error"] is None and info["goal_id"] == 3


def test_same_seed_same_goal_and_goal_id_option(env):
    a, _ = env.reset(seed=123)
    b, _ = env.reset(seed=123)
    assert a == b
    goals = {env.reset(seed=s)[1]["goal_id"] for s in range(20)}
    assert len(goals) > 1  # the seed picks the goal
    with pytest.raises(ValueError, match="out of range"):
        env.reset(seed=0, options={"goal_id": 10**6})


def test_results_page_lists_ten_products_and_paging(env):
    env.reset(seed=0, options={"goal_id": 0})
    obs, r, term, trunc, info = env.step("search[shampoo]")
    assert r == 0 and not term
    assert "Page 1 (Total results: " in obs
    products = [a for a in info["available_actions"] if a.startswith("click[b0")]
    assert len(products) == 10
    assert "click[next >]" in info["available_actions"] and "click[< prev]" not in info["available_actions"]
    obs2, *_, info2 = env.step("Click[Next >]")  # case-insensitive
    assert "Page 2 " in obs2 and "click[< prev]" in info2["available_actions"]
    obs3, *_ = env.step("click[< prev]")
    assert obs3 == obs


def test_item_page_options_subpages_and_buy(env):
    obs, info = _goto_item(env, goal_id=1)
    goal = env.unwrapped.goal
    product = env.unwrapped.catalog.product(goal.asin)
    for label in ("click[back to search]", "click[< prev]", "click[description]", "click[features]",
                  "click[reviews]", "click[attributes]", "click[buy now]"):
        assert label in info["available_actions"]
    assert product.title in obs and "Price: $" in obs
    sub_obs, *_, sub_info = env.step("click[features]")
    assert product.bullet_points[0] in sub_obs
    assert sub_info["available_actions"] == ["click[back to search]", "click[< prev]"]
    env.step("click[< prev]")
    for value in goal.goal_options.values():
        _, _, _, _, info = env.step(f"click[{value}]")
        assert info["error"] is None
    rich = env.unwrapped.observation_mode
    assert rich == "text"
    obs, reward, terminated, truncated, info = env.step("click[buy now]")
    assert terminated and not truncated
    assert reward == pytest.approx(1.0)
    assert info["reward_info"]["reward"] == pytest.approx(1.0)
    assert obs.startswith("Thank you for shopping with us!")
    _, r2, term2, _, info2 = env.step("click[buy now]")
    assert term2 and r2 == 0 and "over" in info2["error"]


@pytest.mark.parametrize("action, fragment", [
    ("click[buy now]", "search page"),
    ("search[]", "needs a query"),
    ("jump[3]", "cannot parse"),
    ("", "cannot parse"),
])
def test_invalid_actions_are_noops_with_error(env, action, fragment):
    obs, _ = env.reset(seed=0, options={"goal_id": 2})
    before = env.unwrapped.get_state()
    obs2, reward, term, trunc, info = env.step(action)
    assert fragment in info["error"]
    assert obs2 == obs and reward == 0 and not term and not trunc
    assert env.unwrapped.get_state() == before


def test_search_only_on_search_page(env):
    env.reset(seed=0, options={"goal_id": 2})
    env.step("search[chair]")
    _, _, _, _, info = env.step("search[table]")
    assert "no search bar" in info["error"]
    _, _, _, _, info = env.step("click[nonexistent]")
    assert "no clickable" in info["error"]


def test_get_set_state_round_trip_mid_episode(env):
    _goto_item(env, goal_id=4)
    goal = env.unwrapped.goal
    snap = env.unwrapped.get_state()
    snap = pickle.loads(pickle.dumps(snap))
    obs_before, info_before = env.unwrapped.observe()
    env.step("click[buy now]")
    env.unwrapped.set_state(snap)
    obs_after, info_after = env.unwrapped.observe()
    assert obs_after == obs_before and info_after == info_before
    # Restored state continues identically.
    for value in goal.goal_options.values():
        env.step(f"click[{value}]")
    _, reward, terminated, _, _ = env.step("click[buy now]")
    assert terminated and reward == pytest.approx(1.0)


def test_observation_modes_share_one_renderer():
    envs_ = {m: gym.make("webgrove/WebShop-v0", split="test", observation_mode=m)
             for m in ("text", "text_rich", "html")}
    obs = {}
    for mode, e in envs_.items():
        e.reset(seed=0, options={"goal_id": 5})
        e.step("search[coffee]")
        obs[mode], *_ = e.step("click[back to search]")
        e.reset(seed=0, options={"goal_id": 5})
        obs[mode], *_ = e.step("search[coffee]")
    assert "[button] Next > [button_]" in obs["text_rich"]
    assert obs["html"].startswith("<!doctype html>") and "Next &gt;" in obs["html"]
    # Every product id on the text page is a link on the html page.
    for token in obs["text"].split(" [SEP] "):
        if token.startswith("B0") and len(token) == 10:
            assert f">{token}</a>" in obs["html"]
    for e in envs_.values():
        e.close()


def test_selected_option_marked_in_text_rich():
    e = gym.make("webgrove/WebShop-v0", split="test", observation_mode="text_rich")
    goal_id = next(i for i, g in enumerate(e.unwrapped.goals) if g.goal_options)
    _goto_item(e, goal_id=goal_id)
    goal = e.unwrapped.goal
    value = next(iter(goal.goal_options.values()))
    obs, *_ = e.step(f"click[{value}]")
    assert f"[clicked button] {value} [clicked button_]" in obs


def test_time_limit_truncates_at_15_steps(env):
    env.reset(seed=0, options={"goal_id": 0})
    for i in range(15):
        _, _, term, trunc, _ = env.step("click[nothing]")
    assert trunc and not term


def test_oracle_reaches_reward_one_on_a_few_goals(env):
    oracle = OraclePolicy(env)
    for goal_id in range(10):
        result = run_episode(env, oracle.act, goal_id=goal_id, seed=0)
        assert result.reward == pytest.approx(1.0), (goal_id, result.actions)


_ACTION_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(lambda v, a: f"{v}[{a}]", st.sampled_from(["search", "click", "Click", "SEARCH", "buy", ""]),
              st.text(max_size=30)),
    st.sampled_from(["click[next >]", "click[< prev]", "click[back to search]", "click[buy now]",
                     "click[description]", "search[shampoo]", "click[]", "click[[x]]", "search[[]"]),
)


@settings(max_examples=300, deadline=None)
@given(actions=st.lists(_ACTION_TEXT, min_size=1, max_size=8), goal_id=st.integers(0, 20))
def test_fuzzed_actions_never_raise_or_corrupt_state(actions, goal_id):
    env = _FUZZ_ENV
    obs, info = env.reset(seed=0, options={"goal_id": goal_id})
    for action in actions:
        before = env.get_state()
        obs_before, _ = env.observe()
        obs, reward, term, trunc, info = env.step(action)
        assert isinstance(obs, str) and 0.0 <= reward <= 1.0
        if info["error"] is not None:
            assert env.get_state() == before and obs == obs_before
        else:
            # a valid action leads to a state the env can render and restore
            snap = env.get_state()
            env.set_state(snap)
            assert env.observe()[0] == obs
        if term:
            break


_FUZZ_ENV = gym.make("webgrove/WebShop-v0", split="test").unwrapped


def test_get_state_is_small():
    env = gym.make("webgrove/WebShop-v0", split="test")
    _goto_item(env, goal_id=0)
    assert len(pickle.dumps(env.unwrapped.get_state())) < 1000


@pytest.mark.parametrize("goal_id", [1.7, "1", True, -1, 10**9])
def test_a_bad_goal_id_is_refused_at_reset(goal_id):
    env = gym.make("webgrove/WebShop-v0", split="test")
    with pytest.raises(ValueError, match="goal_id"):
        env.reset(options={"goal_id": goal_id})
    assert env.reset(options={"goal_id": np.int64(1)})[1]["goal_id"] == 1
