"""Reliability: fuzzed action strings on every text-mode env and a sample of browser envs.

Whatever string an agent sends, a step never raises: a valid action moves the episode, an
invalid one is a no-op that sets `info["error"]` and leaves the state (text envs:
`env.unwrapped.get_state()`; browser envs: url and accessibility tree) as it was.
"""
from __future__ import annotations

import math

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.envs.multi_attempt import make_multi_attempt

TEXT_EXAMPLES = 200  # per text-mode env
BROWSER_EXAMPLES = 25  # per browser env: one Chromium page each, so kept small
BROWSER_IDS = ("webgrove/miniwob.click-test-v0", "webgrove/WebShopBrowser-v0", "webgrove/Booking-v0")

_ODD_UNICODE = st.text(st.characters(codec=None, categories=("Cc", "Cf", "Co", "Mn", "Zl", "Zp", "So", "Lo")),
                       max_size=20)
_VERBS = st.sampled_from(["search", "click", "Click", "SEARCH", "type", "goto", "press", "select", "stop",
                          "back", "scroll", "buy", ""])
_NEAR_MISS = st.one_of(
    st.builds(lambda v, a: f"{v}[{a}", _VERBS, _ODD_UNICODE),          # unclosed bracket
    st.builds(lambda v, a: f"{v}[{a}]", _VERBS, _ODD_UNICODE),         # odd unicode argument
    st.builds(lambda v, a: f"{v} [{a}]]", _VERBS, st.text(max_size=12)),  # extra bracket
    st.builds(lambda v, a: f"{v}\x00[{a}]\n\r", _VERBS, st.text(max_size=12)),  # control characters
    st.builds(lambda v, r: f"{v} [e{r}]", _VERBS, st.integers(-5, 10**12)),  # browser refs, mostly absent
    st.sampled_from(["click[", "search[", "click[]", "search[]", "[[]]", "]", "click[[x]]", "search[[]",
                     "click[back to search]", "click[next >]", "click[< prev]", "click[buy now]",
                     "search[shampoo]", "scroll [down]", "back", "press [Tab]", "goto [file:///etc/passwd]",
                     "goto [http://example.com/]", "stop", "stop [answer]"]),
)
_LONG = st.builds(lambda ch, n, v: f"{v}[{ch * n}]", st.characters(), st.integers(4000, 120_000), _VERBS)
ACTIONS = st.one_of(st.text(max_size=60), _NEAR_MISS, _LONG)


# -- text envs ------------------------------------------------------------------

def _shop():
    return gym.make("webgrove/WebShop-v0", split="test")


def _multi_attempt():
    return make_multi_attempt("webgrove/WebShop-v0", attempts=3, feedback="components", split="test")


def _attempts_id():
    return gym.make("webgrove/WebShop-Attempts-v0", attempts=3, feedback="score", split="test")


TEXT_ENVS = {"webgrove/WebShop-v0": _shop, "multi_attempt(webgrove/WebShop-v0)": _multi_attempt,
             "webgrove/WebShop-Attempts-v0": _attempts_id}


@pytest.fixture(scope="module", params=list(TEXT_ENVS))
def text_env(request):
    env = TEXT_ENVS[request.param]()
    yield env
    env.close()


def test_every_registered_text_id_is_fuzzed():
    browser_free = [i for i in gym.registry if i.startswith("webgrove/") and "Browser" not in i
                    and not i.startswith("webgrove/miniwob.") and i != "webgrove/Booking-v0"]
    assert sorted(browser_free) == sorted(i for i in TEXT_ENVS if i.startswith("webgrove/"))  # a new text id must join TEXT_ENVS


@settings(max_examples=TEXT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=8), goal_id=st.integers(0, 499))
def test_text_env_fuzzed_actions_are_steps_or_no_ops(text_env, actions, goal_id):
    text_env.reset(seed=goal_id, options={"goal_id": goal_id})
    for action in actions:
        before = text_env.unwrapped.get_state()
        obs_before, _ = text_env.unwrapped.observe()
        obs, reward, term, trunc, info = text_env.step(action)
        assert isinstance(obs, str) and math.isfinite(reward) and 0.0 <= reward <= 1.0
        assert "error" in info
        if term or trunc:
            break
        if "attempt_ended" in info:  # the wrapper restarted the goal: a new attempt's first page
            continue
        if info["error"] is not None:
            assert isinstance(info["error"], str) and info["error"]
            assert text_env.unwrapped.get_state() == before and obs == obs_before


# -- browser envs ---------------------------------------------------------------

@pytest.fixture(scope="module", params=BROWSER_IDS)
def browser_env(request, chromium):
    env = gym.make(request.param, browser=chromium)
    yield env
    env.close()


def _page(obs: dict) -> tuple[str, str]:
    return obs["url"], obs["axtree"]


@pytest.mark.browser
@settings(max_examples=BROWSER_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=3))
def test_browser_env_fuzzed_actions_are_steps_or_no_ops(browser_env, actions):
    obs, info = browser_env.reset(seed=0)
    for action in actions:
        before = _page(obs)
        obs, reward, term, trunc, info = browser_env.step(action)
        assert isinstance(obs, dict) and math.isfinite(reward)
        assert not trunc or browser_env.unwrapped._crash is None, info["error"]  # a fuzzed string never crashes it
        if term or trunc:
            break
        if info["error"] is not None:
            assert isinstance(info["error"], str) and info["error"]
            assert _page(obs) == before, (action, info["error"])
