"""`webgrove rollout` as a library: one actor factory, greedy or with search, any number of workers."""
from __future__ import annotations

import json

import pytest

from webgrove.envs.errors import UsageError
from webgrove.search.rollout import RolloutConfig, rollout

SHOP = dict(num_products=100)


def test_scripted_policies_and_parallel_workers_agree(tmp_path):
    oracle = rollout(RolloutConfig(policy="oracle", episodes=4, progress=False, **SHOP))
    assert oracle["episodes"] == 4 and oracle["success_rate"] == 1.0 and oracle["score"] == 100.0
    assert oracle["goal_ids"] == [0, 1, 2, 3] and oracle["invalid_actions"] == 0
    serial = rollout(RolloutConfig(policy="random", episodes=4, progress=False, **SHOP))
    parallel = rollout(RolloutConfig(policy="random", episodes=4, workers=2, progress=False,
                                     json=str(tmp_path / "e.json"), **SHOP))
    assert parallel["rewards"] == serial["rewards"]  # same goals, same seeds, any number of workers
    other_seed = rollout(RolloutConfig(policy="random", episodes=4, seed=1, progress=False, **SHOP))
    assert other_seed["rewards"] != serial["rewards"]  # the seed matters
    written = json.loads((tmp_path / "e.json").read_text())
    assert written["episodes"] == 4 and written["config"]["policy"] == "random"


def test_rollout_with_search_beats_the_greedy_rule_policy():
    greedy = rollout(RolloutConfig(policy="rule", episodes=6, progress=False, **SHOP))
    search = rollout(RolloutConfig(policy="rule", episodes=6, mcts=True, simulations=4, progress=False, **SHOP))
    assert search["mcts"] and search["critic"] == "lexical" and search["simulations"] == 4
    assert search["score"] > greedy["score"]


@pytest.mark.parametrize("kwargs, flag", [
    (dict(episodes=0), "--episodes"), (dict(start_goal=-1), "--start-goal"), (dict(workers=0), "--workers"),
    (dict(simulations=0), "--simulations"), (dict(alpha=2.0), "--alpha"), (dict(policy="nope"), "unknown policy"),
    (dict(policy="openai"), "--base-url"), (dict(split="dev"), "--split"), (dict(goal_set="human"), "--data-dir"),
])
def test_bad_settings_raise_usage_errors_naming_the_flag(kwargs, flag):
    with pytest.raises(UsageError, match=flag):
        RolloutConfig(**kwargs)


def test_goals_beyond_the_split_are_refused_before_any_episode():
    with pytest.raises(UsageError, match=r"up to 119, but the test split .* has 116 goals"):
        rollout(RolloutConfig(policy="rule", start_goal=110, episodes=10, progress=False, **SHOP))
    assert rollout(RolloutConfig(policy="oracle", start_goal=115, episodes=1, progress=False, **SHOP))["score"] == 100


def test_attempts_add_success_by_attempt_and_keep_the_one_attempt_metrics(tmp_path):
    from webgrove.search.attempts import CURVES

    plain = rollout(RolloutConfig(policy="random", episodes=4, progress=False, **SHOP))
    multi = rollout(RolloutConfig(policy="random", episodes=4, attempts=3, progress=False,
                                  json=str(tmp_path / "a.json"), **SHOP))
    # attempt 1 of the with-oracle run is the plain episode: same goal, seed and generator
    for key in ("goal_ids", "rewards", "successes", "mean_steps", "invalid_actions", "success_rate", "score"):
        assert multi[key] == plain[key], key
    assert "by_attempt" not in plain and multi["attempts"] == 3 and multi["feedback"] == "components"
    by = multi["by_attempt"]
    assert list(by) == list(CURVES)
    for curve in by.values():
        assert len(curve["success_rate"]) == len(curve["score_ci95"]) == 3
        assert all(lo <= s <= hi for s, (lo, hi) in zip(curve["score"], curve["score_ci95"]))
    oracle = by["sequential_oracle"]["score"]
    assert oracle[0] == pytest.approx(plain["score"]) and oracle == sorted(oracle)  # best so far never drops
    outcome = multi["attempt_outcomes"][0]
    assert len(outcome["sequential_none"]["rewards"]) == len(outcome["parallel"]["rewards"]) == 3
    assert all(f.startswith("failed, reward") for f in outcome["sequential_feedback"])
    assert json.loads((tmp_path / "a.json").read_text())["by_attempt"] == json.loads(json.dumps(by))
    retried = [o for o in multi["attempt_outcomes"] if len(o["sequential"]) > 1]
    assert [r["goals"] for r in multi["retries"]][0] == len(retried)
    assert all(r["better"] + r["same"] + r["worse"] == r["goals"] for r in multi["retries"])
    from webgrove.cli import format_rollout
    assert "with oracle, each retry against the attempt before it:\nattempt 2: " in format_rollout(multi)
    spread = rollout(RolloutConfig(policy="random", episodes=4, attempts=3, workers=2, progress=False, **SHOP))
    assert spread["by_attempt"] == by  # any number of workers


def test_attempts_stop_at_a_success_and_skip_the_runs_left_out():
    s = rollout(RolloutConfig(policy="oracle", episodes=2, attempts=4, without_oracle=False, parallel=False,
                              max_steps=8, progress=False, **SHOP))
    assert list(s["by_attempt"]) == ["sequential_oracle"]
    assert s["by_attempt"]["sequential_oracle"]["success_rate"] == [1.0] * 4
    assert [o["sequential"] for o in s["attempt_outcomes"]] == [[1.0], [1.0]]  # one attempt each
    short = rollout(RolloutConfig(policy="random", episodes=2, attempts=2, max_steps=2, parallel=False, progress=False,
                                  **SHOP))
    assert all(len(a) <= 2 for o in short["attempt_outcomes"] for a in o["sequential_actions"])  # per attempt


@pytest.mark.parametrize("kwargs, flag", [
    (dict(attempts=0), "--attempts"), (dict(attempts=2, feedback="none"), "--feedback"),
    (dict(attempts=2, mcts=True), "--mcts"), (dict(max_steps=8), "--max-steps"),
    (dict(attempts=2, max_steps=0), "--max-steps"),
    (dict(attempts=2, parallel_temperature=-1.0), "--parallel-temperature"),
])
def test_bad_attempt_settings_raise_usage_errors(kwargs, flag):
    with pytest.raises(UsageError, match=flag):
        RolloutConfig(**kwargs)
