import math

import numpy as np
import pytest

from webgrove.agents.base import Proposal, StepContext
from webgrove.agents.hf import HFPolicy, gumbel_top_k
from webgrove.agents.prompts import action_completion, policy_prompt, search_actions, search_query


def _reference_logprob(policy: HFPolicy, prompt: str, completion: str) -> float:
    """log p(completion + eos | prompt) from the model's own loss, computed independently."""
    import torch

    tok = policy.tokenizer
    p = tok(prompt)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p + c])
    labels = ids.clone()
    labels[0, :len(p)] = -100
    with torch.inference_mode():
        loss = policy.model(input_ids=ids, labels=labels).loss  # mean over the completion tokens
    return -float(loss) * len(c)


def test_runs_on_the_cpu_here(hf_policy):
    assert hf_policy.device.type == "cpu"


def test_propose_returns_k_distinct_valid_actions(hf_policy, results_ctx):
    props = hf_policy.propose(results_ctx, 3, np.random.default_rng(0))
    assert len(props) == 3 and all(isinstance(p, Proposal) for p in props)
    assert len({p.action for p in props}) == 3
    assert all(p.action in results_ctx.available_actions for p in props)
    assert all(math.isfinite(p.logprob) and p.logprob < 0 for p in props)
    # k larger than the choice set: every action once
    everything = hf_policy.propose(results_ctx, 50, np.random.default_rng(0))
    assert sorted(p.action for p in everything) == sorted(results_ctx.available_actions)


def test_logprobs_match_an_independent_computation(hf_policy, item_ctx):
    actions = ["click[large]", "click[buy now]", "search[a query that is not available]"]
    got = hf_policy.logprobs(item_ctx, actions)
    prompt = policy_prompt(item_ctx)
    want = [_reference_logprob(hf_policy, prompt, action_completion(a)) for a in actions]
    assert np.allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_batched_and_unbatched_scoring_agree(tiny_model_dir, item_ctx, arch):
    from transformers import AutoTokenizer

    from webgrove.training.tiny import build_model

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = build_model(tok, size="tiny", arch=arch, seed=1)
    actions = item_ctx.available_actions + ["search[red cotton shirt large]"]  # uneven lengths
    batched = HFPolicy(model, tok, device="cpu", batching=True)
    one_by_one = HFPolicy(model, tok, device="cpu", batching=False)
    chunked = HFPolicy(model, tok, device="cpu", batching=True, batch_size=3)
    a = batched.logprobs(item_ctx, actions)
    b = one_by_one.logprobs(item_ctx, actions)
    c = chunked.logprobs(item_ctx, actions)
    assert np.allclose(a, b, atol=1e-4) and np.allclose(a, c, atol=1e-4)
    assert batched.forward_calls == 2  # the prompt once, all candidates together
    assert one_by_one.forward_calls == len(actions)
    assert chunked.forward_calls == 1 + math.ceil(len(actions) / 3)


def test_greedy_order_is_by_choice_logprob(tiny_model_dir, results_ctx):
    policy = HFPolicy(tiny_model_dir, device="cpu", temperature=0.0)
    props = policy.propose(results_ctx, 5, np.random.default_rng(0))
    completions = [action_completion(a) for a in results_ctx.available_actions]
    scores, choice = policy.score_choices(policy_prompt(results_ctx), completions)
    order = np.argsort(choice, kind="stable")[::-1]
    assert [p.action for p in props] == [results_ctx.available_actions[i] for i in order[:5]]
    assert [p.logprob for p in props] == pytest.approx([scores[i] for i in order[:5]])
    assert policy.act(results_ctx, np.random.default_rng(1)) == props[0].action


def test_branch_sets_follow_the_token_trie():
    from webgrove.agents.hf import branch_sets

    sets = branch_sets([[5, 1, 2], [5, 1, 3], [6, 9]])
    assert sets == [[[5, 6], [1], [2, 3]], [[5, 6], [1], [2, 3]], [[5, 6], [9]]]


