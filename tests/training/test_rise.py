"""RISE data on hand-built attempts and trees (exact rows), success-by-attempt metrics, and the loop."""
import json
import logging
import math

import pytest

from training_fixtures import node
from webgrove.agents.base import StepContext
from webgrove.agents.prompts import policy_prompt
from webgrove.training.rise import candidate, rise_rows, search_candidate, select_candidates
from webgrove.search.attempts import attempt_curves, format_retries, majority_reward, retry_counts

FAILED = {"attempt": 1, "actions": ["search[shoes]", "click[b03]", "click[buy now]"], "reward": 0.5,
          "success": False, "feedback": "failed, reward 0.50: wrong options (want color: red)", "answer": "B03"}


def steps(*actions):
    return [{"prompt": f"p{i}", "action": a} for i, a in enumerate(actions)]


def hand_candidates():
    own1 = candidate(7, 11, [], "own", steps("search[shoes]", "click[b03]", "click[buy now]"), 0.5)
    own2 = candidate(7, 11, [FAILED], "own", steps("search[shoes]", "click[buy now]"), 0.25)
    self_a = candidate(7, 11, [FAILED], "self", steps("search[red shoes]", "click[buy now]"), 1.0)
    self_b = candidate(7, 11, [FAILED], "self", steps("search[shoes]", "click[b03]", "click[buy now]"), 0.5)
    other = candidate(8, 12, [], "own", steps("search[hat]", "click[buy now]"), 0.0)
    return [own1, own2, self_a, self_b, other]


def test_candidates_carry_their_state_and_baseline():
    own1, own2, *_ = hand_candidates()
    assert (own1["attempt"], own1["baseline"], own1["history"]) == (1, None, [])
    assert (own2["attempt"], own2["baseline"], own2["history"]) == (2, 0.5, [FAILED])


@pytest.mark.parametrize("rule,kept", [("all", [0, 1, 2, 3, 4]), ("better", [0, 2]), ("best", [0, 2, 4]),
                                       ("successful", [2])])
def test_filters_keep_the_documented_candidates(rule, kept):
    cands = hand_candidates()
    assert select_candidates(cands, rule) == [cands[i] for i in kept]


def test_rows_of_the_best_filter_are_exact():
    rows = rise_rows(hand_candidates(), "best", tau=0.4)
    raw = {0.5: math.exp(0.5 / 0.4), 1.0: math.exp(1.0 / 0.4), 0.0: 1.0}
    rewards = [0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0]
    mean = sum(raw[r] for r in rewards) / len(rewards)
    expected = [
        ("p0", " search[shoes]", 0.5, None, 7, 1, 0, "own"), ("p1", " click[b03]", 0.5, None, 7, 1, 1, "own"),
        ("p2", " click[buy now]", 0.5, None, 7, 1, 2, "own"),
        ("p0", " search[red shoes]", 1.0, 0.5, 7, 2, 0, "self"), ("p1", " click[buy now]", 1.0, 0.5, 7, 2, 1, "self"),
        ("p0", " search[hat]", 0.0, None, 8, 1, 0, "own"), ("p1", " click[buy now]", 0.0, None, 8, 1, 1, "own"),
    ]
    keys = ("prompt", "completion", "reward", "baseline", "goal_id", "attempt", "depth", "source")
    assert [tuple(r[k] for k in keys) for r in rows] == expected
    assert [r["weight"] for r in rows] == pytest.approx([raw[r] / mean for r in rewards])
    with pytest.raises(ValueError, match="filter"):
        rise_rows(hand_candidates(), "top")


