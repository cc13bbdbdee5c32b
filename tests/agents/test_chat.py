"""Prompt formats (webgrove.agents.chat): raw text or the chat template, tokenized as TRL tokenizes,
for tokenizers of the designs real checkpoints use (tests/tokenizer_kinds.py, trained here)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from tokenizer_kinds import KINDS, build_model, build_tokenizer, contexts
from tokenizers import normalizers
from trl.data_utils import _tokenize, common_prefix_length, is_conversational

from webgrove.agents.chat import (CRITIC_SYSTEM, POLICY_SYSTEM, assistant, conversational, joined_ids, messages,
                                  resolve_format, split_completions, splits_at_the_boundary)
from webgrove.agents.prompts import action_completion, critic_completion, critic_prompt, policy_prompt
from webgrove.envs.errors import UsageError


@pytest.fixture(scope="module", params=KINDS)
def kind_tokenizer(request):
    return request.param, build_tokenizer(request.param)


def trl_split(tokenizer, prompt: str, completion: str, fmt: str) -> tuple[list[int], list[int]]:
    """One side of a pair as TRL 1.16's DPOTrainer tokenizes it, through TRL's own functions."""
    if fmt == "chat":
        row = conversational({"prompt": prompt, "chosen": completion}, ("chosen",))
        assert is_conversational(row)
        alone = _tokenize(tokenizer, row["prompt"], add_generation_prompt=True)["input_ids"]
        joined = _tokenize(tokenizer, row["prompt"] + row["chosen"])["input_ids"]
    else:
        alone = _tokenize(tokenizer, prompt)["input_ids"]
        joined = _tokenize(tokenizer, prompt + completion + tokenizer.eos_token)["input_ids"]
    n = common_prefix_length(alone, joined)
    return list(alone[:n]), list(joined[n:])


def prompts_and_completions():
    """(prompt, completions) of every test step: the policy's, and the critic's over its actions."""
    for ctx in contexts():
        yield policy_prompt(ctx), [action_completion(a) for a in ctx.available_actions]
        n = len(ctx.available_actions)
        yield critic_prompt(ctx, ctx.available_actions), [critic_completion(i) for i in range(n)]


def test_resolve_format():
    raw, chat = build_tokenizer("bytelevel-raw"), build_tokenizer("bytelevel-chat")
    assert resolve_format(raw) == "raw" and resolve_format(chat) == "chat"
    assert resolve_format(chat, "raw") == "raw"
    with pytest.raises(UsageError, match="no chat template"):
        resolve_format(raw, "chat")
    with pytest.raises(UsageError, match="auto, chat, raw"):
        resolve_format(raw, "template")


def test_split_matches_trl(kind_tokenizer):
    kind, tokenizer = kind_tokenizer
    fmt = resolve_format(tokenizer)
    assert fmt == kind.split("-")[1]
    uneven = 0
    for prompt, completions in prompts_and_completions():
        shared, parts = split_completions(tokenizer, prompt, completions, fmt)
        trl = [trl_split(tokenizer, prompt, c, fmt) for c in completions]
        if len({len(p) for p, _ in trl}) == 1:  # every completion parts from the prompt at the same token
            assert all((shared, part) == t for part, t in zip(parts, trl)), (kind, prompt[-30:])
        else:  # merges cross the prompt's end differently: all start at the earliest parting
            uneven += 1
            assert len(shared) == min(len(p) for p, _ in trl)
            assert all(shared + part == p + c for part, (p, c) in zip(parts, trl))
        if kind != "metaspacex-raw":  # every other design ends the prompt on a token boundary
            alone = messages(prompt) if fmt == "chat" else prompt
            kwargs = {"add_generation_prompt": True} if fmt == "chat" else {}
            assert shared == _tokenize(tokenizer, alone, **kwargs)["input_ids"]
    assert uneven == 0 or kind == "metaspacex-raw"


def test_separate_tokenization_differs_where_merges_cross():
    """Why the policy joins, then splits: tokenizing prompt and completion apart (what it did
    before) disagrees with TRL when a merge crosses the prompt's end."""
    tokenizer = build_tokenizer("metaspacex-raw")
    prompt = policy_prompt(contexts()[1])
    completion = action_completion("click[large]")
    apart = (tokenizer(prompt)["input_ids"],
             tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    joined = split_completions(tokenizer, prompt, [completion], "raw")
    assert apart[0] + apart[1] != joined[0] + joined[1][0]
    trl_prompt, trl_completion = trl_split(tokenizer, prompt, completion, "raw")
    assert joined == (trl_prompt, [trl_completion])
    assert tokenizer.convert_ids_to_tokens(joined[1][0])[0] == ":▁click["  # the prompt's ":" went with it


def test_chat_messages_and_rows():
    tokenizer = build_tokenizer("bytelevel-chat")
    ctx = contexts()[1]
    policy_text = tokenizer.decode(split_completions(tokenizer, policy_prompt(ctx), [" click[red]"], "chat")[0])
    assert POLICY_SYSTEM in policy_text and policy_text.endswith("Action:<|im_end|>\n<|im_start|>assistant\n")
    critic_text = tokenizer.decode(split_completions(tokenizer, critic_prompt(ctx, ["click[red]"]), [" 1"], "chat")[0])
    assert CRITIC_SYSTEM in critic_text and POLICY_SYSTEM not in critic_text
    row = conversational({"prompt": "p", "chosen": " click[a]", "rejected": " click[b]", "q": 1.0},
                         ("chosen", "rejected"))
    assert row == {"prompt": messages("p"), "chosen": assistant("click[a]"), "rejected": assistant("click[b]"),
                   "q": 1.0}
    assert row["chosen"] == [{"role": "assistant", "content": "click[a]"}] and is_conversational(row)


@pytest.fixture(scope="module")
def kind_policy(kind_tokenizer):
    from webgrove.agents.hf import HFPolicy

    kind, tokenizer = kind_tokenizer
    return kind, HFPolicy(build_model(tokenizer), tokenizer, device="cpu", temperature=1.0, max_query_tokens=6)


def test_policy_scores_the_tokens_trl_trains_on(kind_policy):
    from webgrove.agents.hf import branch_sets

    kind, policy = kind_policy
    tokenizer = policy.tokenizer
    assert policy.prompt_format == kind.split("-")[1]
    for prompt, completions in prompts_and_completions():
        prompt_ids, comp_ids = policy._encode(prompt, completions, True)
        # TRL's ids (test_split_matches_trl): the policy acts on the tokens training scores
        assert (prompt_ids, comp_ids) == split_completions(tokenizer, prompt, completions, policy.prompt_format)
        seq, choice = policy.score_choices(prompt, completions)
        policy.batching = False
        try:
            assert np.allclose(policy.score_choices(prompt, completions), (seq, choice), atol=1e-4)
        finally:
            policy.batching = True
        assert np.exp(choice).sum() == pytest.approx(1.0, abs=1e-4)  # the choice is over these very ids
        assert len(branch_sets(comp_ids)) == len(completions)


def test_policy_acts_and_writes_queries(kind_policy):
    kind, policy = kind_policy
    search_ctx, item_ctx = contexts()[0], contexts()[1]
    proposals = policy.propose(search_ctx, 2, np.random.default_rng(0))
    assert proposals and all(p.action.startswith("search[") for p in proposals)
    assert all(np.isfinite(p.logprob) for p in proposals)
    assert policy.act(item_ctx, np.random.default_rng(1)) in item_ctx.available_actions


def test_self_critique_in_chat_format(kind_policy):
    from webgrove.agents.critics import LLMCritic

    kind, policy = kind_policy
    ctx = contexts()[2]
    values = LLMCritic(policy).rank(ctx, ctx.available_actions)
    assert len(values) == len(ctx.available_actions) and all(0.0 <= v <= 1.0 for v in values)


def test_raw_path_is_unchanged_for_our_tokenizer(hf_policy, results_ctx, item_ctx, search_ctx):
    """Our byte-level tokenizer: prompt and completion tokenize apart exactly as joined (the proof
    in `splits_at_the_boundary`), so the policy keeps the ids, and the numbers, it had before."""
    tok = hf_policy.tokenizer
    assert hf_policy.prompt_format == "raw"
    for ctx in (results_ctx, item_ctx, search_ctx, *contexts()):
        for prompt, completions in ((policy_prompt(ctx), [action_completion(a) for a in ctx.available_actions]),
                                    (critic_prompt(ctx, ctx.available_actions), [" 1", " 2"])):
            assert splits_at_the_boundary(tok, prompt, completions)
            alone = tok(prompt)["input_ids"]
            apart = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in completions]
            assert joined_ids(tok, prompt, completions, "raw") == [alone + a for a in apart]
            assert hf_policy._encode(prompt, completions, True) == (alone, apart)


