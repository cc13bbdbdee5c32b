"""BrowserEnv and webgrove/Browser-v0 in real headless Chromium against a local site."""
import time

import gymnasium as gym
import numpy as np
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.envs.browser.axtree import find_ref
from webgrove.envs.browser.env import BrowserState, StateDivergedError
from webgrove.envs.browser.evaluators import PagePredicate, TextPresent, UrlMatch
from webgrove.envs.browser.static_server import StaticServer

pytestmark = pytest.mark.browser

PAGES = {
    "index.html": """<!DOCTYPE html><html><head><title>Home</title>
<img src="{other}pixel.png" alt=""></head><body>
<h1>Welcome</h1>
<a href="page2.html">Second page</a>
<a href="popup.html" target="_blank">Open a tab</a>
<a href="data.bin" download>Get file</a>
<form action="result.html" method="get">
  <input name="q" aria-label="Search"><button type="submit">Go</button>
</form>
<select aria-label="Size"><option value="s">Small</option><option value="l">Large</option></select>
<button onclick="document.getElementById('out').textContent = 'clicked ' + (++window.n)">Press me</button>
<div id="out">not yet</div>
<button onclick="document.getElementById('out').textContent = Math.random()">Random</button>
<button onclick="while (true) {}">Hang</button>
<div style="height: 3000px"></div><p>Bottom text</p>
<script>window.n = 0;</script>
</body></html>""",
    "page2.html": "<html><body><h1>Second</h1><p>The secret word is persimmon.</p></body></html>",
    "popup.html": "<html><body><h1>A new tab</h1><button>Inside the tab</button></body></html>",
    "result.html": "<html><body><h1>Results</h1><script>document.write('<p>you searched ' + "
                   "new URLSearchParams(location.search).get('q') + '</p>')</script></body></html>",
    "data.bin": "0123456789",
}


@pytest.fixture(scope="module")
def other_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("other")
    (root / "pixel.png").write_bytes(b"not really a png")
    with StaticServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory, other_site):
    root = tmp_path_factory.mktemp("site")
    for name, text in PAGES.items():
        (root / name).write_text(text.replace("{other}", other_site.url))
    with StaticServer(root) as server:
        yield server


def make(site, chromium, **kwargs):
    kwargs.setdefault("goal", "find the secret word")
    return gym.make("webgrove/Browser-v0", start_url=site.url + "index.html",
                    browser=chromium, **kwargs)


def ref(obs, role, name=None):
    found = find_ref(obs["axtree"], role, name)
    assert found is not None, f"no {role} {name!r} in\n{obs['axtree']}"
    return found


def test_reset_observation_and_info(site, chromium):
    with make(site, chromium) as env:
        obs, info = env.reset(seed=0)
        assert set(obs) == {"goal", "url", "axtree"}
        assert obs["goal"] == "find the secret word" == info["goal"]
        assert obs["url"] == site.url + "index.html"
        assert 'heading "Welcome"' in obs["axtree"]
        assert env.observation_space.contains(obs)
        assert ref(obs, "button", "Press me") in info["available_actions"]
        assert ref(obs, "link", "Second page") in info["available_actions"]
        assert info["error"] is None


def test_click_type_select_press_scroll_back(site, chromium):
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(f"click [{ref(obs, 'button', 'Press me')}]")
        assert info["error"] is None and "clicked 1" in obs["axtree"]
        assert (reward, terminated, truncated) == (0.0, False, False)
        timings = info["timings"]
        assert 0 < timings.action_s + timings.validate_s + timings.observe_s <= timings.step_s < 10

        size = ref(obs, "combobox", "Size")
        obs, *_, info = env.step(f"select [{size}] [Large]")
        assert info["error"] is None
        assert env.unwrapped.page.evaluate("document.querySelector('select').value") == "l"
        obs, *_, info = env.step(f"select [{size}] [Huge]")
        assert "no option 'Huge'" in info["error"] and "Small" in info["error"]

        env.step("scroll [down]")
        assert env.unwrapped.page.evaluate("window.scrollY") > 0
        env.step("scroll [up]")
        assert env.unwrapped.page.evaluate("window.scrollY") == 0

        obs, *_, info = env.step(f"type [{ref(obs, 'textbox', 'Search')}] [red shoes] [enter]")
        assert info["error"] is None
        assert obs["url"].startswith(site.url + "result.html?q=red")
        assert "you searched red shoes" in obs["axtree"]
        obs, *_, info = env.step("back")
        assert info["error"] is None and obs["url"] == site.url + "index.html"

        env.reset(seed=0)
        obs, *_, info = env.step("press [Tab]")
        assert info["error"] is None


