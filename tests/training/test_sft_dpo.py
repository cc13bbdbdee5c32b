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


def test_pairs_longer_than_the_model_are_a_user_error(tiny_model_dir, tmp_path):
    """A prompt that fills --max-length leaves TRL no pairs: one clear error, not num_samples=0."""
    from webgrove.envs.errors import UsageError

    model, tokenizer = load_model(tiny_model_dir)
    rows = [dict(r, prompt=r["prompt"] * 20) for r in dpo_rows(model, tokenizer)]
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused", max_length=64, **QUIET)
    with pytest.raises(UsageError, match="longer than --max-length 64"):
        train_dpo(cfg, rows)


def test_stored_reference_matches_the_acting_policy(tiny_model_dir):
    from webgrove.agents.hf import HFPolicy

    model, tokenizer = load_model(tiny_model_dir)
    policy = HFPolicy(model, tokenizer, device="cpu")
    ctx = shop_contexts()[0]
    actions = ["click[b01]", "click[buy now]"]
    ours = completion_logprobs(model, tokenizer, [policy_prompt(ctx)] * 2, [action_completion(a) for a in actions])
    assert ours == pytest.approx(policy.logprobs(ctx, actions), abs=1e-4)


def test_a_pair_longer_than_the_model_loses_its_oldest_prompt_tokens_as_the_policy_does(tiny_model_dir):
    from webgrove.agents.hf import HFPolicy

    model, tokenizer = load_model(tiny_model_dir)
    model.config.max_position_embeddings = 40  # far less than a prompt
    policy = HFPolicy(model, tokenizer, device="cpu")
    assert policy.max_positions == 40
    ctx = shop_contexts()[0]
    for a in ("click[b01]", "click[buy now]"):
        ours = completion_logprobs(model, tokenizer, [policy_prompt(ctx)], [action_completion(a)])
        assert ours == pytest.approx(policy.logprobs(ctx, [a]), abs=1e-4)


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


# ---------------------------------------------------------------------------------------
# Choice-level DPO (training/choice.py)

CANDIDATES = [action_completion(a) for a in ("click[b01]", "click[b02]", "click[buy now]", "click[back to search]")]


def choice_rows(policy, shift: float = 0.0, stored: bool = True):
    """Pairs b02 > b01 over four candidates; reference choice log-probs from the acting policy's own scorer."""
    rows = []
    for ctx in shop_contexts():
        prompt = policy_prompt(ctx)
        seq, choice = policy.score_choices(prompt, CANDIDATES)
        row = {"prompt": prompt, "chosen": CANDIDATES[1], "rejected": CANDIDATES[0], "candidates": CANDIDATES,
               "ref_chosen_logps": seq[1], "ref_rejected_logps": seq[0], "q_chosen": 0.9, "q_rejected": 0.1,
               "candidate_q": [0.1, 0.9, None, 0.0]}
        if stored:
            row["ref_chosen_choice_logps"], row["ref_rejected_choice_logps"] = choice[1] + shift, choice[0]
        rows.append(row)
    return rows


def _by_hand_choice_logp(logits, target, branches):
    """Σ_t log p(y_t) − log Σ_{b ∈ B_t} p(b), with plain Python loops."""
    total = 0.0
    for t, (y, bs) in enumerate(zip(target, branches)):
        z = [math.exp(v) for v in logits[t]]
        p = [v / sum(z) for v in z]
        total += math.log(p[y]) - math.log(sum(p[b] for b in bs))
    return total


def test_choice_logps_match_a_hand_computation():
    from webgrove.training.choice import branch_tensors, sequence_and_choice_logps

    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6)  # (N, T, V)
    targets = torch.tensor([[0, 3, 1, 2], [0, 0, 5, 4]])
    mask = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    branches = [[[3, 4], [1], [0, 2, 5]], [[1, 5], [4]]]  # sets at the completion tokens, target included
    branch, ok = branch_tensors(branches, [1, 2], 4)
    seq, choice = sequence_and_choice_logps(logits, targets, branch, ok, mask)
    for i, start in enumerate([1, 2]):
        lg = logits[i].tolist()
        want_seq = sum(torch.log_softmax(logits[i, t], -1)[targets[i, t]].item()
                       for t in range(start, 4))
        want_choice = _by_hand_choice_logp(lg[start:], targets[i, start:].tolist(), branches[i])
        assert seq[i].item() == pytest.approx(want_seq, abs=1e-5)
        assert choice[i].item() == pytest.approx(want_choice, abs=1e-5)


