"""webgrove/Booking-v0 in real headless Chromium: the oracle, forking, bad input."""
import gymnasium as gym
import numpy as np
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.agents.base import context_from
from webgrove.agents.booking_scripted import BookingOraclePolicy, BookingRandomPolicy, BookingRulePolicy
from webgrove.envs.booking.goals import split_goals
from webgrove.envs.browser.axtree import parse_axtree

pytestmark = pytest.mark.browser


def _goal_ids():
    """One goal of each kind, together needing the next month, the alternatives, seating and occasion."""
    goals = split_goals("test")
    pick = [next(g for g in goals if g.kind == "specified" and g.date >= "2026-04" and g.seating and g.request),
            next(g for g in goals if g.kind == "earliest" and g.time != g.search_time and g.occasion),
            next(g for g in goals if g.kind == "best_rated")]
    return [g.goal_id for g in pick]


@pytest.fixture(scope="module")
def env(chromium):
    env = gym.make("webgrove/Booking-v0", split="test", browser=chromium)
    yield env
    env.close()


def run(env, policy, goal_id, states=None, rng=None, max_steps=40):
    """One episode; returns (reward, info, actions, names of the elements acted on)."""
    obs, info = env.reset(options={"goal_id": goal_id})
    history, touched = [], []
    for _ in range(max_steps):
        if states is not None:
            states.append((env.unwrapped.get_state(), obs))
        action = policy.act(context_from(obs, info, history), rng)
        names = {n.ref: f"{n.role} {n.name}" for n in parse_axtree(env.unwrapped.page_axtree) if n.ref}
        touched.append(names.get(action.split("[")[1].split("]")[0], action))
        history.append(action)
        obs, reward, term, trunc, info = env.step(action)
        assert info["error"] is None, (action, info["error"])
        if term or trunc:
            return reward, info, history, touched
    return 0.0, info, history, touched


def test_oracle_books_each_kind_through_every_widget(env):
    oracle = BookingOraclePolicy(env)
    touched = []
    for goal_id in _goal_ids():
        reward, info, _, names = run(env, oracle, goal_id)
        assert reward == 1.0 and info["reward_info"]["success"], (goal_id, info["reward_info"])
        assert info["reward_info"]["bookings"] == 1
        touched += names
    for widget in ("link Accept all cookies", "link No thanks", "button Change date", "link Next month",
                   "combobox Time", "combobox Party size", "combobox Neighbourhood", "textbox Restaurant or cuisine",
                   "button Find a table", "combobox Cuisine", "combobox Sort by", "button Apply filters",
                   "link Continue as guest", "textbox First name", "textbox Phone", "textbox Email",
                   "combobox Occasion", "textbox Special request", "button Continue to review",
                   "button Confirm reservation"):
        assert widget in touched, widget
    assert any(t.startswith("radio ") for t in touched)
    assert any(t.startswith("link ") and t.endswith(" 2026") for t in touched)  # a calendar day


def test_fork_restores_the_same_page_at_several_depths(env):
    u = env.unwrapped
    states = []
    reward, _, actions, _ = run(env, BookingOraclePolicy(env), _goal_ids()[1], states=states)
    assert reward == 1.0
    replays = []
    u._apply = lambda *a, **k: replays.append(a)  # a fork must not replay anything
    try:
        for depth in (0, 3, 9, len(states) - 1):
            state, obs = states[depth]
            assert state.fork is not None
            u.set_state(state)
            assert u.observe()[0] == obs, depth
    finally:
        del u._apply
    assert replays == []
    state, _ = states[9]
    u.set_state(state)
    after, *_ = env.step(actions[9])
    assert after == states[10][1]  # acting after a restore leads where the original went


def test_bad_actions_and_off_site_links_lose_nothing(env):
    oracle = BookingOraclePolicy(env)
    goal_id = _goal_ids()[0]
    obs, info = env.reset(options={"goal_id": goal_id})
    history = []
    base = obs["url"].rstrip("/")
    for step in range(40):
        if step == 6:
            for bad in ("click [e99999]", "type [e1]", "select [e1] [x]", "goto [https://example.com/]",
                        "goto [file:///etc/passwd]", "\x00\x01", "click[No such button]", "type[Find a table][x]", 42, "stop [x"):
                obs, reward, term, trunc, info = env.step(bad)
                assert info["error"] and not (term or trunc) and reward == 0.0, bad
            for url in (f"{base}/etc/passwd", f"{base}/search?date=1999-01-01"):  # the site's error pages
                obs, reward, term, trunc, info = env.step(f"goto [{url}]")
                assert info["error"] is None and "Sorry" in obs["axtree"] and not term
            obs, reward, term, trunc, info = env.step(f"goto [{base}/]")
        action = oracle.act(context_from(obs, info, history))
        history.append(action)
        obs, reward, term, trunc, info = env.step(action)
        if term or trunc:
            break
    assert reward == 1.0 and info["reward_info"]["bookings"] == 1