def test_dropping_repeats_teaches_another_answer_after_a_failure(tmp_path):
    from webgrove.training.rise import answer_actions, build_rows_file, repeats_failure

    second = {**FAILED, "attempt": 2, "actions": ["search[red shoes]", "click[b05]", "click[buy now]"]}
    own1 = candidate(7, 11, [], "own", steps("search[shoes]", "click[b03]", "click[buy now]"), 0.5)
    same = candidate(7, 11, [FAILED], "own", steps("search[shoes again]", "click[b03]", "click[buy now]"), 0.5)
    other = candidate(7, 11, [FAILED], "self", steps("search[red shoes]", "click[b04]", "click[buy now]"), 0.25)
    older = candidate(7, 11, [FAILED, second], "self", steps("click[b03]", "click[buy now]"), 0.5)
    assert answer_actions(["search[a]", "click[x]", "search[b]", "click[y]"]) == ("click[y]",)
    assert answer_actions(["click[b03]", "click[buy now]"]) == ("click[b03]", "click[buy now]")
    assert [repeats_failure(c) for c in (own1, same, other, older)] == [False, True, False, True]
    cands = [own1, same, other, older]
    keys = ("completion", "reward", "attempt", "source")
    assert [tuple(r[k] for k in keys) for r in rise_rows(cands, "best")][3:] == [
        (" search[shoes again]", 0.5, 2, "own"), (" click[b03]", 0.5, 2, "own"), (" click[buy now]", 0.5, 2, "own"),
        (" click[b03]", 0.5, 3, "self"), (" click[buy now]", 0.5, 3, "self")]
    rows = rise_rows(cands, "best", no_repeats=True)  # the state's best is now the other product
    assert [tuple(r[k] for k in keys) for r in rows] == [
        (" search[shoes]", 0.5, 1, "own"), (" click[b03]", 0.5, 1, "own"), (" click[buy now]", 0.5, 1, "own"),
        (" search[red shoes]", 0.25, 2, "self"), (" click[b04]", 0.25, 2, "self"), (" click[buy now]", 0.25, 2, "self")]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cands))
    assert build_rows_file(path, tmp_path / "r.jsonl", "all", 0.4, no_repeats=True)["rows"] == 6
    assert build_rows_file(path, tmp_path / "r.jsonl", "all", 0.4)["rows"] == 11


def test_replayed_rows_are_drawn_seeded_and_weighted_as_successes(tmp_path):
    from webgrove.training.rise import RiseRowsConfig, build_rows_file, with_replay
    from webgrove.envs.errors import UsageError

    rows = rise_rows(hand_candidates(), "best", tau=0.4)
    sft = [{"prompt": f"q{i}", "completion": f" a{i}", "goal_id": 100 + i, "depth": i % 3} for i in range(10)]
    mixed = with_replay(rows, sft, tau=0.4, n=4)
    replayed = [r for r in mixed if r["source"] == "replay"]
    success_weight = next(r["weight"] for r in rows if r["reward"] == 1.0)
    assert len(mixed) == len(rows) + 4 and [r for r in mixed if r["source"] != "replay"] != rows  # shuffled
    assert sorted(map(str, mixed)) == sorted(map(str, rows + replayed))  # the RISE rows unchanged
    assert {(r["reward"], r["attempt"], r["weight"]) for r in replayed} == {(1.0, 1, success_weight)}
    assert mixed == with_replay(rows, sft, tau=0.4, n=4)  # fixed seeds
    assert len(with_replay(rows, sft, tau=0.4)) == 2 * len(rows)  # default: as many as the RISE rows
    cands, sft_file = tmp_path / "c.jsonl", tmp_path / "sft.jsonl"
    cands.write_text("".join(json.dumps(c) + "\n" for c in hand_candidates()))
    sft_file.write_text("".join(json.dumps(r) + "\n" for r in sft))
    stats = build_rows_file(cands, tmp_path / "rows.jsonl", "best", 0.4, sft_file, 3)
    assert stats["by_source"]["replay"] == 3 and stats["rows"] == len(rows) + 3
    with pytest.raises(UsageError, match="--replay-rows needs --replay"):
        RiseRowsConfig(candidates=str(cands), out=str(tmp_path / "o.jsonl"), replay_rows=5)


def _ctx(page, history):
    return StepContext("i need red shoes", page, ["search[...]"] if not history else ["click[b01]", "click[buy now]"],
                       history)


