"""Real TRL steps on a tiny model: SFT masks prompts, DPO uses the stored reference and learns."""
from __future__ import annotations

import math

import pytest
import torch

from webgrove.agents.prompts import action_completion, policy_prompt
from training_fixtures import hand_tree, shop_contexts
from webgrove.training.dpo import DPORunConfig, completion_logprobs, make_dpo_trainer, preference_margins, train_dpo
from webgrove.training.pairs import REVISION_THOUGHT, agent_r_rows
from webgrove.training.sft import SFTRunConfig, load_model, make_sft_trainer, train_sft

QUIET = dict(progress=False, logging_steps=1)


def sft_rows():
    return [{"prompt": policy_prompt(c), "completion": action_completion("click[buy now]")} for c in shop_contexts()]


def dpo_rows(model, tokenizer, shift: float = 0.0):
    rows = [{"prompt": policy_prompt(c), "chosen": action_completion("click[b02]"),
             "rejected": action_completion("click[b01]")} for c in shop_contexts()]
    prompts = [r["prompt"] for r in rows]
    chosen = completion_logprobs(model, tokenizer, prompts, [r["chosen"] for r in rows])
    rejected = completion_logprobs(model, tokenizer, prompts, [r["rejected"] for r in rows])
    for r, c, j in zip(rows, chosen, rejected):
        r["ref_chosen_logps"], r["ref_rejected_logps"] = c + shift, j
    return rows


def labelled_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t, l in zip(example["input_ids"], example["labels"]) if l != -100])


def normalized(tokenizer, text: str) -> str:
    """`text` as the tokenizer's normaliser writes it (ours adds a space after "[" before a word)."""
    return tokenizer.backend_tokenizer.normalizer.normalize_str(text)


def test_sft_masks_the_prompt_and_learns(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    rows = sft_rows()
    before = completion_logprobs(model, tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows])
    cfg = SFTRunConfig(model=str(tiny_model_dir), out=str(tmp_path / "sft"), data="unused",
                       epochs=8, batch_size=6, learning_rate=3e-3, **QUIET)
    trainer = make_sft_trainer(cfg, rows)
    ex = trainer.train_dataset[0]
    assert labelled_text(tokenizer, ex) == normalized(tokenizer, action_completion("click[buy now]")) + tokenizer.eos_token
    n_prompt = len(tokenizer(rows[0]["prompt"])["input_ids"])
    assert all(l == -100 for l in ex["labels"][:n_prompt])
    summary = train_sft(cfg, rows)
    assert summary["steps"] == 8 and summary["log"][-1]["loss"] < summary["log"][0]["loss"]
    trained, _ = load_model(tmp_path / "sft")
    after = completion_logprobs(trained, tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows])
    assert all(a > b + 1.0 for a, b in zip(after, before))


def test_revision_rows_train_only_the_revision_and_good_continuation(tiny_model_dir, tmp_path):
    rows = agent_r_rows(hand_tree(), theta=0.1)
    cfg = SFTRunConfig(model=str(tiny_model_dir), out=str(tmp_path / "r"), data="unused", **QUIET)
    trainer = make_sft_trainer(cfg, rows)
    tokenizer = trainer.processing_class
    revision, continuation = trainer.train_dataset[0], trainer.train_dataset[1]
    assert labelled_text(tokenizer, revision) == normalized(
        tokenizer, REVISION_THOUGHT + action_completion("click[b01]")) + tokenizer.eos_token
    # the erroneous action is in the sequence, as context, but never a label
    bad = tokenizer(action_completion("click[b02]"), add_special_tokens=False)["input_ids"]
    ids, labels = revision["input_ids"], revision["labels"]
    starts = [i for i in range(len(ids)) if ids[i:i + len(bad)] == bad]
    assert starts and all(l == -100 for l in labels[starts[0]:starts[0] + len(bad)])
    assert labelled_text(tokenizer, continuation) == normalized(tokenizer, action_completion("click[buy now]")) + tokenizer.eos_token


