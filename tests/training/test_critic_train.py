"""The learned self-critic: rows from trees, real training steps on a tiny model, read back by LearnedCritic."""
from __future__ import annotations

import json

import pytest

from training_fixtures import P1, hand_tree, shop_contexts
from webgrove.agents.critics import LEARNED_CRITIC_FILE, LearnedCritic, value_prompt
from webgrove.agents.prompts import policy_prompt
from webgrove.search.tree import TreeIndex
from webgrove.training.critic_train import (CriticRunConfig, critic_rows, evaluate, fit, sibling_accuracy,
                                            split_by_goal)
from webgrove.training.sft import load_model, save_trained


def test_critic_rows_from_a_hand_tree():
    rows = critic_rows(TreeIndex.from_records(hand_tree()))
    # every visited non-root node; search[x] (never visited) has no value to learn
    assert len(rows) == 8 and all(0.0 <= r["target"] <= 1.0 for r in rows)
    b01 = next(r for r in rows if r["prompt"] == value_prompt(P1, "click[b01]"))
    assert b01 == {"prompt": P1 + " click[b01]\nVerdict:", "target": 0.9, "goal_id": 17, "parent": 1}


def test_sibling_accuracy_and_split():
    rows = [{"goal_id": 1, "parent": 0, "target": t} for t in (0.9, 0.5, 0.45)] + \
           [{"goal_id": 2, "parent": 0, "target": t} for t in (1.0, 0.0)]
    # pairs apart by > 0.1: (0.9, 0.5), (0.9, 0.45), (1.0, 0.0); the prediction gets two of three
    assert sibling_accuracy([3.0, 4.0, 1.0, 2.0, 1.0], rows) == pytest.approx(2 / 3)
    assert sibling_accuracy([0.0], rows[:1]) is None
    train, val = split_by_goal(rows, 0.5, seed=0)
    assert {r["goal_id"] for r in val} in ({1}, {2}) and len(train) + len(val) == 5


def test_config_validates():
    with pytest.raises(ValueError, match="value_key"):
        CriticRunConfig(trees="t", model="m", out="o", value_key="q_critic")


def test_a_trained_critic_orders_siblings_as_the_search_did(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    rows = []
    for goal_id, ctx in enumerate(shop_contexts()):
        prompt = policy_prompt(ctx)
        rows += [{"prompt": value_prompt(prompt, "click[b01]"), "target": 1.0, "goal_id": goal_id, "parent": 0},
                 {"prompt": value_prompt(prompt, "click[b02]"), "target": 0.0, "goal_id": goal_id, "parent": 0}]
    cfg = CriticRunConfig(trees="unused", model=str(tiny_model_dir), out=str(tmp_path), epochs=20,
                          learning_rate=3e-3, batch_size=12)
    before = evaluate(model, tokenizer, rows, 12)
    losses = fit(model, tokenizer, rows, cfg)
    after = evaluate(model, tokenizer, rows, 12)
    assert losses[-1] < losses[0] and after["loss"] < before["loss"]
    assert after["sibling_accuracy"] == 1.0
    save_trained(model, tokenizer, tmp_path / "critic")
    (tmp_path / "critic" / LEARNED_CRITIC_FILE).write_text(json.dumps({"rows": len(rows)}))
    critic = LearnedCritic(tmp_path / "critic")
    good, bad = critic.rank(shop_contexts()[0], ["click[b01]", "click[b02]"])
    assert 0.0 < bad < 0.5 < good < 1.0
    with pytest.raises(FileNotFoundError, match="train critic"):
        LearnedCritic(tiny_model_dir)