def test_search_candidate_is_the_best_terminal_path_with_attempt_lines():
    p0 = policy_prompt(_ctx("WebShop [SEP] Search", []))
    p1 = policy_prompt(_ctx("results", ["search[red shoes]"]))
    p2 = policy_prompt(_ctx("item b01", ["search[red shoes]", "click[b01]"]))
    records = [
        {"type": "tree", "env_id": "webgrove/WebShop-v0", "goal_id": 7, "goal": "i need red shoes", "seed": 3,
         "policy": "test", "config": {}, "created": "now"},
        node(0, None, 0, visits=4, q=0.5),
        node(1, 0, 1, "search[red shoes]", p0, -1.0, visits=3, q=0.7),
        node(2, 1, 2, "click[b01]", p1, -0.5, visits=2, q=0.9),
        node(3, 2, 3, "click[buy now]", p2, -0.1, visits=1, q=1.0, reward=1.0, terminal=True),
        node(4, 1, 2, "click[b02]", p1, -0.6, visits=1, q=0.3, reward=0.3, terminal=True),
        node(5, 0, 1, "search[shoes]", p0, -2.0, visits=1, q=1.0),  # a rolled-out leaf: not a whole attempt
    ]
    found = search_candidate(records, [FAILED], seed=11)
    with_history = [policy_prompt(StepContext(c.goal, c.observation, c.available_actions, c.history, [FAILED]))
                    for c in (_ctx("WebShop [SEP] Search", []), _ctx("results", ["search[red shoes]"]),
                              _ctx("item b01", ["search[red shoes]", "click[b01]"]))]
    assert found == {"goal_id": 7, "seed": 11, "attempt": 2, "source": "search", "history": [FAILED],
                     "reward": 1.0, "baseline": 0.5,
                     "steps": [{"prompt": with_history[0], "action": "search[red shoes]"},
                               {"prompt": with_history[1], "action": "click[b01]"},
                               {"prompt": with_history[2], "action": "click[buy now]"}]}
    assert "Attempt 1: search[shoes] > click[b03] > click[buy now] => failed" in found["steps"][0]["prompt"]
    no_terminal = records[:3]
    assert search_candidate(no_terminal, [FAILED], seed=11) is None


def test_majority_and_attempt_curves_on_hand_outcomes():
    assert majority_reward([0.5, 1.0, 0.5], ["a", "b", "a"]) == 0.5
    assert majority_reward([0.5, 1.0], ["a", "b"]) == 1.0  # a tie goes to the latest answer
    outcomes = [
        {"sequential": [0.5, 1.0], "sequential_none": {"rewards": [0.5, 1.0, 0.5], "answers": ["a", "b", "a"]},
         "parallel": {"rewards": [0.2, 0.2, 1.0], "answers": ["c", "c", "d"]}},
        {"sequential": [0.0, 0.0, 0.0], "sequential_none": {"rewards": [0.0, 0.0, 1.0], "answers": ["x", "x", "y"]},
         "parallel": {"rewards": [1.0, 0.0, 0.0], "answers": ["z", "w", "w"]}},
    ]
    c = attempt_curves(outcomes, 3)
    point = lambda curve: {k: curve[k] for k in ("success_rate", "score")}  # noqa: E731
    assert point(c["sequential_oracle"]) == {"success_rate": [0.0, 0.5, 0.5], "score": [25.0, 50.0, 50.0]}
    assert point(c["sequential_last"]) == {"success_rate": [0.0, 0.5, 0.5], "score": [25.0, 50.0, 75.0]}
    # 95% intervals at every t: Wilson for success (0 of 2: [0, 0.658]), bootstrap for the score
    assert c["sequential_oracle"]["success_rate_ci95"][0] == pytest.approx([0.0, 0.6576], abs=1e-4)
    assert all(lo <= s <= hi for s, (lo, hi) in zip(c["sequential_last"]["score"], c["sequential_last"]["score_ci95"]))
    assert c["sequential_majority"]["success_rate"] == [0.0, 0.5, 0.0]
    assert c["parallel_oracle"]["success_rate"] == [0.5, 0.5, 1.0]
    assert c["parallel_majority"]["success_rate"] == [0.5, 0.0, 0.0]
    assert c["parallel_first"]["success_rate"] == [0.5, 0.5, 0.5]
    # runs that were not made (no sequential_none, no parallel) leave their curves out
    only = attempt_curves([{"sequential": o["sequential"]} for o in outcomes], 3)
    assert list(only) == ["sequential_oracle"] and only["sequential_oracle"] == c["sequential_oracle"]