@pytest.mark.parametrize("batching", [True, False])
def test_choice_logprobs_are_a_distribution_without_length_bias(tiny_model_dir, results_ctx, batching):
    import torch

    policy = HFPolicy(tiny_model_dir, device="cpu", batching=batching, batch_size=4)
    prompt = policy_prompt(results_ctx)
    completions = [action_completion(a) for a in results_ctx.available_actions]
    scores, choice = policy.score_choices(prompt, completions)
    assert sum(math.exp(c) for c in choice) == pytest.approx(1.0, abs=1e-4)
    assert all(c >= s - 1e-5 for s, c in zip(scores, choice))  # renormalising only raises
    # an independent computation: constrained decoding's probability, token by token
    tok = policy.tokenizer
    p_ids = tok(prompt)["input_ids"]
    ids = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in completions]
    for i, c in enumerate(ids):
        total = 0.0
        for t in range(len(c)):
            allowed = sorted({x[t] for x in ids if len(x) > t and x[:t] == c[:t]})
            with torch.inference_mode():
                logp = torch.log_softmax(policy.model(input_ids=torch.tensor([p_ids + c[:t]])).logits[0, -1], -1)
            total += float(logp[c[t]] - torch.logsumexp(logp[allowed], 0))
        assert choice[i] == pytest.approx(total, abs=1e-3)


def test_sampling_is_deterministic_per_seed(hf_policy, results_ctx):
    def run(seed):
        return [p.action for p in hf_policy.propose(results_ctx, 3, np.random.default_rng(seed))]

    assert run(7) == run(7)
    assert len({tuple(run(s)) for s in range(8)}) > 1


def test_search_queries_are_generated(hf_policy, search_ctx):
    props = hf_policy.propose(search_ctx, 3, np.random.default_rng(0))
    # propose samples 2k queries first, from the same rng state
    sampled = search_actions(hf_policy.sample_queries(policy_prompt(search_ctx), 6, np.random.default_rng(0)))
    assert len(props) == min(3, len(sampled)) and {p.action for p in props} <= set(sampled)
    assert len({p.action for p in props}) == len(props)
    for p in props:
        q = search_query(p.action)
        assert q is not None and "]" not in q and "\n" not in q
        assert math.isfinite(p.logprob)
    # a proposal's log-probability is the same as scoring the action directly
    assert np.allclose([p.logprob for p in props], hf_policy.logprobs(search_ctx, [p.action for p in props]),
                       atol=1e-4)
    again = hf_policy.propose(search_ctx, 3, np.random.default_rng(0))
    assert [p.action for p in again] == [p.action for p in props]


def test_query_length_is_bounded(tiny_model_dir, search_ctx):
    policy = HFPolicy(tiny_model_dir, device="cpu", max_query_tokens=2, temperature=1.0)
    queries = policy.sample_queries(policy_prompt(search_ctx), 6, np.random.default_rng(3))
    assert len(queries) == 6
    tok = policy.tokenizer
    assert all(len(tok(q, add_special_tokens=False)["input_ids"]) <= 4 for q in queries)


