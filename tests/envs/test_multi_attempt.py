"""The multi-attempt wrapper (RISE) on hand-made shop episodes, and its prompt lines."""
import pickle

import pytest

from webgrove.agents.base import StepContext, context_from
from webgrove.agents.prompts import (MAX_ATTEMPTS_CHARS, compress_action, format_attempt, format_attempts,
                                     policy_prompt, with_attempts)
from webgrove.agents.scripted import OraclePolicy
from webgrove.envs.multi_attempt import (MultiAttemptWrapper, describe_components, feedback_text,
                                         make_multi_attempt)

# test goal 0: "a smart watch ... sleep tracking, fast charging and heart rate, with color: pink, < $100"
WRONG = ["search[smart watch]", "click[b0k1tlmcbp]", "click[buy now]"]  # earns 0.8: no pink selected
WRONG_FEEDBACK = "failed, reward 0.80: wrong options (want color: pink)"
OUT_OF_STEPS = ["search[smart watch]", "click[back to search]"] * 7 + ["search[watch]"]  # the 15-step limit


def make(attempts=3, feedback="components", reward_rule="last"):
    return make_multi_attempt("webgrove/WebShop-v0", attempts=attempts, feedback=feedback,
                              reward_rule=reward_rule, split="test")


def play(env, actions):
    out = None
    for a in actions:
        out = env.step(a)
    return out


def oracle_attempt(env, obs, info):
    oracle, history = OraclePolicy(env), []
    while True:
        action = oracle.act(context_from(obs, info, history))
        history.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated or info.get("attempt_ended"):
            return obs, reward, terminated, truncated, info


def test_feedback_text_per_mode():
    info = {"r_type": 0.5, "r_att": 0.5, "w_att": 0.4, "r_option": 0.0, "w_option": 0.2,
            "r_price": False, "w_price": 0.2, "reward": 0.1}
    assert feedback_text("retry", 0.1, False, info) == "failed"
    assert feedback_text("score", 0.1, False, info) == "failed, reward 0.10"
    assert feedback_text("none", 0.1, False, info) == ""
    assert feedback_text("components", 0.1, False, info) == (
        "failed, reward 0.10: wrong product type; missing attributes (1 of 2 matched); "
        "wrong options (0 of 1 matched); over the price limit")
    named = {"attributes": ["heart rate"], "options": ["color: pink"], "price": (120.0, 100.0)}
    assert feedback_text("components", 0.1, False, info, details=named) == (
        "failed, reward 0.10: wrong product type; missing attributes (want heart rate); "
        "wrong options (want color: pink); over the price limit (paid 120.00, limit 100.00)")
    assert feedback_text("components", 1.0, True, info) == "succeeded"
    assert describe_components(None, truncated=True) == "ran out of steps before finishing"
    assert describe_components({"raw_reward": -1.0, "reason": "wrong text"}) == "wrong result (wrong text)"


@pytest.mark.parametrize("mode,text", [("retry", "failed"), ("score", "failed, reward 0.80"),
                                       ("components", WRONG_FEEDBACK), ("none", "")])
def test_a_failed_attempt_restarts_the_same_goal_with_its_feedback(mode, text):
    with make(feedback=mode) as env:
        first_obs, first_info = env.reset(seed=3, options={"goal_id": 0})
        assert (first_info["attempt"], first_info["attempts"], first_info["attempt_rewards"]) == (1, [], [])
        obs, reward, terminated, truncated, info = play(env, WRONG)
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert obs == first_obs and info["goal"] == first_info["goal"]  # same goal, fresh page
        assert info["attempt"] == 2 and info["attempt_rewards"] == [pytest.approx(0.8)]
        record = info["attempts"][0]
        assert record["actions"] == WRONG and record["feedback"] == text and not record["success"]
        assert info["attempt_ended"]["reward_info"]["r_option"] == 0.0
        assert "Attempt 1: search[smart watch] > click[b0k1tlmcbp] > click[buy now]" + (
            f" => {text}" if text else "") in policy_prompt(context_from(obs, info, []))


