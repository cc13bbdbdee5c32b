"""Pair and trajectory builders against exact rows on a hand-built tree."""
from __future__ import annotations

import json

import pytest

from webgrove.agents.prompts import action_completion as C
from webgrove.training.pairs import (
    REVISION_THOUGHT, PairsConfig, agent_r_rows, agentq_pairs, build_pairs_file, first_error,
    outcome_pairs, pair_stats, rft_rows, value_gap_pairs,
)
from webgrove.search.tree import TreeFormatError, TreeIndex, tree_from_dicts
from training_fixtures import P0, P1, P2, P3, hand_tree


def pair(prompt, chosen, rejected, lc, lr, qc, qr, depth):
    return {"prompt": prompt, "chosen": C(chosen), "rejected": C(rejected), "ref_chosen_logps": lc,
            "ref_rejected_logps": lr, "q_chosen": qc, "q_rejected": qr, "goal_id": 17, "depth": depth}


EXTRA_FIELDS = ("candidates", "candidate_q", "pair_kind", "visits_chosen", "visits_rejected")


def no_choice_set(rows):
    """Rows without the choice-set and filter fields (checked on their own below)."""
    return [{k: v for k, v in r.items() if k not in EXTRA_FIELDS} for r in rows]


def sft(prompt, action, depth, **extra):
    return {"prompt": prompt, "completion": C(action), "goal_id": 17, "depth": depth, **extra}


def test_value_gap_pairs_orders_better_first_and_respects_theta():
    assert value_gap_pairs([0.1, 0.5, 0.45], 0.1) == [(1, 0), (2, 0)]
    assert value_gap_pairs([0.1, 0.2], 0.1) == []  # strictly greater than theta
    assert value_gap_pairs([0.3, 0.1], 0.0) == [(0, 1)]


def test_trajectory_ends_and_outcomes():
    tree = TreeIndex.from_records(hand_tree())
    # terminals 5, 6, 7 (their path return) and the rolled-out leaf 9 (its Q_mcts)
    assert tree.outcome == {5: 1.0, 6: 0.25, 7: 0.0, 9: 1.0}
    assert tree.best_reward[2] == 1.0 and tree.best_reward[4] == 0.25 and tree.best_reward[8] == float("-inf")
    # typed records and an index give the same rows as the dicts
    assert agentq_pairs(tree) == agentq_pairs(list(tree_from_dicts(hand_tree())[:1]) + tree.nodes) == \
        agentq_pairs(hand_tree())


def test_agentq_pairs_exact_rows():
    assert no_choice_set(agentq_pairs(hand_tree(), theta=0.1)) == [
        pair(P1, "click[b01]", "click[b02]", -0.5, -0.7, 0.9, 0.2, 1),
        pair(P2, "click[b04]", "click[b03]", -0.4, -0.3, 1.0, 0.0, 1),
    ]


def test_agentq_pairs_small_theta_adds_root_pair_and_skips_unvisited():
    rows = no_choice_set(agentq_pairs(hand_tree(), theta=0.01))
    assert rows[0] == pair(P0, "search[red shoes]", "search[shoes]", -1.0, -2.0, 0.60, 0.55, 0)
    assert len(rows) == 3
    # counting unvisited siblings pairs the never-tried search[x] with both searches too
    assert len(agentq_pairs(hand_tree(), theta=0.01, min_visits=0)) == 5


def test_agentq_pairs_carry_the_choice_set():
    rows = agentq_pairs(hand_tree(), theta=0.01)
    # every sibling proposal at the root, the never-visited search[x] with no value
    assert rows[0]["candidates"] == [C("search[red shoes]"), C("search[shoes]"), C("search[x]")]
    assert rows[0]["candidate_q"] == [0.60, 0.55, None]
    assert rows[1]["candidates"] == [C("click[b01]"), C("click[b02]")] and rows[1]["candidate_q"] == [0.9, 0.2]


def test_agentq_pairs_by_critic_value_flips_the_root_pair():
    rows = no_choice_set(agentq_pairs(hand_tree(), theta=0.1, value_key="q_critic"))
    assert rows[0] == pair(P0, "search[shoes]", "search[red shoes]", -2.0, -1.0, 0.9, 0.2, 0)


