"""`webgrove demo` from nothing on a toy budget: every phase runs and results.json has every method."""
from __future__ import annotations

import dataclasses
import json

import pytest

from webgrove.training.demo import METHODS, DemoConfig, bc_rows, demo_splits, format_tables, run_demo_pipeline
from webgrove.training.sft import demonstration_rows


def toy_config(tmp_path, tiny_model_dir, **kw):
    # init-model has its own tests (tests/agents/test_tiny.py); here a throwaway model stands in
    return DemoConfig(out=str(tmp_path / "demo"), init=str(tiny_model_dir), num_products=100, demo_goals=6,
                      query_goals=4, bc_epochs=1, bc_full_epochs=1, val_goals=3, iterations=3, goals_per_iteration=1,
                      simulations=3, k=2, max_depth=3, theta=0.0, dpo_epochs=1, sft_epochs=1, eval_episodes=4,
                      eval_simulations=1, eval_k=2, workers=1, progress=False, **kw)


def test_demo_smoke_run_writes_results_and_resumes(tiny_model_dir, tmp_path, capsys):
    cfg = toy_config(tmp_path, tiny_model_dir)
    results = run_demo_pipeline(cfg)
    out = tmp_path / "demo"
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["methods"]) == [*METHODS, "rise"]
    for m in [*METHODS, "rise"]:
        r = saved["methods"][m]
        assert r["episodes"] == 4 and r["goal_ids"] == [0, 1, 2, 3] and len(r["successes"]) == 4
        assert r["success_rate_ci95"][0] <= r["success_rate"] <= r["success_rate_ci95"][1]
    assert saved["methods"]["rule"]["policy_fingerprint"] == "scripted:rule"
    assert saved["methods"]["agent_q"]["policy"].endswith("iter_3/model")
    assert saved["comparisons"]["agent_q vs base"]["goals"] == 4
    assert set(saved["comparisons"]["agent_q+mcts vs base+mcts"]["mcnemar"]) == {"only_base", "only_method", "p"}
    # Agent Q per iteration on the validation goals (iteration 0: the base), fit rates, BC's validation loss
    iters = saved["agent_q_iterations"]
    assert [r["iteration"] for r in iters] == [0, 1, 2, 3]
    assert all(r["agent_q (validation)"]["episodes"] == 3 for r in iters)
    assert set(saved["fit"]) == {"base", "rft", "outcome_dpo", "agent_r", "agent_q"}
    assert saved["bc"]["val_loss"] > 0 and saved["provenance"]["versions"]["torch"]
    assert {"init", "bc", "collect", "agent_q", "eval"} <= set(saved["phases"])
    assert (out / "results.png").stat().st_size > 0 and (out / "iterations.png").stat().st_size > 0
    # RISE (webgrove.training.demo_rise): its row, and success by attempt for base, Agent Q and RISE
    rise = saved["rise"]
    assert list(rise["by_attempt"]) == ["base", "agent_q", "rise"] and rise["attempts"] == cfg.rise_attempts
    assert all(len(c["success_rate"]) == cfg.rise_attempts for c in rise["by_attempt"].values())
    assert list(rise["retries"]) == ["base", "agent_q", "rise"]
    assert all(len(r) == cfg.rise_attempts - 1 and r[0]["better"] + r[0]["same"] + r[0]["worse"] == r[0]["goals"]
               for r in rise["retries"].values())
    assert saved["comparisons"]["rise vs base"]["goals"] == 4 and (out / "attempts.png").stat().st_size > 0
    assert saved["methods"]["rise"]["policy"].endswith("rise/iter_1/model")
    assert set(rise["data"]) == {"rows", "collect", "train"} and rise["data"]["collect"]["goals"] == 3  # blocks
    assert "agent_q+mcts" in capsys.readouterr().out
    # a rerun finds every phase's output and only re-reads it: no model, tree or evaluation is rewritten
    outputs = {p: p.stat().st_mtime_ns for p in out.rglob("*")
               if p.is_file() and (p.suffix in (".safetensors", ".jsonl") or p.name.startswith("eval"))}
    assert len(outputs) > 10
    again = run_demo_pipeline(cfg)
    assert again["methods"] == results["methods"]
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs


def test_splits_are_disjoint_and_validation_is_the_last_train_goals():
    cfg = DemoConfig(num_products=1000)
    s = demo_splits(cfg)
    assert s == {"demos": [0, 300], "blocks": [300, 450], "queries": [450, 1645], "validation": [1645, 1845],
                 "test": [0, 500]}
    with pytest.raises(ValueError, match="too few"):
        demo_splits(DemoConfig(num_products=1000, goals_per_iteration=600))


def _first_product(prompt: str) -> str:
    actions = prompt.split("\nActions: ", 1)[1].split("\n", 1)[0].split(" | ")
    return next(a for a in actions if a.startswith("click[b0"))


def test_bc_rows_clone_the_page_expert_and_add_its_results_page_choices():
    cfg = DemoConfig(num_products=100, demo_goals=4, query_goals=3, iterations=1, goals_per_iteration=1, val_goals=3)
    splits = demo_splits(cfg)
    stage1, stage2 = bc_rows(cfg, splits)
    _, plain = bc_rows(dataclasses.replace(cfg, bc_page_rows=0), splits)
    # stage 1: the query step of every query goal (whatever its outcome), `query_repeats` times
    assert sum(r["goal_id"] in range(*splits["queries"]) for r in stage1) == 3 * cfg.query_repeats
    assert stage2[:len(plain)] == plain
    pages = stage2[len(plain):]
    goals = [*range(*splits["demos"]), *range(*splits["queries"])]
    ids = [r["goal_id"] for r in pages]
    assert ids == sorted(ids) and set(ids) == set(goals)
    assert all(2 <= ids.count(g) <= 4 for g in goals)  # 2 queries, each 1 or 2 pages (a page 2 when there is one)
    assert sum("Page 1 (Total" in r["prompt"] for r in pages) == 2 * len(goals)
    assert sum("Page 2 (Total" in r["prompt"] for r in pages) == len(pages) - 2 * len(goals) > 0
    assert all(r["completion"] == " " + _first_product(r["prompt"]) for r in pages)
    # every product the expert opens in a whole episode is the first result too
    clicks = [r for r in stage2[:len(plain)] if r["completion"].startswith(" click[b0")]
    assert clicks and all(r["completion"] == " " + _first_product(r["prompt"]) for r in clicks)
    oracle = demonstration_rows(goals=range(4), num_products=100, expert="oracle")
    assert any(r["completion"] != " " + _first_product(r["prompt"]) for r in oracle
               if r["completion"].startswith(" click[b0"))  # the oracle opens the hidden target
    with pytest.raises(ValueError, match="scripted policy"):
        demonstration_rows(goals=range(1), expert="runs/some-model")


def test_format_tables():
    entry = {"success_rate": 0.25, "success_rate_ci95": [0.1, 0.5], "score": 50.0, "score_ci95": [40.0, 60.0]}
    comparison = {"success_diff": 0.05, "success_diff_ci95": [-0.01, 0.11], "mcnemar": {"p": 0.2}}
    text = format_tables({"methods": {"base": entry, "agent_q": entry}, "comparisons": {"agent_q vs base": comparison},
                          "validation": {"agent_q": {"success_rate": 0.3}}, "fit": {}, "phases": {"init": 2.0},
                          "seconds": 3.0})
    assert "25.0 [10.0, 50.0]" in text and "+5.0 [-1.0, +11.0]" in text and "0.200" in text and "30.0" in text
    assert "total" in text
