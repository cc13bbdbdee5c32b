"""The reference log-probs a policy stores are the ones TRL computes, for tokenizers of the designs
real checkpoints use (tests/tokenizer_kinds.py), with and without chat templates: DPO's first
loss on them is log 2, and the trainer's token ids are the ones the policy chose on."""
from __future__ import annotations

import math

import numpy as np
import pytest
from tokenizer_kinds import KINDS, build_model, build_tokenizer, contexts

from webgrove.agents.hf import HFPolicy, branch_sets
from webgrove.agents.prompts import action_completion, policy_prompt
from webgrove.training.dpo import DPORunConfig, completion_logprobs, make_dpo_trainer

pytestmark = pytest.mark.slow
QUIET = dict(progress=False, logging_steps=1)


def policy_rows(policy: HFPolicy) -> list[dict]:
    """Pairs as collection stores them: the policy's top two proposals at each step with their
    log-probs as the reference, every available action a candidate, choice log-probs stored too."""
    rows = []
    for ctx in contexts()[1:]:
        first, second = policy.propose(ctx, 2, np.random.default_rng(0))
        candidates = [action_completion(a) for a in ctx.available_actions]
        _, choice = policy.score_choices(policy_prompt(ctx), candidates)
        by_action = dict(zip(ctx.available_actions, choice))
        rows.append({"prompt": policy_prompt(ctx), "chosen": action_completion(first.action),
                     "rejected": action_completion(second.action), "candidates": candidates,
                     "candidate_q": [None] * len(candidates), "q_chosen": 0.9, "q_rejected": 0.1,
                     "ref_chosen_logps": first.logprob, "ref_rejected_logps": second.logprob,
                     "ref_chosen_choice_logps": by_action[first.action],
                     "ref_rejected_choice_logps": by_action[second.action]})
    return rows


def trainer_for(kind: str, tokenizer, rows: list[dict], tmp_path, **options):
    cfg = DPORunConfig(model="unused", out=str(tmp_path / kind), pairs="unused", max_steps=1,
                       batch_size=len(rows), **options, **QUIET)
    return make_dpo_trainer(cfg, rows, model=build_model(tokenizer), tokenizer=tokenizer)


@pytest.fixture(scope="module", params=KINDS)
def kind_rows(request):
    tokenizer = build_tokenizer(request.param)
    policy = HFPolicy(build_model(tokenizer), tokenizer, device="cpu", temperature=0.0)
    return request.param, tokenizer, policy, policy_rows(policy)


def test_trl_computes_the_stored_reference(kind_rows, tmp_path):
    kind, tokenizer, policy, rows = kind_rows
    fmt = kind.split("-")[1]
    trainer = trainer_for(kind, tokenizer, rows, tmp_path, ref_logps="model")  # TRL's own reference pass
    ds = trainer.train_dataset
    assert isinstance(ds[0]["prompt"], list) == (fmt == "chat")  # conversational rows for a chat template
    for side in ("chosen", "rejected"):
        stored = [r[f"ref_{side}_logps"] for r in rows]
        assert ds[f"ref_{side}_logps"] == pytest.approx(stored, abs=1e-4)
        mine = completion_logprobs(policy.model, tokenizer, [r["prompt"] for r in rows], [r[side] for r in rows])
        assert mine == pytest.approx(stored, abs=1e-4)
    for row, example in zip(rows, ds):  # the ids TRL trains on are the ones the policy chose on
        prompt_ids, comp_ids = policy._encode(row["prompt"], row["candidates"], True)
        assert example["prompt_ids"] == prompt_ids
        assert example["chosen_ids"] in comp_ids and example["rejected_ids"] in comp_ids


@pytest.mark.parametrize("loss_type", ["sigmoid", "choice_sigmoid"])
def test_first_dpo_loss_on_stored_reference_is_log2(kind_rows, tmp_path, loss_type):
    kind, tokenizer, policy, rows = kind_rows
    trainer = trainer_for(kind, tokenizer, rows, tmp_path, loss_type=loss_type)
    trainer.train()
    assert trainer.state.log_history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    if loss_type == "choice_sigmoid":  # the branch sets are the policy's: the choice it acts on
        assert set(trainer.ref_sources.values()) == {"stored"}
        for row, example in zip(rows, trainer.train_dataset):
            _, comp_ids = policy._encode(row["prompt"], row["candidates"], True)
            sets = branch_sets(comp_ids)
            assert example["chosen_branch"] == sets[comp_ids.index(example["chosen_ids"])]
            assert example["rejected_branch"] == sets[comp_ids.index(example["rejected_ids"])]


def test_sft_trains_on_the_tokens_the_policy_scores(kind_rows, tmp_path):
    from webgrove.training.sft import SFTRunConfig, make_sft_trainer

    kind, tokenizer, policy, rows = kind_rows
    sft = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]
    cfg = SFTRunConfig(model="unused", out=str(tmp_path / kind), data="unused", max_steps=1, **QUIET)
    trainer = make_sft_trainer(cfg, sft, model=build_model(tokenizer), tokenizer=tokenizer)
    for r, example in zip(sft, trainer.train_dataset):
        prompt_ids, (comp_ids,) = policy._encode(r["prompt"], [r["completion"]], True)
        assert example["input_ids"] == prompt_ids + comp_ids
        assert example["labels"] == [-100] * len(prompt_ids) + comp_ids  # the loss covers what the policy scores
