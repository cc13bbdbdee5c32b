"""`webgrove demo` from nothing on a toy budget: every phase runs and results.json has every method."""
from __future__ import annotations

import json

from webgrove.training.demo import METHODS, DemoConfig, format_tables, run_demo_pipeline


def test_demo_smoke_run_writes_results_and_resumes(tiny_model_dir, tmp_path, capsys):
    # init-model has its own tests (tests/agents/test_tiny.py); here a throwaway model stands in
    cfg = DemoConfig(out=str(tmp_path / "demo"), init=str(tiny_model_dir), num_products=100, demo_goals=6,
                     query_goals=4, bc_epochs=1, goals_per_iteration=1, simulations=3, k=2, max_depth=3,
                     theta=0.0, dpo_epochs=1, sft_epochs=1, eval_episodes=2, eval_simulations=1, eval_k=2,
                     workers=1, progress=False)
    results = run_demo_pipeline(cfg)
    out = tmp_path / "demo"
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["methods"]) == list(METHODS)
    for m in METHODS:
        assert set(saved["methods"][m]) == {"success_rate", "score", "episodes"}
        assert saved["methods"][m]["episodes"] == 2
    assert {"init", "bc", "collect", "agent_q", "eval"} <= set(saved["phases"])
    assert (out / "results.png").stat().st_size > 0
    assert "agent_q+mcts" in capsys.readouterr().out
    # a rerun finds every phase's output and only re-reads it
    again = run_demo_pipeline(cfg)
    assert again["methods"] == results["methods"]
    assert again["seconds"] < results["seconds"]


def test_format_tables():
    text = format_tables({"base": {"success_rate": 0.25, "score": 50.0, "episodes": 4, "seconds": 1.0}},
                         {"init": 2.0}, 3.0)
    assert "base" in text and "25.0" in text and "total" in text