def test_outcome_pairs_compare_where_trajectories_part():
    rows = outcome_pairs(hand_tree())
    assert rows == [
        pair(P1, "click[b01]", "click[b02]", -0.5, -0.7, 1.0, 0.25, 1),  # 5 vs 6
        pair(P0, "search[red shoes]", "search[shoes]", -1.0, -2.0, 1.0, 0.0, 0),  # 5 vs 7
        pair(P0, "search[shoes]", "search[red shoes]", -2.0, -1.0, 1.0, 0.25, 0),  # 9 vs 6: outcome noise
        pair(P2, "click[b04]", "click[b03]", -0.4, -0.3, 1.0, 0.0, 1),  # 9 vs 7
    ]
    assert outcome_pairs(hand_tree(), max_pairs=1) == rows[:1]
    assert outcome_pairs(hand_tree(), success_reward=2.0) == []  # no success, no pair


def test_rft_rows_are_the_complete_successful_trajectories():
    # the leaf 9 succeeded in a rollout whose steps are not stored: its path 2-9 stops after
    # two of the episode's steps, so RFT leaves it out (it used to keep search[shoes], click[b04])
    assert rft_rows(hand_tree()) == [
        sft(P0, "search[red shoes]", 0), sft(P1, "click[b01]", 1), sft(P3, "click[buy now]", 2),
    ]
    # a lower bar makes the 0.25 purchase a success too; shared steps appear once
    assert [r["completion"] for r in rft_rows(hand_tree(), success_reward=0.25)] == [
        C("search[red shoes]"), C("click[b01]"), C("click[buy now]"), C("click[b02]"), C("click[buy now]")]
    # every RFT trajectory ends with the step that ends the episode
    assert all(r["completion"] == C("click[buy now]") for r in rft_rows(hand_tree(), 0.25) if r["depth"] == 2)


def test_action_and_pair_kinds():
    from webgrove.training.pairs import action_kind, pair_kind

    assert [action_kind(a) for a in ("search[red shoes]", "click[b000abc123]", "click[buy now]", "click[next >]",
                                     "click[description]", "click[large]", "type [e3] [x]")] == [
        "query", "product", "navigation", "navigation", "navigation", "option", "other"]
    assert pair_kind("click[b000abc123]", "click[next >]") == "navigation/product"
    assert pair_kind("search[a]", "search[b]") == "query"


def test_agentq_pair_filters_visits_kinds_and_alpha():
    rows = agentq_pairs(hand_tree(), theta=0.01)
    assert [(r["pair_kind"], r["visits_chosen"], r["visits_rejected"]) for r in rows] == [
        ("query", 4, 2), ("option", 2, 2), ("option", 1, 1)]  # b01..b04 are not shop product ids
    # both siblings need 2 visits: the pair of single-rollout clicks under search[shoes] goes
    assert [r["depth"] for r in agentq_pairs(hand_tree(), theta=0.01, min_visits=2)] == [0, 1]
    assert [r["chosen"] for r in agentq_pairs(hand_tree(), theta=0.01, kinds=["query"])] == [C("search[red shoes]")]
    assert agentq_pairs(hand_tree(), theta=0.01, kinds=["product", "navigation"]) == []
    # alpha 0: the critic alone decides (search[shoes] 0.9 beats search[red shoes] 0.2); alpha 1: Q_mcts alone
    by_critic = agentq_pairs(hand_tree(), theta=0.1, alpha=0.0)[0]
    assert (by_critic["chosen"], by_critic["q_chosen"], by_critic["q_rejected"]) == (C("search[shoes]"), 0.9, 0.2)
    assert no_choice_set(agentq_pairs(hand_tree(), theta=0.1, alpha=1.0)) == no_choice_set(
        agentq_pairs(hand_tree(), theta=0.1, value_key="q_mcts"))


def test_pair_stats_per_kind_and_config_checks():
    stats = pair_stats(agentq_pairs(hand_tree(), theta=0.01), "agentq")
    assert stats["by_pair_kind"]["query"] == {"rows": 1, "gap_mean": pytest.approx(0.05),
                                              "visits_chosen_mean": 4, "visits_rejected_mean": 2}
    assert stats["by_pair_kind"]["option"]["rows"] == 2
    assert pair_stats(outcome_pairs(hand_tree()), "outcome")["by_pair_kind"]["query"]["rows"] == 2
    assert PairsConfig(trees="t", out="o", pair_kinds="query, product").kind_list == ["query", "product"]
    with pytest.raises(ValueError, match="unknown kind"):
        PairsConfig(trees="t", out="o", pair_kinds="query,products")
    with pytest.raises(ValueError, match="alpha"):
        PairsConfig(trees="t", out="o", alpha=1.5)