def test_retry_counts_compare_each_retry_with_the_attempt_before_it():
    outcomes = [{"sequential": [0.5, 1.0]}, {"sequential": [0.6, 0.2, 0.2]}, {"sequential": [1.0]},
                {"sequential": [0.0, 0.5, 0.25]}]
    r = retry_counts(outcomes, 3)
    assert r[0] == {"attempt": 2, "goals": 3, "better": 2, "same": 0, "worse": 1,
                    "mean_reward_before": pytest.approx(1.1 / 3), "mean_reward": pytest.approx(1.7 / 3)}
    assert r[1] == {"attempt": 3, "goals": 2, "better": 0, "same": 1, "worse": 1,
                    "mean_reward_before": pytest.approx(0.35), "mean_reward": pytest.approx(0.225)}
    assert retry_counts([{"sequential": [1.0]}], 2) == [{"attempt": 2, "goals": 0, "better": 0, "same": 0, "worse": 0,
                                                         "mean_reward_before": None, "mean_reward": None}]
    text = format_retries(r + retry_counts([{"sequential": [1.0]}], 2))
    assert text.splitlines() == ["attempt 2: 3 goals retried, 2 better / 0 same / 1 worse, mean reward 0.37 -> 0.57",
                                 "attempt 3: 2 goals retried, 0 better / 1 same / 1 worse, mean reward 0.35 -> 0.23",
                                 "attempt 2: no goal retried"]


@pytest.mark.slow
def test_improve_rise_runs_two_iterations_and_resumes(tiny_model_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="webgrove")
    from webgrove.training.rise import RiseImproveConfig, run_rise_improve

    cfg = RiseImproveConfig(model=str(tiny_model_dir), out=str(tmp_path / "rise"), iterations=2,
                            goals_per_iteration=1, attempts=2, samples=1, improve="self,teacher", teacher="oracle",
                            filter="all", epochs=1.0, batch_size=4, eval_goals=1, num_products=200, progress=False)
    metrics = run_rise_improve(cfg)
    assert [r["iteration"] for r in metrics["iterations"]] == [0, 1, 2]
    it1 = metrics["iterations"][1]
    assert it1["rows"]["rows"] > 0 and it1["rows"]["by_source"]["teacher"] > 0 and it1["train"]["steps"] >= 1
    assert len(it1["eval"]["sequential_oracle"]["success_rate"]) == 2
    assert (tmp_path / "rise" / "success_by_attempt.png").stat().st_size > 0
    candidates = [json.loads(line) for line in (tmp_path / "rise" / "iter_1" / "candidates.jsonl").open()]
    assert {c["goal_id"] for c in candidates} == {0}
    # rerun: every iteration is skipped and the same metrics come back
    (tmp_path / "rise" / "iter_2" / "done.json").unlink()  # iteration 2 unfinished: its parts are reused
    (tmp_path / "rise" / "iter_2" / "eval.json").unlink()
    stamp = (tmp_path / "rise" / "iter_2" / "model" / "config.json").stat().st_mtime
    again = run_rise_improve(cfg)
    assert "iteration 1 already finished" in caplog.text
    assert (tmp_path / "rise" / "iter_2" / "model" / "config.json").stat().st_mtime == stamp
    assert again["iterations"][1] == metrics["iterations"][1]
    assert again["iterations"][2]["eval"] == metrics["iterations"][2]["eval"]


class Seen:
    """A policy that records the contexts it reads."""

    def __init__(self):
        self.contexts = []

    def act(self, ctx, rng):
        self.contexts.append(ctx)
        return "click[buy now]"


@pytest.mark.parametrize("see_attempts,seen", [(True, [FAILED]), (False, [])])
def test_self_samples_see_the_attempts_only_with_sample_history(see_attempts, seen):
    from webgrove.training.rise import _actor

    policy = Seen()
    ctx = StepContext(goal="g", observation="o", available_actions=["click[buy now]"], attempts=[FAILED])
    assert _actor(policy, None, see_attempts)(ctx) == "click[buy now]"
    assert policy.contexts[0].attempts == seen
    assert ctx.attempts == [FAILED]  # the step's own context (its recorded prompt) keeps the attempt lines