@pytest.mark.parametrize("action, message", [
    ("clik [e1]", "unknown action"),
    ("click [e9999]", "unknown or stale ref e9999"),
    ("goto [https://example.com/]", "goto refused: https://example.com/ is outside the allowed origins"),
    ("goto [page2.html]", "absolute URL"),
    ("press [NoSuchKey]", "press failed"),
])
def test_invalid_actions_are_noops_with_an_error(site, chromium, action, message):
    with make(site, chromium) as env:
        obs0, _ = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(action)
        assert message in info["error"]
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert obs["url"] == obs0["url"] and obs["axtree"] == obs0["axtree"]


def test_stale_ref_from_an_earlier_page_is_an_error(site, chromium):
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=0)
        press = ref(obs, "button", "Press me")
        obs, *_ = env.step(f"click [{ref(obs, 'link', 'Second page')}]")
        assert obs["url"].endswith("page2.html")
        _, _, _, _, info = env.step(f"click [{press}]")
        assert "stale ref" in info["error"]


def test_off_origin_requests_are_aborted_and_reported(site, chromium, other_site):
    with make(site, chromium) as env:
        _, info = env.reset(seed=0)
        assert info["blocked_requests"] == [other_site.url + "pixel.png"]
    with make(site, chromium, allowed_origins=[site.url, other_site.url]) as env:
        _, info = env.reset(seed=0)
        assert info["blocked_requests"] == []
        _, _, _, _, info = env.step(f"goto [{other_site.url}pixel.png]")
        assert info["error"] is None


def test_new_tabs_are_followed_and_downloads_blocked(site, chromium):
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=0)
        obs, *_, info = env.step(f"click [{ref(obs, 'link', 'Get file')}]")
        assert info["blocked_downloads"] == [site.url + "data.bin"]
        assert obs["url"] == site.url + "index.html"
        obs, *_, info = env.step(f"click [{ref(obs, 'link', 'Open a tab')}]")
        assert info["error"] is None
        assert obs["url"] == site.url + "popup.html"  # followed within the step
        assert 'button "Inside the tab"' in obs["axtree"]
        env.unwrapped.page.close()
        obs, _ = env.unwrapped.observe()
        assert obs["url"] == site.url + "index.html"


@pytest.mark.parametrize("evaluator, actions, expected_reward", [
    (UrlMatch("page2.html", regex=True), ["click:link:Second page"], 1.0),
    (TextPresent("persimmon"), ["click:link:Second page"], 1.0),
    (TextPresent("persimmon", in_answer=True), ["stop [it is Persimmon]"], 1.0),
    (TextPresent("persimmon", in_answer=True), ["stop [a banana]"], 0.0),
    (PagePredicate(lambda page: page.evaluate("window.n") == 1), ["click:button:Press me"], 1.0),
])
def test_evaluators_end_the_episode(site, chromium, evaluator, actions, expected_reward):
    with make(site, chromium, evaluator=evaluator) as env:
        obs, _ = env.reset(seed=0)
        for action in actions:
            if action.startswith("click:"):
                _, role, name = action.split(":")
                action = f"click [{ref(obs, role, name)}]"
            obs, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated
        assert reward == expected_reward
        assert info["reward_info"]["score"] == expected_reward


def test_no_success_means_no_reward_and_episode_goes_on(site, chromium):
    with make(site, chromium, evaluator=UrlMatch(site.url + "page2.html")) as env:
        obs, _ = env.reset(seed=0)
        _, reward, terminated, _, _ = env.step(f"click [{ref(obs, 'button', 'Press me')}]")
        assert (reward, terminated) == (0.0, False)


def test_observation_extras_screenshot_html_dom_text_and_render(site, chromium):
    with make(site, chromium, screenshot=True, html=True, dom_text=True,
              viewport=(640, 400), render_mode="rgb_array") as env:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        shot = obs["screenshot"]
        assert shot.shape == (400, 640, 3) and shot.dtype == np.uint8
        assert shot.min() < 100 < 250 <= shot.max()  # dark text on a white page
        assert "<h1>Welcome</h1>" in obs["html"]
        assert "Welcome" in obs["dom_text"] and "[button] Press me" in obs["dom_text"]
        obs, *_ = env.step(f"type [{ref(obs, 'textbox', 'Search')}] [typed words]")
        assert 'value="typed words"' in obs["html"]
        assert "typed words" in obs["dom_text"]
        assert env.render().shape == (400, 640, 3)