def test_first_error_and_agent_r_rows():
    tree = TreeIndex.from_records(hand_tree())
    assert first_error(tree, [1, 4, 6], theta=0.1) == (4, 3)
    assert first_error(tree, [2, 7], theta=0.1) == (7, 9)
    assert first_error(tree, [2, 7], theta=2.0) is None
    assert agent_r_rows(hand_tree(), theta=0.1) == [
        {"prompt": P1 + C("click[b02]"), "completion": REVISION_THOUGHT + C("click[b01]"),
         "goal_id": 17, "depth": 1, "kind": "revision", "trajectory": 4},
        sft(P3, "click[buy now]", 2, kind="continuation", trajectory=4),
        {"prompt": P2 + C("click[b03]"), "completion": REVISION_THOUGHT + C("click[b04]"),
         "goal_id": 17, "depth": 1, "kind": "revision", "trajectory": 7},
    ]


def test_agent_r_by_critic_judgement_cuts_earlier():
    # the critic rates search[shoes] (0.9) far above search[red shoes] (0.2), and a success lies
    # below search[shoes]: by its judgement the failed path 1-4-6 already erred at its search
    rows = agent_r_rows(hand_tree(), theta=0.1, value_key="q_critic")
    assert rows[:2] == [
        {"prompt": P0 + C("search[red shoes]"), "completion": REVISION_THOUGHT + C("search[shoes]"),
         "goal_id": 17, "depth": 0, "kind": "revision", "trajectory": 1},
        sft(P2, "click[b04]", 1, kind="continuation", trajectory=1),
    ]
    assert [r["trajectory"] for r in rows if r["kind"] == "revision"] == [1, 7]


def test_malformed_trees_raise():
    recs = hand_tree()
    recs[5]["prompt"] = "something else"  # node 4 no longer shares its sibling's prompt
    with pytest.raises(ValueError, match="disagree"):
        agentq_pairs(recs)
    with pytest.raises(TreeFormatError, match="line 1, field 'type'"):
        agentq_pairs(hand_tree()[1:])
    recs = hand_tree()
    recs[2]["parent"] = None
    with pytest.raises(TreeFormatError, match="line 3, field 'parent': only the root"):
        rft_rows(recs)


def test_pair_stats_and_config_validation():
    stats = pair_stats(agentq_pairs(hand_tree(), theta=0.01), "agentq")
    assert stats["rows"] == 3 and stats["rows_by_depth"] == {0: 1, 1: 2}
    assert stats["gap_min"] == pytest.approx(0.05) and stats["gap_max"] == pytest.approx(1.0)
    assert stats["with_ref_logps"] == 3
    with pytest.raises(ValueError, match="kind"):
        PairsConfig(trees="t", out="o", kind="nope")
    with pytest.raises(ValueError, match="theta"):
        PairsConfig(trees="t", out="o", theta=-1)


def test_pairs_command_reads_tree_files(tmp_path, capsys):
    from webgrove.search.tree import write_tree
    from webgrove.cli import main

    recs = hand_tree()
    write_tree(tmp_path / "trees" / "goal_00017.jsonl", *tree_from_dicts(recs))
    out = tmp_path / "p.jsonl"
    assert main(["pairs", "--trees", str(tmp_path / "trees"), "--kind", "agentq", "--out", str(out)]) == 0
    assert "rows: 2" in capsys.readouterr().out
    assert [json.loads(line) for line in out.read_text().splitlines()] == agentq_pairs(recs, theta=0.1)
    stats = build_pairs_file(PairsConfig(trees=str(tmp_path / "trees"), out=str(out), kind="agent_r"))
    assert stats["rows"] == 3 and stats["revisions"] == 2 and stats["trees"] == 1


@pytest.mark.parametrize("corrupt,message", [
    (lambda lines: lines[:1] + [b"\x00\xff\xfe binary \x89PNG\n"] + lines[1:], r"line 2: not UTF-8"),
    (lambda lines: lines[:2] + [b"[" * 50_000 + b"]" * 50_000 + b"\n"] + lines[2:], r"line 3: JSON nested too deeply"),
    (lambda lines: lines[:3] + [lines[3].replace(b'"logprob": -2.0', b'"logprob": 2.0')] + lines[4:],
     r"line 4, field 'logprob': a log-probability is <= 0"),
])
def test_pairs_on_corrupted_tree_files_names_the_file(tmp_path, corrupt, message):
    from webgrove.search.tree import write_tree

    path = tmp_path / "trees" / "goal_00017.jsonl"
    write_tree(path, *tree_from_dicts(hand_tree()))
    path.write_bytes(b"".join(corrupt(path.read_bytes().splitlines(keepends=True))))
    with pytest.raises(TreeFormatError, match=rf"{path}, {message}"):
        build_pairs_file(PairsConfig(trees=str(tmp_path / "trees"), out=str(tmp_path / "p.jsonl")))
    assert not (tmp_path / "p.jsonl").exists()