def test_attempts_are_counted_and_the_last_pays_the_episode_reward():
    with make(attempts=3, feedback="retry") as env:
        env.reset(seed=0, options={"goal_id": 0})
        play(env, WRONG)
        play(env, WRONG)
        obs, reward, terminated, truncated, info = play(env, WRONG)
        assert terminated and not truncated
        assert info["attempt"] == 3 and len(info["attempts"]) == 3
        assert reward == info["episode_reward"] == pytest.approx(info["attempt_rewards"][-1])
    with make(attempts=2, feedback="retry", reward_rule="best") as env:
        env.reset(seed=0, options={"goal_id": 0})
        play(env, WRONG)
        _, reward, terminated, _, info = play(env, OUT_OF_STEPS)
        assert info["attempt_rewards"] == [pytest.approx(0.8), 0.0]
        assert reward == pytest.approx(0.8)  # best, not the last (which ran out of steps)
        with pytest.raises(RuntimeError, match="reset"):
            env.step("search[watch]")


def test_with_oracle_a_success_ends_the_episode_and_without_it_every_attempt_runs():
    with make(attempts=5, feedback="components") as env:
        obs, info = env.reset(seed=0, options={"goal_id": 0})
        obs, _, _, _, info = play(env, WRONG)
        _, reward, terminated, truncated, info = oracle_attempt(env, obs, info)
        assert (reward, terminated, truncated) == (1.0, True, False)
        assert info["attempt"] == 2 and info["attempt_rewards"] == [pytest.approx(0.8), 1.0]
    with make(attempts=2, feedback="none") as env:
        obs, info = env.reset(seed=0, options={"goal_id": 0})
        obs, reward, terminated, _, info = oracle_attempt(env, obs, info)
        assert (reward, terminated, info["attempt"]) == (0.0, False, 2)  # success, yet attempt 2 runs
        assert info["attempts"][0]["success"] and info["attempts"][0]["feedback"] == ""
        _, reward, terminated, _, info = play(env, WRONG)
        assert terminated and reward == pytest.approx(0.8)  # the last attempt's, as documented


def test_a_truncated_attempt_is_told_it_ran_out_of_steps():
    with make(attempts=3) as env:
        env.reset(seed=0, options={"goal_id": 0})
        _, _, _, _, info = play(env, OUT_OF_STEPS)  # 15-step limit
        assert info["attempt"] == 2
        assert info["attempts"][0]["feedback"] == "failed, reward 0.00: ran out of steps before finishing"
        assert info["attempt_ended"]["error"] is None  # a valid last action
        _, _, _, _, info = play(env, OUT_OF_STEPS[:-1] + ["click[no such button]"])
        assert info["attempt_ended"]["error"] and info["attempt"] == 3  # the ended step's rejection travels


def test_no_seed_still_restarts_the_same_goal():
    with make(attempts=2) as env:
        _, info = env.reset()
        _, _, _, _, again = play(env, OUT_OF_STEPS)
        assert again["goal"] == info["goal"] and again["attempt"] == 2


def test_get_state_set_state_across_attempts():
    with make(attempts=4) as env:
        env.reset(seed=5, options={"goal_id": 0})
        play(env, WRONG)
        obs, *_ = env.step("search[smart watch]")
        state = pickle.loads(pickle.dumps(env.get_state()))
        expected = [env.step(a) for a in ["click[b0k1tlmcbp]", "click[buy now]", "search[watch]"]]
        env.reset(seed=9, options={"goal_id": 3})  # somewhere else entirely
        env.set_state(state)
        restored, info = env.observe()
        assert restored == obs and info["attempt"] == 2 and info["attempts"][0]["actions"] == WRONG
        again = [env.step(a) for a in ["click[b0k1tlmcbp]", "click[buy now]", "search[watch]"]]
        for (o1, r1, t1, u1, i1), (o2, r2, t2, u2, i2) in zip(expected, again):
            assert (o1, r1, t1, u1) == (o2, r2, t2, u2)
            assert (i1["attempt"], i1["attempts"]) == (i2["attempt"], i2["attempts"])
        assert again[1][4]["attempts"][1]["actions"] == ["search[smart watch]", "click[b0k1tlmcbp]",
                                                         "click[buy now]"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="feedback"):
        make(feedback="hints")
    with pytest.raises(ValueError, match="attempts"):
        make(attempts=0)
    with pytest.raises(ValueError, match="reward_rule"):
        make(reward_rule="mean")
    with pytest.raises(RuntimeError, match="reset"):
        make().get_state()


