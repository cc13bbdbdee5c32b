"""The learned self-critic: rows from trees, real training steps on a tiny model, read back by LearnedCritic."""
from __future__ import annotations

import json

import pytest

from training_fixtures import P1, hand_tree, shop_contexts
from webgrove.agents.critics import LEARNED_CRITIC_FILE, LearnedCritic, value_prompt
from webgrove.agents.prompts import policy_prompt
from webgrove.search.tree import TreeIndex
from webgrove.training.critic_train import (CriticRunConfig, critic_rows, evaluate, fit, sibling_accuracy,
                                            sibling_pairs, split_by_goal)
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


def test_sibling_pairs_are_the_pairs_sibling_accuracy_counts():
    rows = [{"goal_id": 1, "parent": 0, "target": t} for t in (0.9, 0.5, 0.45)] + \
           [{"goal_id": 1, "parent": 3, "target": 0.0}, {"goal_id": 2, "parent": 0, "target": 1.0}]
    # (0.9, 0.5) and (0.9, 0.45) only: 0.5 vs 0.45 is within the gap; other parents or goals are not siblings
    assert sibling_pairs(rows) == [(0, 1), (0, 2)]


def test_the_pairwise_term_is_added_to_the_first_step_loss(tiny_model_dir, tmp_path):
    import torch
    import torch.nn.functional as F

    from webgrove.agents.critics import verdict_logits

    import shutil

    plain = tmp_path / "no_dropout"  # the same model without dropout: training mode computes the same logits
    shutil.copytree(tiny_model_dir, plain)
    config = json.loads((plain / "config.json").read_text())
    config.update({k: 0.0 for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")})
    (plain / "config.json").write_text(json.dumps(config))
    model, tokenizer = load_model(plain)
    ctx = shop_contexts()[0]
    rows = [{"prompt": value_prompt(policy_prompt(ctx), a), "target": t, "goal_id": 0, "parent": 0}
            for a, t in (("click[b01]", 0.8), ("click[b02]", 0.3), ("click[b03]", 0.0))]
    with torch.no_grad():
        logit = verdict_logits(model, tokenizer, [r["prompt"] for r in rows]).float()
    pointwise = float(F.binary_cross_entropy_with_logits(logit, torch.tensor([0.8, 0.3, 0.0])))
    pairwise = float(-F.logsigmoid(torch.stack([logit[0] - logit[1], logit[0] - logit[2], logit[1] - logit[2]])).mean())
    for weight in (0.0, 2.0):  # one step over every row and every pair (batch = 3 of each)
        model, tokenizer = load_model(plain)
        cfg = CriticRunConfig(trees="unused", model=str(tiny_model_dir), out=str(tmp_path), epochs=1.0,
                              batch_size=3, rank_weight=weight)
        first = fit(model, tokenizer, rows, cfg)[0]
        assert first == pytest.approx(pointwise + weight * pairwise, rel=1e-4)


def test_config_validates():
    with pytest.raises(ValueError, match="value_key"):
        CriticRunConfig(trees="t", model="m", out="o", value_key="q_critic")
    with pytest.raises(ValueError, match="rank_weight"):
        CriticRunConfig(trees="t", model="m", out="o", rank_weight=-1.0)


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