def test_improve_passes_sampling_settings_to_collection_and_evaluation(tmp_path):
    from webgrove.training.rise import RiseImproveConfig

    (tmp_path / "config.json").write_text("{}")
    cfg = RiseImproveConfig(model=str(tmp_path), out=str(tmp_path / "rise"), sample_history=False,
                            sample_temperature=0.7, later_temperature=1.0)
    collect = cfg.collect_config(cfg.model, 1, tmp_path / "c")
    assert (collect.sample_history, collect.sample_temperature) == (False, 0.7)
    assert cfg.eval_config(cfg.model, tmp_path / "e.json").later_temperature == 1.0


def test_repair_actor_replays_the_failed_attempt_and_clicks_the_wanted_options():
    from webgrove.training.rise import repair_actor, wanted_options

    feedback = "failed, reward 0.50: missing attributes (want wool); wrong options (want color: Red, size: 9)"
    assert wanted_options(feedback) == ["Red", "9"]
    assert wanted_options("failed, reward 0.00: wrong product type") == []
    assert wanted_options("failed, reward 0.40: wrong options (want size: 2 pack, 8 oz, color: red)") == [
        "2 pack, 8 oz", "red"]
    failed = {**FAILED, "actions": ["search[shoes]", "click[b03]", "click[blue]", "click[buy now]"], "feedback": feedback}
    act = repair_actor(failed)
    item = ["click[red]", "click[blue]", "click[buy now]"]
    seen = []
    for page in (["search[...]"], ["click[b03]"], item, item, item, item):
        seen.append(act(StepContext("g", "o", page, list(seen))))
        if seen[-1] == "click[buy now]":
            break
    assert seen == ["search[shoes]", "click[b03]", "click[blue]", "click[red]", "click[buy now]"]  # no size 9 offered
    assert repair_actor({**failed, "feedback": "failed, reward 0.50: over the price limit"}) is None
    assert repair_actor({**failed, "actions": ["search[shoes]", "click[b03]"]}) is None  # never bought


def test_repair_candidates_on_the_shop_buy_the_same_product_with_the_wanted_options(tmp_path):
    from webgrove.training.rise import RiseCollectConfig, collect_candidates

    cfg = RiseCollectConfig(policy="rule", out=str(tmp_path), goal_range="1:3", attempts=2, improve="repair",
                            num_products=200, max_steps=8, progress=False)
    cands = collect_candidates(cfg)
    assert [(c["goal_id"], c["attempt"], c["source"]) for c in cands] == [
        (1, 1, "own"), (1, 2, "repair"), (1, 2, "own"), (2, 1, "own"), (2, 2, "repair"), (2, 2, "own")]
    for own, repair, wanted, feedback in (
            (cands[0], cands[1], ["click[sour cream]", "click[5 oz]"], "want flavor name: sour cream, size: 5 oz"),
            (cands[3], cands[4], ["click[grey]"], "want color: grey")):
        assert repair["history"][-1]["feedback"].endswith(f"wrong options ({feedback})")
        actions = [s["action"] for s in own["steps"]]
        assert [s["action"] for s in repair["steps"]] == actions[:-1] + wanted + actions[-1:]
        assert (repair["reward"], repair["baseline"]) == (1.0, own["reward"]) and own["reward"] < 1.0
        assert all("Attempt 1: " in s["prompt"] for s in repair["steps"])


def test_candidates_of_several_collections_count_once(tmp_path):
    from webgrove.envs.errors import UsageError
    from webgrove.training.rise import RiseRowsConfig, read_candidates

    own1, own2, self_a, self_b, other = hand_candidates()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(c) + "\n" for c in (own1, own2, self_a)))
    b.write_text("".join(json.dumps(c) + "\n" for c in (own1, own2, self_b, other)))  # the same own attempts
    assert read_candidates(f"{a},{b}") == [own1, own2, self_a, self_b, other]
    with pytest.raises(UsageError, match="no such file"):
        RiseRowsConfig(candidates=f"{a},{tmp_path / 'missing.jsonl'}", out=str(tmp_path / "r.jsonl"))