def test_get_state_set_state_and_observe(site, chromium):
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=3)
        press = ref(obs, "button", "Press me")
        env.step(f"click [{press}]")
        obs2, *_ = env.step(f"click [{press}]")
        state = env.unwrapped.get_state()
        assert isinstance(state, BrowserState) and len(state.actions) == 2
        env.step(f"click [{press}]")
        env.step(f"click [{ref(obs, 'link', 'Second page')}]")
        env.unwrapped.set_state(state)
        obs, info = env.unwrapped.observe()
        assert obs == obs2 and "clicked 2" in obs["axtree"]
        _, *_, info = env.step(f"click [{press}]")
        assert "clicked 3" in env.unwrapped.observe()[0]["axtree"]


def test_set_state_detects_a_non_deterministic_page(site, chromium):
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=0)
        env.step(f"click [{ref(obs, 'button', 'Random')}]")
        state = env.unwrapped.get_state()
        with pytest.raises(StateDivergedError, match="not deterministic"):
            env.unwrapped.set_state(state)


def test_a_hung_page_ends_the_episode_and_the_env_recovers(site, chromium):  # chromium: skip without one
    # Own browser: if the page hangs a call that has no timeout, the watchdog kills it.
    with gym.make("webgrove/Browser-v0", start_url=site.url + "index.html", goal="g",
                  action_timeout_s=1.0, navigation_timeout_s=1.0) as env:
        obs, _ = env.reset(seed=0)
        t0 = time.monotonic()
        obs, reward, terminated, truncated, info = env.step(f"click [{ref(obs, 'button', 'Hang')}]")
        assert time.monotonic() - t0 < env.unwrapped.step_deadline_s + 5
        assert truncated and not terminated
        assert "did not respond" in info["error"]
        _, _, _, truncated, info = env.step("scroll [down]")
        assert truncated and "episode is over" in info["error"]
        obs, info = env.reset(seed=0)
        assert 'heading "Welcome"' in obs["axtree"] and info["error"] is None


def test_close_is_safe_twice_and_env_is_a_context_manager(site, chromium):
    env = gym.make("webgrove/Browser-v0", start_url=site.url + "index.html", goal="g")
    env.reset(seed=0)
    browser = env.unwrapped.browser
    assert browser.connected
    env.close()
    env.close()
    assert not browser.connected


def test_start_url_must_be_allowed():
    with pytest.raises(ValueError, match="outside allowed_origins"):
        gym.make("webgrove/Browser-v0", start_url="http://127.0.0.1:1/", goal="g",
                 allowed_origins=["http://127.0.0.1:2"])


def test_resets_reuse_the_tab_and_read_as_a_fresh_one(site, chromium):
    """A reset reuses the context and tab (no new renderer): refs, history, storage and
    cookies read as in a fresh env, and the same seed gives the same observation."""
    with make(site, chromium) as fresh:
        first, _ = fresh.reset(seed=0)
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=0)
        page = env.unwrapped.page
        page.evaluate("() => { localStorage.setItem('k', '1'); sessionStorage.setItem('k', '1');"
                      " document.cookie = 'c=1'; }")
        obs, *_ = env.step(f"click [{ref(obs, 'link', 'Second page')}]")
        obs, *_ = env.step("back")
        obs, *_ = env.step(f"click [{ref(obs, 'button', 'Press me')}]")
        again, _ = env.reset(seed=0)
        assert env.unwrapped.page is page  # the same tab
        assert again == first  # refs counted from the episode's first document
        left = page.evaluate("() => [localStorage.getItem('k'), sessionStorage.getItem('k'), document.cookie]")
        assert left == [None, None, ""]
        _, _, _, _, info = env.step("back")
        assert "no earlier page" in info["error"]
        obs, *_ = env.step(f"click [{ref(again, 'link', 'Second page')}]")
        assert obs["url"].endswith("page2.html") and "[ref=f1e" in obs["axtree"]


def test_a_click_on_a_moving_element_does_not_wait_for_it_to_stop(site, chromium):
    """A click is a mouse click at the element as it is now, as a person's: Playwright's
    wait for a stable box would never end for a button that keeps wiggling."""
    with make(site, chromium) as env:
        obs, _ = env.reset(seed=0)
        env.unwrapped.page.evaluate("""() => {
          const style = document.createElement('style');
          style.textContent = '@keyframes wiggle { from { transform: translateX(0) } to { transform: translateX(3px) } }';
          document.head.append(style);
          const b = document.createElement('button');
          b.textContent = 'Wiggle';
          b.style.animation = 'wiggle 0.2s infinite alternate';
          b.onclick = () => { document.getElementById('out').textContent = 'wiggled'; };
          document.body.prepend(b);
        }""")
        obs, info = env.unwrapped.observe()
        obs, _, _, _, info = env.step(f"click [{ref(obs, 'button', 'Wiggle')}]")
        assert info["error"] is None and "wiggled" in obs["axtree"], info["error"]
        assert info["timings"].action_s < 2.0, info["timings"]