def test_long_prompts_keep_their_end(tiny_model_dir, item_ctx):
    import torch

    policy = HFPolicy(tiny_model_dir, device="cpu")
    policy.max_positions = 48  # far less than the prompt: the oldest tokens are dropped
    actions = ["click[large]", "click[buy now]"]
    got = policy.logprobs(item_ctx, actions)
    tok = policy.tokenizer
    comps = [tok(action_completion(a), add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in actions]
    kept = tok(policy_prompt(item_ctx))["input_ids"][-(48 - max(map(len, comps))):]
    for lp, c in zip(got, comps):
        ids = torch.tensor([kept + c])
        assert ids.shape[1] <= 48
        with torch.inference_mode():
            logp = torch.log_softmax(policy.model(input_ids=ids).logits[0], -1)
        want = sum(float(logp[len(kept) - 1 + j, t]) for j, t in enumerate(c))
        assert lp == pytest.approx(want, abs=1e-3)


def test_scores_are_memoised_until_a_weight_changes(tiny_model_dir, item_ctx, results_ctx):
    import torch

    policy = HFPolicy(tiny_model_dir, device="cpu")
    prompt, comps = policy_prompt(item_ctx), [action_completion(a) for a in ("click[large]", "click[buy now]")]
    first = policy.score_choices(prompt, comps)
    calls = policy.forward_calls
    assert policy.score_choices(prompt, comps) == first and policy.cache_hits == 1
    assert policy.forward_calls == calls  # answered without the model
    policy.score_choices(prompt, comps[::-1])  # other candidates (in another order): computed
    policy.batching = False
    assert np.allclose(policy.score_choices(prompt, comps), first, atol=1e-4)  # other settings: computed
    assert policy.cache_hits == 1 and policy.forward_calls == calls + 2 + len(comps)
    policy.batching = True
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        next(policy.model.parameters()).mul_(1.5)
    changed = policy.score_choices(prompt, comps)
    assert policy.cache_hits == 1 and not np.allclose(changed, first)
    fresh = HFPolicy(tiny_model_dir, device="cpu", cache_size=0)
    fresh.score_choices(prompt, comps)
    fresh.score_choices(prompt, comps)
    assert fresh.cache_hits == 0 and fresh.forward_calls == 4
    small = HFPolicy(tiny_model_dir, device="cpu", cache_size=1)  # the least recently used goes first
    other = policy_prompt(results_ctx)
    for p in (prompt, other, prompt):
        small.score_choices(p, comps)
    assert small.cache_hits == 0 and small.forward_calls == 6


def test_gumbel_top_k_samples_the_softmax():
    scores = [math.log(0.6), math.log(0.3), math.log(0.1)]
    rng = np.random.default_rng(0)
    firsts = np.bincount([gumbel_top_k(scores, 1, 1.0, rng)[0] for _ in range(4000)], minlength=3) / 4000
    assert np.allclose(firsts, [0.6, 0.3, 0.1], atol=0.03)
    # lower temperature sharpens, temperature 0 is the argsort
    sharp = np.bincount([gumbel_top_k(scores, 1, 0.25, rng)[0] for _ in range(2000)], minlength=3) / 2000
    assert sharp[0] > 0.85
    assert gumbel_top_k(scores[::-1], 3, 0.0, rng) == [2, 1, 0]
    draws = [gumbel_top_k(scores, 3, 1.0, rng) for _ in range(50)]
    assert all(sorted(d) == [0, 1, 2] for d in draws)  # without replacement


def test_bad_inputs(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        HFPolicy(tmp_path)
    with pytest.raises(ValueError, match="tokenizer"):
        HFPolicy(HFPolicy(tiny_model_dir, device="cpu").model)
    with pytest.raises(ValueError, match="temperature"):
        HFPolicy(tiny_model_dir, temperature=-1)
    with pytest.raises(ValueError, match="cache_size"):
        HFPolicy(tiny_model_dir, cache_size=-1)


def test_plays_the_shop_env(hf_policy):
    import gymnasium as gym

    import webgrove.envs  # noqa: F401
    from webgrove.agents.base import context_from

    env = gym.make("webgrove/WebShop-v0", split="train", num_products=100)
    obs, info = env.reset(seed=0)
    rng, history = np.random.default_rng(0), []
    for _ in range(8):
        ctx = context_from(obs, info, history)
        action = hf_policy.act(ctx, rng)
        if "search[...]" in ctx.available_actions:
            assert search_query(action) is not None
        else:
            assert action in ctx.available_actions
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["error"] is None, (action, info["error"])
        history.append(action)
        if terminated or truncated:
            break
    assert len(history) >= 2
    env.close()



def test_sample_draws_once_from_the_choice_distribution_over_every_action(hf_policy, item_ctx):
    """One Gumbel-top-1 draw over every available action (so softmax(choice / T), see
    test_gumbel_top_k_samples_the_softmax), not over a shortlist; greedy at T = 0."""
    actions = item_ctx.available_actions
    _, choice = hf_policy.score_choices(policy_prompt(item_ctx), [action_completion(a) for a in actions])
    for temperature in (1.0, 0.5):
        for seed in range(5):
            want = actions[gumbel_top_k(choice, 1, temperature, np.random.default_rng(seed))[0]]
            assert hf_policy.sample(item_ctx, temperature, np.random.default_rng(seed)).action == want
    greedy = actions[int(np.argmax(choice))]
    assert hf_policy.sample(item_ctx, 0.0, np.random.default_rng(1)).action == greedy
    assert hf_policy.sample(StepContext("g", "o", []), 1.0, np.random.default_rng(0)) is None
    with pytest.raises(ValueError, match="temperature"):
        hf_policy.sample(item_ctx, -1.0, np.random.default_rng(0))


def test_mcts_rollouts_draw_from_the_policys_own_distribution(hf_policy, item_ctx):
    """A rollout step is the policy's own draw, not a second draw among k Gumbel proposals
    (which over-weights unlikely actions: each enters the shortlist more often than it is drawn)."""
    import gymnasium as gym

    import webgrove.envs  # noqa: F401  (registers the ids)
    from webgrove.search.mcts import MCTS, SearchConfig

    env = gym.make("webgrove/WebShop-v0")
    env.reset(seed=0)
    mcts = MCTS(env, hf_policy, None, SearchConfig(k=2, rollout_temperature=1.0))
    for seed in range(8):
        mcts.rng = np.random.default_rng(seed)
        want = hf_policy.sample(item_ctx, 1.0, np.random.default_rng(seed)).action
        assert mcts._rollout_action(item_ctx) == want
    env.close()