def test_choice_losses_on_hand_values():
    from webgrove.training.choice import LOSSES, PreferenceLogps

    t = lambda *v: torch.tensor(v, dtype=torch.float64)
    p = PreferenceLogps(chosen=t(-3.0, -1.0), rejected=t(-2.0, -4.0), chosen_choice=t(-0.5, -1.5),
                        rejected_choice=t(-1.0, -0.3), ref_chosen=t(-2.5, -1.0), ref_rejected=t(-2.0, -3.0),
                        ref_chosen_choice=t(-0.7, -1.0), ref_rejected_choice=t(-0.9, -0.6),
                        chosen_tokens=t(5.0, 2.0), chosen_is_best=t(1.0, 0.0))
    beta = 0.5
    sig = lambda x: 1 / (1 + math.exp(-x))
    # choice DPO, row 0: ((-0.5 + 0.7) - (-1.0 + 0.9)) = 0.3; row 1: ((-1.5 + 1.0) - (-0.3 + 0.6)) = -0.8
    assert LOSSES["choice_sigmoid"](p, beta).tolist() == pytest.approx([-math.log(sig(0.15)), -math.log(sig(-0.4))])
    # sequence DPO, row 0: (-0.5) - 0 = -0.5; row 1: 0 - (-1) = 1
    assert LOSSES["sigmoid"](p, beta).tolist() == pytest.approx([-math.log(sig(-0.25)), -math.log(sig(0.5))])
    assert LOSSES["choice_ce"](p, beta).tolist() == pytest.approx([0.5, 0.0])  # row 1's chosen is not the best
    assert LOSSES["sft"](p, beta).tolist() == pytest.approx([3.0 / 5, 1.0 / 2])


def test_pair_candidates_and_best():
    from webgrove.training.choice import chosen_is_best, pair_candidates

    row = {"chosen": " a", "rejected": " b", "candidates": [" c", " b", " a"], "q_chosen": 0.5,
           "candidate_q": [0.9, 0.1, 0.5]}
    assert pair_candidates(row) == [" a", " b", " c"]
    assert pair_candidates({"chosen": " a", "rejected": " b"}) == [" a", " b"]
    assert chosen_is_best(row) == 0.0 and chosen_is_best({**row, "q_chosen": 0.9}) == 1.0
    assert chosen_is_best({"chosen": " a", "rejected": " b"}) == 1.0


@pytest.mark.parametrize("stored", [True, False])
def test_choice_dpo_starts_at_log2(tiny_model_dir, tmp_path, stored):
    from webgrove.agents.hf import HFPolicy

    model, tokenizer = load_model(tiny_model_dir)
    rows = choice_rows(HFPolicy(model, tokenizer, device="cpu"), stored=stored)
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused", loss_type="choice_sigmoid",
                       max_steps=1, batch_size=6, beta=0.5, lora=False, **QUIET)
    summary = train_dpo(cfg, rows)
    # reference choice log-probs = the model's own (stored by the acting scorer, or computed): loss log 2
    assert summary["log"][0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert summary["ref_sources"]["ref_chosen_choice_logps"] == ("stored" if stored else "model")


def test_choice_dpo_reads_the_stored_choice_reference(tiny_model_dir, tmp_path):
    from webgrove.agents.hf import HFPolicy

    model, tokenizer = load_model(tiny_model_dir)
    rows = choice_rows(HFPolicy(model, tokenizer, device="cpu"), shift=4.0)
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused", loss_type="choice_sigmoid",
                       max_steps=1, batch_size=6, beta=0.5, lora=False, **QUIET)
    summary = train_dpo(cfg, rows)
    assert summary["log"][0]["loss"] == pytest.approx(math.log1p(math.exp(0.5 * 4.0)), abs=1e-3)


@pytest.mark.parametrize("loss_type", ["choice_sigmoid", "choice_ce"])
def test_choice_dpo_raises_the_choice_the_actor_makes(tiny_model_dir, tmp_path, loss_type):
    from webgrove.agents.hf import HFPolicy
    from webgrove.training.choice import choice_report

    model, tokenizer = load_model(tiny_model_dir)
    rows = choice_rows(HFPolicy(model, tokenizer, device="cpu"))
    before = choice_report(HFPolicy(model, tokenizer, device="cpu"), rows)
    cfg = DPORunConfig(model=str(tiny_model_dir), out=str(tmp_path / "dpo"), pairs="unused", loss_type=loss_type,
                       epochs=6, batch_size=6, learning_rate=1e-2, beta=0.5, sft_weight=0.1, nll_target="choice",
                       **QUIET)
    summary = train_dpo(cfg, rows)
    assert summary["loss_terms"] == [(loss_type, 1.0), ("choice_ce", 0.1)]
    trained, _ = load_model(tmp_path / "dpo")
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), model.parameters()))
    after = choice_report(HFPolicy(trained, tokenizer, device="cpu"), rows)
    assert after["choice_margin"] > before["choice_margin"] + 0.5  # the acting policy's own scorer agrees
    assert after["chosen_choice"] > before["chosen_choice"] + 0.1
    if loss_type == "choice_ce":  # the listwise loss pulls the chosen above every candidate, not only the rejected
        assert after["chosen_greedy"] == 1.0 and before["chosen_greedy"] < 1.0


def test_choice_config_terms():
    choice = DPORunConfig(model="m", out="o", pairs="p", loss_type="choice_sigmoid", sft_weight=0.2, nll_target="choice")
    assert choice.choice_level and choice.loss_terms() == [("choice_sigmoid", 1.0), ("choice_ce", 0.2)]
    assert choice.to_trl().precompute_ref_log_probs
    # plain DPO with a choice NLL term still needs the choice trainer; plain DPO + sequence NLL stays TRL's
    assert DPORunConfig(model="m", out="o", pairs="p", sft_weight=0.2, nll_target="choice").choice_level
    assert not DPORunConfig(model="m", out="o", pairs="p", sft_weight=0.2).choice_level
    with pytest.raises(ValueError, match="nll_target"):
        DPORunConfig(model="m", out="o", pairs="p", nll_target="tokens")