def test_dpo_lora_starts_at_log2_changes_adapter_and_raises_margins(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    rows = dpo_rows(model, tokenizer)
    before = preference_margins(model, tokenizer, rows)
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused",
                       epochs=6, batch_size=6, learning_rate=2e-3, beta=0.5, merge=False, **QUIET)
    trainer = make_dpo_trainer(cfg, rows)
    assert trainer.ref_model is None  # off-policy: no second model in memory
    lora_b = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b.values())
    trainer.train()
    # stored reference = the model's own log-probs, so the first loss is -log σ(0) = log 2
    assert trainer.state.log_history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    changed = [n for n, p in trainer.model.named_parameters() if n in lora_b and not torch.equal(p, lora_b[n])]
    assert changed
    frozen = dict(model.named_parameters())
    base_name = next(n for n in frozen if n.endswith("attn.c_attn.weight"))
    peft_name = next(n for n, _ in trainer.model.named_parameters() if n.endswith(base_name.replace("weight", "base_layer.weight")))
    assert torch.equal(dict(trainer.model.named_parameters())[peft_name], frozen[base_name])
    after = preference_margins(trainer.model, tokenizer, rows)
    assert all(a > b + 0.5 for a, b in zip(after, before))


def test_dpo_reads_the_stored_reference_not_the_model(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    # the stored chosen reference is 4 nats above the model's: the first loss is softplus(β·4)
    rows = dpo_rows(model, tokenizer, shift=4.0)
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused",
                       max_steps=1, batch_size=6, beta=0.5, lora=False, **QUIET)
    summary = train_dpo(cfg, rows)
    assert summary["log"][0]["loss"] == pytest.approx(math.log1p(math.exp(0.5 * 4.0)), abs=1e-3)
    trained, _ = load_model(tmp_path / "dpo")  # full fine-tuning: the base weights moved
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), model.parameters()))


def test_dpo_without_stored_reference(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    rows = [{k: v for k, v in r.items() if not k.startswith("ref_")} for r in dpo_rows(model, tokenizer)]
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused", **QUIET)
    with pytest.raises(ValueError, match="lack stored reference"):
        make_dpo_trainer(cfg, rows)
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused",
                       ref_logps="model", **QUIET)
    trainer = make_dpo_trainer(cfg, rows)  # TRL computes them once with the starting model
    expected = completion_logprobs(model, tokenizer, [r["prompt"] for r in rows], [r["chosen"] for r in rows])
    assert trainer.train_dataset["ref_chosen_logps"] == pytest.approx(expected, abs=1e-3)


def test_stored_reference_matches_the_acting_policy(tiny_model_dir):
    from webgrove.agents.hf import HFPolicy

    model, tokenizer = load_model(tiny_model_dir)
    policy = HFPolicy(model, tokenizer, device="cpu")
    ctx = shop_contexts()[0]
    actions = ["click[b01]", "click[buy now]"]
    ours = completion_logprobs(model, tokenizer, [policy_prompt(ctx)] * 2, [action_completion(a) for a in actions])
    assert ours == pytest.approx(policy.logprobs(ctx, actions), abs=1e-4)


def test_training_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    rows = sft_rows()
    common = dict(model=str(tiny_model_dir), out=str(tmp_path / "sft"), data="unused", batch_size=2,
                  save_steps=2, **QUIET)
    first = train_sft(SFTRunConfig(max_steps=2, **common), rows)
    assert first["resumed_from"] is None and (tmp_path / "sft" / "checkpoints" / "checkpoint-2").is_dir()
    second = train_sft(SFTRunConfig(max_steps=4, resume=True, **common), rows)
    assert second["resumed_from"].endswith("checkpoint-2") and second["steps"] == 4


def test_dpo_config_maps_to_trl():
    plain = DPORunConfig(model="m", out="o", pairs="p", beta=0.3).to_trl()
    assert plain.loss_type == ["sigmoid"] and plain.beta == 0.3 and plain.precompute_ref_log_probs
    assert not plain.bf16 and not plain.gradient_checkpointing
    rpo = DPORunConfig(model="m", out="o", pairs="p", sft_weight=0.5).to_trl()
    assert rpo.loss_type == ["sigmoid", "sft"] and rpo.loss_weights == [1.0, 0.5]


def test_config_validation():
    with pytest.raises(ValueError, match="beta"):
        DPORunConfig(model="m", out="o", pairs="p", beta=0)
    with pytest.raises(ValueError, match="batch_size"):
        SFTRunConfig(model="m", out="o", data="d", batch_size=0)
    with pytest.raises(FileNotFoundError, match="init-model"):
        load_model("/nonexistent/model")
