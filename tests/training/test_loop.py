"""The improvement loop, end to end on a tiny budget (rollouts: tests/search/test_search_rollout.py)."""
from __future__ import annotations

import json

import pytest

SHOP = dict(num_products=100)


def test_rollout_of_a_model_greedy_is_deterministic_and_runs_with_search(tiny_model_dir):
    from webgrove.search.rollout import RolloutConfig, rollout

    greedy = rollout(RolloutConfig(policy=str(tiny_model_dir), episodes=2, progress=False, **SHOP))
    again = rollout(RolloutConfig(policy=str(tiny_model_dir), episodes=2, progress=False, **SHOP))
    assert greedy["rewards"] == again["rewards"]  # greedy is deterministic
    search = rollout(RolloutConfig(policy=str(tiny_model_dir), episodes=1, mcts=True, simulations=1, k=2,
                                   max_depth=2, progress=False, **SHOP))
    assert search["episodes"] == 1 and search["mcts"] and search["simulations"] == 1


class Interrupt(Exception):
    pass


def test_improve_smoke_run_resumes_after_an_interruption(tiny_model_dir, tmp_path, monkeypatch):
    import webgrove.training.dpo
    from webgrove.training.loop import ImproveConfig, run_improve

    cfg = ImproveConfig(model=str(tiny_model_dir), out=str(tmp_path / "improve"), iterations=2,
                        goals_per_iteration=2, simulations=3, k=2, max_depth=3, theta=0.0, epochs=1,
                        batch_size=4, eval_episodes=1, eval_mcts_episodes=1, eval_simulations=1, eval_k=2,
                        eval_start=False, progress=False, **SHOP)
    real_train = webgrove.training.dpo.train_dpo
    calls = []

    def train_then_interrupt(dpo_cfg, rows=None):
        calls.append(dpo_cfg.model)
        if len(calls) == 2:  # the second iteration's training is interrupted
            raise Interrupt
        return real_train(dpo_cfg, rows)

    monkeypatch.setattr(webgrove.training.dpo, "train_dpo", train_then_interrupt)
    with pytest.raises(Interrupt):
        run_improve(cfg)
    out = tmp_path / "improve"
    assert (out / "iter_1" / "done.json").is_file() and not (out / "iter_2" / "done.json").exists()
    first = {p: p.stat().st_mtime_ns for p in [out / "iter_1" / "done.json", *(out / "iter_2" / "trees").glob("*.jsonl")]}
    assert len(first) == 3  # iteration 1 finished; iteration 2's two trees were collected

    monkeypatch.setattr(webgrove.training.dpo, "train_dpo", real_train)
    metrics = run_improve(cfg)
    assert {p: p.stat().st_mtime_ns for p in first} == first  # nothing finished was redone
    assert calls == [str(tiny_model_dir), str(out / "iter_1" / "model")]  # iteration 2 starts from iteration 1
    records = metrics["iterations"]
    assert [r["iteration"] for r in records] == [0, 1, 2]
    assert records[2]["pairs"]["rows"] > 0 and records[2]["agent_q"]["episodes"] == 1
    assert records[2]["agent_q+mcts"]["episodes"] == 1
    assert (out / "metrics.png").stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["final_model"] == str(out / "iter_2" / "model")


def test_an_iteration_made_by_a_since_retrained_model_starts_over(tiny_model_dir, tmp_path):
    import shutil

    from webgrove.training.loop import ImproveConfig, finished_record, iteration_dir, prepare_iteration

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    cfg = ImproveConfig(model=str(model), out=str(tmp_path / "improve"), iterations=1, progress=False, **SHOP)
    prepare_iteration(cfg, 1)
    d = iteration_dir(cfg, 1)
    (d / "trees").mkdir()
    (d / "trees" / "goal_000000.jsonl").write_text("{}\n")  # stands for a tree of the old model
    (d / "done.json").write_text("{}")
    assert finished_record(cfg, 1) == {}
    prepare_iteration(cfg, 1)  # same model: nothing is touched
    assert (d / "trees" / "goal_000000.jsonl").is_file()
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "retrained": True}))  # a new fingerprint
    assert finished_record(cfg, 1) is None  # its done.json no longer counts
    prepare_iteration(cfg, 1, log=lambda m: None)
    assert not (d / "trees").exists() and not (d / "done.json").exists()
    assert json.loads((d / "start.json").read_text())["policy"] == str(model)


