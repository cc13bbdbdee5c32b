"""webgrove/miniwob.<task>-v0 in real headless Chromium: ids, solutions, determinism, faults."""
import gymnasium as gym
import psutil
import pytest
from gymnasium.envs.registration import registry
from gymnasium.utils.env_checker import check_env

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.envs.browser.axtree import find_ref
from webgrove.envs.browser.chromium import BrowserLaunchError, chromium_executable
from webgrove.envs.browser.miniwob import miniwob_html_dir, miniwob_task_names
from webgrove.envs.browser.miniwob_solutions import SOLUTIONS, plan_step_to_action

pytestmark = pytest.mark.browser


def solve(env, obs):
    """Run the scripted plan for the env's task; returns the last step's result."""
    task = env.unwrapped.task.name
    result = None
    for step in SOLUTIONS[task](obs["goal"]):
        result = env.step(plan_step_to_action(step, obs["axtree"]))
        obs, reward, terminated, truncated, info = result
        assert info["error"] is None, info["error"]
    return result


def test_every_task_page_of_the_package_has_an_id():
    html = miniwob_html_dir()
    pages = {p.stem for p in (html / "miniwob").glob("*.html")}
    assert len(pages) >= 100
    names = set(miniwob_task_names())
    assert pages <= names
    assert {"flight.AA", "flight.Alaska"} <= names
    for name in names:
        spec = registry[f"webgrove/miniwob.{name}-v0"]
        assert spec.entry_point == "webgrove.envs.browser.registry:make_browser_env"
        assert spec.kwargs == {"task_entry_point": "webgrove.envs.browser.miniwob:MiniWoBTask",
                               "task_name": name}


@pytest.mark.slow
def test_every_id_makes_and_resets(chromium):
    failures = {}
    for name in miniwob_task_names():
        env = gym.make(f"webgrove/miniwob.{name}-v0", browser=chromium)
        try:
            obs, info = env.reset(seed=0)
            if not (obs["goal"] and obs["axtree"] and env.observation_space.contains(obs)):
                failures[name] = f"empty observation: {obs}"
            elif info["error"] is not None:
                failures[name] = info["error"]
        except Exception as e:  # collect them all, then report
            failures[name] = repr(e)
        finally:
            env.close()
    assert not failures, failures


@pytest.mark.parametrize("task", sorted(SOLUTIONS))
def test_scripted_solutions_reach_reward_one(chromium, task):
    with gym.make(f"webgrove/miniwob.{task}-v0", browser=chromium) as env:
        for seed in (0, 1):
            obs, info = env.reset(seed=seed)
            assert obs["goal"] and info["goal"] == obs["goal"]
            obs, reward, terminated, truncated, info = solve(env, obs)
            assert (reward, terminated, truncated) == (1.0, True, False)
            assert info["reward_info"]["raw_reward"] == 1.0


def test_a_wrong_answer_gets_negative_reward(chromium):
    with gym.make("webgrove/miniwob.enter-text-v0", browser=chromium) as env:
        obs, _ = env.reset(seed=0)
        env.step(f"type [{find_ref(obs['axtree'], 'textbox')}] [surely not the word]")
        _, reward, terminated, _, _ = env.step(f"click [{find_ref(obs['axtree'], 'button', 'Submit')}]")
        assert terminated and reward == -1.0


def test_same_seed_same_page_and_different_seeds_differ(chromium):
    with gym.make("webgrove/miniwob.click-checkboxes-v0", browser=chromium) as env:
        a, _ = env.reset(seed=7)
        b, _ = env.reset(seed=7)
        c, _ = env.reset(seed=8)
        assert a == b
        assert a["goal"] != c["goal"] or a["axtree"] != c["axtree"]
        # The episode timer is off: the page does not change by itself.
        env.unwrapped.page.wait_for_timeout(1100)
        assert env.unwrapped.observe()[0] == c