# -- the prompt's attempt lines ------------------------------------------------------

def test_attempt_lines_are_compressed_and_cut_deterministically():
    long_search = "search[" + "very " * 20 + "long query]"
    assert compress_action(long_search) == "search[very very very very very very...]"
    assert len(compress_action(long_search)) == 40
    record = {"attempt": 2, "actions": [long_search] + [f"click[item {i}]" for i in range(6)], "feedback": "failed"}
    assert format_attempt(record) == ("Attempt 2: ... > click[item 1] > click[item 2] > click[item 3] > "
                                      "click[item 4] > click[item 5] => failed")
    records = [dict(record, attempt=i) for i in range(1, 7)]
    lines = format_attempts(records)
    # the newest that fit
    assert [line.split(":")[0] for line in lines] == ["Attempt 3", "Attempt 4", "Attempt 5", "Attempt 6"]
    assert sum(len(line) + 1 for line in lines) <= MAX_ATTEMPTS_CHARS
    huge = {"attempt": 1, "actions": ["click[x]"], "feedback": "y" * 2000}
    assert len(format_attempts([huge])[0]) == MAX_ATTEMPTS_CHARS  # alone: kept, cut in the middle
    assert format_attempts([]) == []


def test_with_attempts_equals_the_prompt_made_with_them():
    records = [{"attempt": 1, "actions": WRONG, "feedback": WRONG_FEEDBACK}]
    ctx = StepContext("buy a watch", "WebShop [SEP] Search", ["search[...]"], ["search[a]"])
    with_ctx = StepContext("buy a watch", "WebShop [SEP] Search", ["search[...]"], ["search[a]"], records)
    assert with_attempts(policy_prompt(ctx), records) == policy_prompt(with_ctx)
    assert policy_prompt(with_ctx).splitlines()[3] == (
        "Attempt 1: search[smart watch] > click[b0k1tlmcbp] > click[buy now] => " + WRONG_FEEDBACK)
    assert with_attempts(policy_prompt(ctx), []) == policy_prompt(ctx)
    with pytest.raises(ValueError, match="history line"):
        with_attempts("Goal: x\nAction:", records)


def test_the_wrapper_wraps_an_env_object_too():
    import gymnasium as gym

    inner = gym.make("webgrove/WebShop-v0", split="test")
    env = MultiAttemptWrapper(inner, attempts=2, feedback="score")
    try:
        _, info = env.reset(seed=0, options={"goal_id": 1})
        assert info["attempt"] == 1
        with pytest.raises(ValueError, match="make_kwargs"):
            make_multi_attempt(inner, split="test")
    finally:
        env.close()


# -- browser envs, in real Chromium (through the stable gym ids) ----------------------