def test_cached_rollouts_count_only_for_the_same_policy_and_goals(tmp_path):
    from webgrove.search.rollout import RolloutConfig
    from webgrove.training.loop import cached_rollout

    path = tmp_path / "eval.json"
    cfg = RolloutConfig(policy="rule", episodes=3, json=str(path), progress=False, **SHOP)
    first = cached_rollout(cfg)
    assert first["policy_fingerprint"] == "scripted:rule" and len(first["successes"]) == 3
    path.write_text(json.dumps({**first, "success_rate": 0.99}))
    assert cached_rollout(cfg)["success_rate"] == 0.99  # reused
    path.write_text(json.dumps({**first, "success_rate": 0.99, "policy_fingerprint": "scripted:oracle"}))
    assert cached_rollout(cfg)["success_rate"] == first["success_rate"]  # another policy's: run again
    wider = RolloutConfig(policy="rule", episodes=4, json=str(path), progress=False, **SHOP)
    assert cached_rollout(wider)["episodes"] == 4


def test_validation_goals_must_be_unseen():
    from webgrove.envs.errors import UsageError
    from webgrove.training.loop import ImproveConfig

    with pytest.raises(UsageError, match="overlaps the collected train goals 0:30"):
        ImproveConfig(model="m", iterations=3, goals_per_iteration=10, val_goals="25:40")
    assert ImproveConfig(model="m", iterations=3, goals_per_iteration=10, val_goals="30:40").val_goals == "30:40"


def test_one_prompt_format_for_collection_training_and_evaluation(tiny_model_dir):
    from webgrove.envs.errors import UsageError
    from webgrove.training.loop import ImproveConfig, collect_config, dpo_config, eval_config

    model = str(tiny_model_dir)
    cfg = ImproveConfig(model=model, prompt_format="raw")
    assert collect_config(cfg, model, "0:4", "out").prompt_format == "raw"
    assert dpo_config(cfg, model, "pairs.jsonl", "out").prompt_format == "raw"
    assert eval_config(cfg, model, mcts=False, json_path="r.json").prompt_format == "raw"
    with pytest.raises(UsageError, match="--prompt-format 'html'"):
        ImproveConfig(model="m", prompt_format="html")


def test_learned_critics_in_the_loop_collect_and_are_reused_on_a_rerun(tiny_model_dir, tmp_path):
    from webgrove.agents.fingerprint import model_fingerprint
    from webgrove.training.loop import ImproveConfig, run_improve

    out = tmp_path / "improve"
    cfg = ImproveConfig(model=str(tiny_model_dir), out=str(out), iterations=2, goals_per_iteration=2,
                        simulations=3, k=2, max_depth=3, theta=0.0, epochs=1, batch_size=4, critic="none",
                        learn_critic=True, eval_episodes=0, eval_mcts_episodes=0, eval_start=False,
                        fit_eval=False, progress=False, **SHOP)
    metrics = run_improve(cfg)
    critic = out / "iter_1" / "critic"  # trained from iteration 1's policy on iteration 1's trees
    assert [r["critic"] for r in metrics["iterations"][1:]] == ["none", str(critic)]
    assert json.loads((critic / "source.json").read_text()) == {
        "policy_fingerprint": metrics["iterations"][1]["fingerprint"], "trees": [str(out / "iter_1" / "trees")]}
    recorded = json.loads((out / "iter_2" / "trees" / "collection.json").read_text())["config"]
    assert recorded["critic"] == str(critic) and recorded["critic_fingerprint"] == model_fingerprint(critic)
    assert not (out / "iter_2" / "critic").exists()  # no iteration 3 to collect with it

    made = (critic / "model.safetensors").stat().st_mtime_ns
    (out / "iter_2" / "done.json").unlink()  # a rerun redoes iteration 2 and reuses the critic
    run_improve(cfg)
    assert (critic / "model.safetensors").stat().st_mtime_ns == made


def test_critic_trees_need_learned_critics():
    from webgrove.envs.errors import UsageError
    from webgrove.training.loop import ImproveConfig

    with pytest.raises(UsageError, match="--learn-critic"):
        ImproveConfig(model="m", critic_trees="runs/trees")