def test_in_page_time_limit_when_asked(chromium):
    with gym.make("webgrove/miniwob.click-test-v0", browser=chromium, episode_time_limit_s=0.3) as env:
        env.reset(seed=0)
        env.unwrapped.page.wait_for_timeout(600)
        _, reward, terminated, _, info = env.step("scroll [down]")
        assert terminated and reward == -1.0 and info["reward_info"]["reason"] == "timed out"


def test_check_env_passes(chromium):
    env = gym.make("webgrove/miniwob.enter-text-v0", browser=chromium)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_get_state_set_state_replays_a_miniwob_episode(chromium):
    with gym.make("webgrove/miniwob.click-checkboxes-v0", browser=chromium) as env:
        obs, _ = env.reset(seed=11)
        plan = SOLUTIONS["click-checkboxes"](obs["goal"])
        obs, *_ = env.step(plan_step_to_action(plan[0], obs["axtree"]))
        state = env.unwrapped.get_state()
        env.reset(seed=12)
        env.unwrapped.set_state(state)
        restored, info = env.unwrapped.observe()
        assert restored == obs
        for step in plan[1:]:
            restored, reward, terminated, *_ = env.step(plan_step_to_action(step, restored["axtree"]))
        assert (reward, terminated) == (1.0, True)


def test_flight_task_loads_over_local_http(chromium):
    with gym.make("webgrove/miniwob.flight.AA-v0", browser=chromium) as env:
        obs, info = env.reset(seed=0)
        assert obs["url"].startswith("http://127.0.0.1:")
        assert obs["goal"].startswith("{")  # FlightWoB goals are JSON field lists
        assert "[ref=f" in obs["axtree"]  # the form lives in an iframe
        assert info["available_actions"]


def test_killed_browser_truncates_the_episode_and_is_relaunched(chromium):  # own browser (the fixture checks one is installed)
    with gym.make("webgrove/miniwob.click-test-v0") as env:
        obs, _ = env.reset(seed=0)
        browser = env.unwrapped.browser
        old_pid = browser.pid
        browser.kill()
        obs, reward, terminated, truncated, info = env.step("click [e5]")
        assert truncated and not terminated and reward == 0.0
        assert "crashed or was killed" in info["error"]
        assert env.observation_space.contains(obs)
        obs, info = env.reset(seed=0)
        assert info["error"] is None and browser.pid != old_pid and browser.launches == 2
        _, reward, terminated, _, _ = solve(env, obs)
        assert (reward, terminated) == (1.0, True)


def test_browser_launch_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("WEBGROVE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(BrowserLaunchError, match="apt-get install chromium"):
        chromium_executable()
    not_a_browser = tmp_path / "chromium"
    not_a_browser.write_text("#!/bin/sh\nexit 1\n")
    not_a_browser.chmod(0o755)
    monkeypatch.setenv("WEBGROVE_CHROMIUM", str(not_a_browser))
    with pytest.raises(BrowserLaunchError, match="could not launch Chromium.*apt-get install chromium"):
        with gym.make("webgrove/miniwob.click-test-v0", navigation_timeout_s=5) as env:
            env.reset(seed=0)


@pytest.mark.slow
def test_async_vector_env_with_four_browser_envs(chromium):
    envs_ = gym.vector.AsyncVectorEnv(
        [lambda: gym.make("webgrove/miniwob.click-test-v0")] * 4, shared_memory=False)
    try:
        obs, infos = envs_.reset(seed=[0, 1, 2, 3])
        assert len(obs["axtree"]) == 4 and all('button "Click Me!"' in t for t in obs["axtree"])
        actions = [plan_step_to_action(SOLUTIONS["click-test"](g)[0], t)
                   for g, t in zip(obs["goal"], obs["axtree"])]
        obs, rewards, terminated, truncated, infos = envs_.step(actions)
        assert list(rewards) == [1.0] * 4 and all(terminated)
        pids = envs_.get_attr("browser_pid")
        assert len(set(pids)) == 4 and all(psutil.pid_exists(p) for p in pids)
    finally:
        envs_.close()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids)
