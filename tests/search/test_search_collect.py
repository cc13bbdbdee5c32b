"""Tree collection: one valid tree per goal, resuming after crashes without losing trees."""
from __future__ import annotations

import json

import pytest

from webgrove.envs.errors import UsageError
from webgrove.search.collect import CollectConfig, CollectError, goal_seed, run_collect, tree_path
from webgrove.search.tree import read_tree

TOY = dict(env="toy_env:ToyTree-v0", policy="toy_env:make_policy", critic="toy_env:make_critic",
           simulations=4, k=3, progress=False)


def _config(out, **kw):
    return CollectConfig(**{**TOY, "out": str(out), **kw})


def _snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("goal_*.jsonl"))}


def test_goal_seeds_differ_by_seed_and_goal():
    assert len({goal_seed(s, g) for s in range(3) for g in range(50)}) == 150


def test_config_validates():
    with pytest.raises(UsageError, match="workers"):
        CollectConfig(workers=0)
    with pytest.raises(UsageError, match="alpha"):
        CollectConfig(alpha=2.0)
    with pytest.raises(UsageError, match="base-url"):
        CollectConfig(policy="openai")
    with pytest.raises(UsageError, match="goal-range"):
        CollectConfig(goal_range="5:2")


def test_collect_writes_one_valid_tree_per_goal(tmp_path):
    summary = run_collect(_config(tmp_path, goal_range="2:5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".collect.lock", "collection.json", "goal_00002.jsonl", "goal_00003.jsonl", "goal_00004.jsonl",
        "summary.json"]
    for goal_id in (2, 3, 4):
        header, nodes = read_tree(tree_path(tmp_path, goal_id))
        assert header.goal_id == goal_id and header.env_id == TOY["env"]
        assert header.seed == goal_seed(0, goal_id) and header.config["simulations"] == 4
        assert header.config["critic"] == TOY["critic"] and header.policy == TOY["policy"]
        assert header.stats["nodes"] == len(nodes) and len(header.best_path) >= 2
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert summary["trees"] == 3 and summary["collected"] == 3 and summary["skipped"] == 0
    assert summary["nodes"] == sum(len(read_tree(tree_path(tmp_path, g))[1]) for g in (2, 3, 4))
    assert 0 <= summary["success_rate"] <= 1 and summary["simulations_per_second"] > 0
    # where the goals' time went: every part measured, and no part counted twice (the rest, other_s,
    # is call overhead between the timers)
    t = summary["timings"]
    assert all(t[k] > 0 for k in ("reset_s", "env_s", "policy_s", "critic_s", "mcts_s", "records_s", "write_s"))
    assert t["other_s"] >= 0
    assert summary["mcts_share"] == pytest.approx((t["mcts_s"] + t["records_s"]) / t["goal_s"])
    # a rerun has nothing to do and leaves every tree as it was
    before = _snapshot(tmp_path)
    again = run_collect(_config(tmp_path, goal_range="2:5"))
    assert again["collected"] == 0 and again["skipped"] == 3 and again["trees"] == 3
    assert _snapshot(tmp_path) == before


def test_collection_is_deterministic_for_a_fixed_seed(tmp_path):
    for name in ("a", "b"):
        run_collect(_config(tmp_path / name, goal_range="0:2", seed=9))
    for goal_id in (0, 1):
        assert read_tree(tree_path(tmp_path / "a", goal_id))[1] == read_tree(tree_path(tmp_path / "b", goal_id))[1]


def test_a_failing_goal_loses_nothing_and_a_rerun_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("WEBGROVE_TEST_CRASH", f"3:raise:{tmp_path / 'crashed'}")
    out = tmp_path / "trees"
    cfg = _config(out, goal_range="0:6", policy="toy_env:make_crash_policy")
    with pytest.raises(CollectError, match=r"\[3\].*rerun") as err:
        run_collect(cfg)
    assert "5 finished trees" in str(err.value)
    done = _snapshot(out)
    assert sorted(done) == [f"goal_0000{g}.jsonl" for g in (0, 1, 2, 4, 5)]
    assert json.loads((out / "summary.json").read_text())["failed"] == [3]
    summary = run_collect(cfg)
    assert summary["collected"] == 1 and summary["skipped"] == 5 and summary["trees"] == 6
    after = _snapshot(out)
    assert {k: after[k] for k in done} == done  # earlier trees unchanged
    assert "goal_00003.jsonl" in after


def test_an_invalid_tree_file_is_collected_again(tmp_path):
    run_collect(_config(tmp_path, goal_range="0:2"))
    path = tree_path(tmp_path, 1)
    path.write_text(path.read_text()[:-30])
    summary = run_collect(_config(tmp_path, goal_range="0:2"))
    assert summary["collected"] == 1 and summary["skipped"] == 1
    read_tree(path)


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_a_rerun_resumes(tmp_path, monkeypatch):
    """A worker process dies (os._exit) on goal 1; two spawned workers."""
    monkeypatch.setenv("WEBGROVE_TEST_CRASH", f"1:exit:{tmp_path / 'crashed'}")
    out = tmp_path / "trees"
    cfg = _config(out, goal_range="0:4", workers=2, policy="toy_env:make_crash_policy")
    with pytest.raises(CollectError, match="rerun"):
        run_collect(cfg)
    assert (tmp_path / "crashed").exists()
    done = _snapshot(out)
    assert "goal_00001.jsonl" not in done
    for name in done:  # whatever was finished is whole
        read_tree(out / name)
    summary = run_collect(cfg)
    assert summary["trees"] == 4 and summary["skipped"] == len(done)
    after = _snapshot(out)
    assert {k: after[k] for k in done} == done


def test_the_collect_command(tmp_path, capsys):
    from webgrove.cli import main

    argv = ["collect", "--env", TOY["env"], "--policy", TOY["policy"], "--critic", TOY["critic"],
            "--goal-range", "0:2", "--simulations", "3", "--k", "2", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert "2 trees (2 new" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("goal_*")) == ["goal_00000.jsonl", "goal_00001.jsonl"]


def test_collect_on_the_shop_with_the_rule_policy_and_lexical_critic(tmp_path):
    """Two goals of webgrove/WebShop-v0: each tree's best path is a whole episode ending in a purchase."""
    from webgrove.agents.base import context_from
    from webgrove.agents.prompts import policy_prompt
    from webgrove.envs.make import make_env
    from webgrove.search.tree import TreeIndex

    cfg = CollectConfig(env="webgrove/WebShop-v0", policy="rule", critic="lexical", split="train",
                        goal_range="0:2", simulations=3, k=3, out=str(tmp_path), progress=False)
    summary = run_collect(cfg)
    assert summary["trees"] == 2 and summary["failed"] == []
    env = make_env("webgrove/WebShop-v0", split="train")
    for goal_id in (0, 1):
        header, nodes = read_tree(tree_path(tmp_path, goal_id))
        index = TreeIndex.build(header, nodes)
        path = index.best_path()
        assert path[1].action.startswith("search[") and path[-1].action == "click[buy now]"
        assert path[-1].terminal and 0 <= path[-1].reward <= 1
        assert header.stats["success"] == (path[-1].reward == 1.0)
        # a node's prompt is the policy's input at its parent: replay the actions to check one
        node = path[2]
        obs, info = env.reset(seed=header.seed, options={"goal_id": goal_id})
        history = [n.action for n in index.path(node.parent)[1:]]
        for action in history:
            obs, _, _, _, info = env.step(action)
        assert node.prompt == policy_prompt(context_from(obs, info, history))
        assert header.goal == info["goal"]
        assert all(n.q_critic is not None and 0 <= n.q_critic <= 1 for n in nodes[1:])
    env.close()