def test_boundary_proof_applies_only_where_it_holds(hf_policy, kind_tokenizer):
    kind, tokenizer = kind_tokenizer
    prompt, completions = policy_prompt(contexts()[1]), [" click[red]", " click[large]"]
    assert not splits_at_the_boundary(tokenizer, prompt, completions)  # other designs go the joined way
    ours = hf_policy.tokenizer
    assert splits_at_the_boundary(ours, prompt, completions)
    assert not splits_at_the_boundary(ours, prompt + " ", completions)  # a prompt ending in a space
    assert not splits_at_the_boundary(ours, prompt, ["click[red]"])  # a completion with no leading space
    prepending = copy.deepcopy(ours)  # a normalizer that does not split at the boundary
    prepending.backend_tokenizer.normalizer = normalizers.Sequence([ours.backend_tokenizer.normalizer,
                                                                    normalizers.Prepend("^")])
    assert not splits_at_the_boundary(prepending, prompt, completions)


def test_policy_args_prompt_format(tiny_model_dir):
    from webgrove.agents.specs import PolicyArgs

    with pytest.raises(UsageError, match="--prompt-format"):
        PolicyArgs(policy="rule", prompt_format="jinja")
    assert PolicyArgs(policy=str(tiny_model_dir), prompt_format="raw").make_policy().prompt_format == "raw"
    with pytest.raises(UsageError, match="no chat template"):
        PolicyArgs(policy=str(tiny_model_dir), prompt_format="chat").make_policy()