def test_rule_and_random_baselines_run_and_do_not_succeed(env):
    reward, info, *_ = run(env, BookingRulePolicy(env), 0)
    assert 0.0 < reward < 1.0 and info["reward_info"]["fields"]["name"]
    reward, *_ = run(env, BookingRandomPolicy(env), 1, rng=np.random.default_rng(0), max_steps=8)
    assert reward < 1.0


def test_webgrove_collect_on_booking_writes_trees_of_named_actions(tmp_path):
    """The real command, tiny budget: one goal, two simulations, the random policy and
    the lexical critic; the tree's actions name what they act on."""
    import json
    import subprocess
    import sys

    out = tmp_path / "trees"
    subprocess.run([sys.executable, "-m", "webgrove", "collect", "--env", "webgrove/Booking-v0",
                    "--policy", "random", "--critic", "lexical", "--split", "train", "--goal-range", "0:1",
                    "--simulations", "2", "--k", "3", "--max-depth", "2", "--out", str(out), "--no-progress"],
                   check=True, timeout=300, capture_output=True)
    lines = [json.loads(line) for line in (out / "goal_00000.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "tree" and lines[0]["env_id"] == "webgrove/Booking-v0"
    actions = [n["action"] for n in lines[1:] if n["action"]]
    assert actions and all(a.startswith(("click[", "type[")) for a in actions), actions
    assert json.loads((out / "summary.json").read_text())["trees"] == 1


def test_progress_shaping_pays_each_step_and_leaves_the_outcome_alone(chromium):
    with pytest.raises(ValueError, match="reward_shaping"):
        gym.make("webgrove/Booking-v0", split="test", browser=chromium, reward_shaping="dense")
    env = gym.make("webgrove/Booking-v0", split="test", browser=chromium, reward_shaping="progress")
    try:
        oracle = BookingOraclePolicy(env)
        obs, info = env.reset(options={"goal_id": _goal_ids()[0]})
        rewards, history, states = [], [], []
        while True:
            states.append(env.unwrapped.get_state())
            action = oracle.act(context_from(obs, info, history))
            history.append(action)
            obs, reward, term, trunc, info = env.step(action)
            rewards.append(reward)
            if term or trunc:
                break
        assert rewards[-1] == 1.0 and info["reward_info"]["success"]  # the outcome is the evaluator's
        assert sum(rewards[:-1]) == pytest.approx(1.0)  # from nothing right to every field right
        assert sum(r > 0 for r in rewards[:-1]) >= 8 and min(rewards[:-1]) >= 0.0  # the oracle never undoes
        for i in (5, len(states) - 3):  # a fork carries the progress: the same step pays the same again
            env.unwrapped.set_state(states[i])
            assert env.step(history[i])[1] == pytest.approx(rewards[i])
    finally:
        env.close()


@pytest.mark.slow
def test_improve_with_a_tiny_model_runs_on_booking(tmp_path):
    """`webgrove improve` on Booking-v0 with the tiny model of `webgrove init-model` (1,024
    positions): the compact observation keeps every prompt within the model, so the
    iteration collects trees, builds pairs and trains DPO (no evaluation: the tiny model
    scores every action of a page, 40 steps an episode, minutes on a loaded machine)."""
    import json
    import subprocess
    import sys

    from transformers import AutoTokenizer

    model, out = tmp_path / "tiny", tmp_path / "improve"
    run_cli = [sys.executable, "-m", "webgrove"]
    subprocess.run(run_cli + ["init-model", "--out", str(model), "--size", "tiny"], check=True, timeout=300,
                   capture_output=True)
    done = subprocess.run(run_cli + [
        "improve", "--model", str(model), "--out", str(out), "--env", "webgrove/Booking-v0", "--iterations", "1",
        "--goals-per-iteration", "2", "--simulations", "2", "--k", "3", "--max-depth", "3", "--theta", "0.01",
        "--epochs", "1", "--eval-episodes", "0", "--eval-mcts-episodes", "0", "--no-eval-start", "--no-fit-eval",
        "--no-progress"],
        timeout=1800, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "iter_1" / "model" / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (out / "iter_1" / "pairs.jsonl").read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(model)
    assert rows and max(len(tokenizer(r["prompt"])["input_ids"]) for r in rows) < 1000
