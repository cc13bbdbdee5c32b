"""Reward-weighted SFT (RISE): weights from rewards, and a loss that honours them."""
import math

import pytest

from webgrove.training.weighted_sft import WeightedSFTConfig, make_weighted_trainer, rwr_weights, train_weighted_sft

ROWS = [{"prompt": "Goal: buy a watch\nHistory: none\nAction:", "completion": " search[watch]"},
        {"prompt": "Goal: buy a lamp\nHistory: none\nAction:", "completion": " search[red lamp]"}]


def test_rwr_weights_are_exp_r_over_tau_normalised_to_mean_one():
    w = rwr_weights([1.0, 0.6, 0.0], tau=0.4)
    raw = [math.exp(1 / 0.4), math.exp(0.6 / 0.4), 1.0]
    assert w == pytest.approx([x / (sum(raw) / 3) for x in raw])
    assert rwr_weights([1.0, 0.0], tau=0.4, normalize=False) == pytest.approx([math.exp(2.5), 1.0])
    assert rwr_weights([], 0.4) == []
    with pytest.raises(ValueError, match="tau"):
        rwr_weights([1.0], tau=0)


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _config(model_dir, out, **kw):
    return WeightedSFTConfig(model=str(model_dir), out=str(out), data="unused.jsonl", batch_size=2,
                             learning_rate=1e-2, progress=False, logging_steps=1, **kw)


def test_a_zero_weight_row_leaves_the_model_unchanged(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    before = _params(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    rows = [dict(ROWS[0], weight=0.0)]
    train_weighted_sft(_config(tiny_model_dir, tmp_path / "zero", max_steps=3), rows)
    after = _params(AutoModelForCausalLM.from_pretrained(tmp_path / "zero"))
    assert all(bool((before[k] == after[k]).all()) for k in before)
    # the same row at weight 1 does move it (the test above can fail)
    train_weighted_sft(_config(tiny_model_dir, tmp_path / "one", max_steps=3), [dict(ROWS[0], weight=1.0)])
    moved = _params(AutoModelForCausalLM.from_pretrained(tmp_path / "one"))
    assert any(not bool((before[k] == moved[k]).all()) for k in before)


def _gradients(tiny_model_dir, tmp_path, weights):
    rows = [dict(r, weight=w) for r, w in zip(ROWS, weights)]
    trainer = make_weighted_trainer(_config(tiny_model_dir, tmp_path / "g"), rows)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    trainer.model.zero_grad()
    trainer.compute_loss(trainer.model, dict(batch)).backward()
    return {k: p.grad.detach().clone() for k, p in trainer.model.named_parameters() if p.grad is not None}


def test_a_doubled_weight_doubles_its_gradient(tiny_model_dir, tmp_path):
    import torch

    only_first = _gradients(tiny_model_dir, tmp_path, [1.0, 0.0])
    doubled = _gradients(tiny_model_dir, tmp_path, [2.0, 0.0])
    both = _gradients(tiny_model_dir, tmp_path, [1.0, 1.0])
    only_second = _gradients(tiny_model_dir, tmp_path, [0.0, 1.0])
    assert any(float(g.abs().sum()) > 0 for g in only_first.values())
    for k, g in only_first.items():
        torch.testing.assert_close(doubled[k], 2 * g)
        torch.testing.assert_close(both[k], g + only_second[k])  # rows add up, each by its weight


def test_weighted_training_raises_the_heavy_rows_likelihood_more(tiny_model_dir, tmp_path):
    from webgrove.agents.hf import HFPolicy

    def gain_of_first(weights, out):
        rows = [dict(r, weight=w) for r, w in zip(ROWS, weights)]
        train_weighted_sft(_config(tiny_model_dir, out, max_steps=8), rows)
        return HFPolicy(out, device="cpu").score_completions(ROWS[0]["prompt"], [ROWS[0]["completion"]])[0]

    heavy = gain_of_first([1.9, 0.1], tmp_path / "heavy")
    light = gain_of_first([0.1, 1.9], tmp_path / "light")
    assert heavy > light + 1.0  # the same data, the weights decide what is learned


def test_rows_need_a_nonnegative_weight(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="weight"):
        make_weighted_trainer(_config(tiny_model_dir, tmp_path), ROWS)
    with pytest.raises(ValueError, match="weight must be"):
        make_weighted_trainer(_config(tiny_model_dir, tmp_path), [dict(ROWS[0], weight=-1.0)])