@pytest.mark.browser
def test_miniwob_task_restarts_the_same_page_and_succeeds_on_attempt_two(chromium):
    from webgrove.envs.browser.axtree import find_ref
    from webgrove.envs.browser.miniwob_solutions import SOLUTIONS, plan_step_to_action

    with make_multi_attempt("webgrove/miniwob.enter-text-v0", attempts=3, browser=chromium) as env:
        first, info = env.reset(seed=4)
        env.step(f"type [{find_ref(first['axtree'], 'textbox')}] [surely not the word]")
        obs, reward, terminated, _, info = env.step(f"click [{find_ref(first['axtree'], 'button', 'Submit')}]")
        assert (reward, terminated, info["attempt"]) == (0.0, False, 2)
        assert obs["goal"] == first["goal"] and obs["axtree"] == first["axtree"]  # same seed, same page
        assert info["attempt_rewards"] == [-1.0]
        assert info["attempts"][0]["feedback"].startswith("failed, reward -1.00: wrong result")
        state = env.get_state()
        for step in SOLUTIONS["enter-text"](obs["goal"]):
            _, reward, terminated, _, info = env.step(plan_step_to_action(step, obs["axtree"]))
        assert (reward, terminated, info["attempt"], info["attempt_rewards"]) == (1.0, True, 2, [-1.0, 1.0])
        env.set_state(state)  # back to the start of attempt 2, by replay
        restored, again = env.observe()
        assert restored["axtree"] == obs["axtree"] and again["attempt"] == 2 and again["attempt_rewards"] == [-1.0]


@pytest.mark.browser
def test_shop_site_attempt_feedback_from_the_reward_components(chromium):
    from webgrove.envs.browser.shop import text_action_to_browser

    with make_multi_attempt("webgrove/WebShopBrowser-v0", attempts=2, split="test", browser=chromium) as env:
        obs, info = env.reset(seed=0, options={"goal_id": 0})
        goal = obs["goal"]
        for action in WRONG:
            obs, reward, terminated, _, info = env.step(text_action_to_browser(action, obs["axtree"]))
        assert (reward, terminated, info["attempt"]) == (0.0, False, 2) and obs["goal"] == goal
        assert info["attempt_rewards"] == [pytest.approx(0.8)]
        assert info["attempts"][0]["feedback"] == "failed, reward 0.80: wrong options (0 of 1 matched)"


# -- registered Gymnasium ids ---------------------------------------------------------

def test_the_registered_shop_variant_takes_the_wrapper_arguments_in_gymnasium_make():
    import gymnasium as gym

    with gym.make("webgrove/WebShop-Attempts-v0", attempts=2, feedback="components", split="test") as env:
        assert env.get_wrapper_attr("attempts") == 2 and env.get_wrapper_attr("feedback") == "components"
        # no limit of its own: each attempt keeps WebShop-v0's 15 steps
        assert gym.spec("webgrove/WebShop-Attempts-v0").max_episode_steps is None
        obs, info = env.reset(seed=3, options={"goal_id": 0})
        _, reward, terminated, _, info = play(env, WRONG)
        assert (reward, terminated, info["attempt"]) == (0.0, False, 2)
        assert info["attempts"][0]["feedback"] == WRONG_FEEDBACK
        _, reward, terminated, _, info = oracle_attempt(env, obs, info)
        assert (reward, terminated, info["attempt_rewards"]) == (1.0, True, [pytest.approx(0.8), 1.0])
    with gym.make("webgrove/WebShop-Attempts-v0") as env:  # the documented defaults
        assert (env.get_wrapper_attr("attempts"), env.get_wrapper_attr("feedback"),
                env.get_wrapper_attr("reward_rule")) == (5, "components", "last")
    with pytest.raises(ValueError, match="feedback"):
        gym.make("webgrove/WebShop-Attempts-v0", feedback="loud")


@pytest.mark.browser
def test_the_registered_browser_shop_variant_builds_the_wrapper(chromium):
    import gymnasium as gym

    with gym.make("webgrove/WebShopBrowser-Attempts-v0", attempts=3, feedback="score", split="test",
                  browser=chromium) as env:
        assert env.get_wrapper_attr("attempts") == 3 and env.get_wrapper_attr("feedback") == "score"
        _, info = env.reset(seed=0, options={"goal_id": 0})
        assert (info["attempt"], info["attempts"]) == (1, [])
