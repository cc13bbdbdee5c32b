import numpy as np
import pytest

from webgrove.agents.base import StepContext
from webgrove.agents.critics import LexicalCritic, LLMCritic, NoCritic, rank_values, state_key
from webgrove.agents.openai_api import OpenAIPolicy
from webgrove.agents.prompts import critic_completion, critic_prompt


def test_rank_values_mapping():
    assert rank_values(1) == [1.0]
    assert rank_values(2) == [1.0, 0.0]
    assert rank_values(5) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_state_key_covers_goal_observation_history(item_ctx):
    base = state_key(item_ctx)
    assert base == state_key(StepContext(item_ctx.goal, item_ctx.observation, [], list(item_ctx.history)))
    assert base != state_key(StepContext(item_ctx.goal + "!", item_ctx.observation, [], item_ctx.history))
    assert base != state_key(StepContext(item_ctx.goal, item_ctx.observation + "!", [], item_ctx.history))
    assert base != state_key(StepContext(item_ctx.goal, item_ctx.observation, [], item_ctx.history[:1]))
    # history boundaries matter: ["ab", "c"] is not ["a", "bc"]
    assert state_key(StepContext("g", "o", [], ["ab", "c"])) != state_key(StepContext("g", "o", [], ["a", "bc"]))


def test_llm_critic_on_the_tiny_model(hf_policy, item_ctx):
    critic = LLMCritic(hf_policy, orders=1)  # the raw critique, in the order given
    cands = ["click[small]", "click[large]", "click[red]", "click[buy now]"]
    values = critic.rank(item_ctx, cands)
    assert sorted(values) == rank_values(4)[::-1]  # a permutation of the documented values
    # the best candidate is the model's most likely first answer
    scores = hf_policy.score_completions(critic_prompt(item_ctx, cands), [critic_completion(i) for i in range(4)])
    assert values[int(np.argmax(scores))] == 1.0
    # and the second best is the model's pick once the best is removed
    rest = [c for c, v in zip(cands, values) if v < 1.0]
    scores2 = hf_policy.score_completions(critic_prompt(item_ctx, rest), [critic_completion(i) for i in range(3)])
    assert values[cands.index(rest[int(np.argmax(scores2))])] == pytest.approx(2 / 3)
    assert critic.rank(item_ctx, ["click[buy now]"]) == [1.0]  # alone: 1.0, whatever it was among others


def test_llm_critic_cache_is_per_candidate_set(hf_policy, item_ctx):
    """A rank only means something within its set: a subset is valued anew, not read from
    the values the bigger set gave (a middle rank 0.5 cannot appear among two candidates)."""
    critic = LLMCritic(hf_policy, orders=1)
    cands = ["click[small]", "click[large]", "click[red]"]
    values = critic.rank(item_ctx, cands)
    middle = cands[values.index(0.5)]
    other = next(c for c in cands if c != middle)
    assert sorted(critic.rank(item_ctx, [middle, other])) == [0.0, 1.0]
    assert critic.rank(item_ctx, [middle, other]) == LLMCritic(hf_policy, orders=1).rank(item_ctx, [middle, other])
    assert critic.cache_misses == 2


def test_debiased_critique_averages_over_orders(hf_policy, item_ctx):
    from webgrove.agents.critics import orderings

    cands = ["click[small]", "click[large]", "click[red]", "click[buy now]"]
    assert orderings(cands, 2, "s") == [sorted(cands), sorted(cands)[::-1]]
    assert len(orderings(cands, 4, "s")) == 4 and orderings(cands, 4, "s") == orderings(cands, 4, "s")
    values = LLMCritic(hf_policy, orders=2).rank(item_ctx, cands)
    raw = [LLMCritic(hf_policy, orders=1).rank(item_ctx, listed) for listed in orderings(cands, 2, "s")]
    want = [(dict(zip(orderings(cands, 2, "s")[0], raw[0]))[a] + dict(zip(orderings(cands, 2, "s")[1], raw[1]))[a]) / 2
            for a in cands]
    assert values == pytest.approx(want)
    # the values depend on the set, not on the order it is given in
    assert LLMCritic(hf_policy).rank(item_ctx, cands[::-1]) == pytest.approx(values[::-1])


def test_llm_critic_cache(hf_policy, item_ctx):
    critic = LLMCritic(hf_policy)
    cands = ["click[small]", "click[large]", "click[buy now]"]
    first = critic.rank(item_ctx, cands)
    calls = hf_policy.forward_calls
    again = critic.rank(item_ctx, list(reversed(cands)))
    assert again == list(reversed(first))
    assert (critic.cache_hits, critic.cache_misses) == (1, 1)
    assert hf_policy.forward_calls == calls  # no model call for a cache hit
    other = StepContext(item_ctx.goal, item_ctx.observation, item_ctx.available_actions, [])
    critic.rank(other, cands)
    assert critic.cache_misses == 2


def test_llm_critic_over_a_server_with_logprobs(serve, tiny_lm, hf_policy, item_ctx):
    cands = ["click[small]", "click[large]", "click[red]"]
    with serve(tiny_lm) as server:
        values = LLMCritic(OpenAIPolicy(server.base_url, server.model_name), orders=1).rank(item_ctx, cands)
        assert all(body.get("echo") for _, body, _ in server.requests)
        assert len(server.requests) == 2  # n - 1 rounds
    assert sorted(values) == [0.0, 0.5, 1.0]
    # the server scores without eos: pick the same way from the local model
    scores = hf_policy.score_completions(critic_prompt(item_ctx, cands), [critic_completion(i) for i in range(3)],
                                         add_eos=False)
    assert values[int(np.argmax(scores))] == 1.0


def test_llm_critic_over_a_server_without_logprobs(serve, toy_lm, item_ctx):
    # ToyLM answers the candidate with most goal words, ties to the first: large, red, blue, small
    cands = ["click[blue]", "click[large]", "click[red]", "click[small]"]
    with serve(toy_lm) as server:
        critic = LLMCritic(OpenAIPolicy(server.base_url, server.model_name, backoff=0.01), orders=1)
        values = critic.rank(item_ctx, cands)
    assert values == pytest.approx([1 / 3, 1.0, 2 / 3, 0.0])
    assert critic.parse_failures == 0


def test_llm_critic_needs_a_model():
    from webgrove.agents.scripted import RulePolicy

    with pytest.raises(TypeError, match="no model"):
        LLMCritic(RulePolicy())


def test_lexical_critic_prefers_the_goal(results_ctx, item_ctx):
    critic = LexicalCritic()
    v = dict(zip(results_ctx.available_actions, critic.rank(results_ctx, results_ctx.available_actions)))
    assert v["click[b000syn042]"] > v["click[b000syn043]"]  # "red cotton shirt" vs "blue denim jeans"
    assert v["click[b000syn042]"] > v["click[next >]"] == v["click[back to search]"] == 0.1
    v = dict(zip(item_ctx.available_actions, critic.rank(item_ctx, item_ctx.available_actions)))
    assert v["click[large]"] == v["click[red]"] == 1.0
    assert v["click[small]"] == v["click[blue]"] == 0.0
    assert v["click[description]"] == 0.2
    assert v["click[buy now]"] == 0.5  # neither matching option chosen yet
    assert all(0.0 <= x <= 1.0 for x in v.values())


def test_lexical_critic_buy_now_after_options(item_ctx):
    critic = LexicalCritic()
    one = StepContext(item_ctx.goal, item_ctx.observation, item_ctx.available_actions,
                      item_ctx.history + ["click[large]"])
    both = StepContext(item_ctx.goal, item_ctx.observation, item_ctx.available_actions,
                       item_ctx.history + ["click[large]", "click[red]"])
    assert critic.rank(one, ["click[buy now]", "click[large]"]) == [0.75, 0.1]
    assert critic.rank(both, ["click[buy now]"]) == [1.0]


def test_lexical_critic_searches_and_cache(search_ctx):
    critic = LexicalCritic()
    good, bad = critic.rank(search_ctx, ["search[red cotton shirt]", "search[blue jeans]"])
    assert good == 1.0 and bad == 0.0
    critic.rank(search_ctx, ["search[red cotton shirt]"])
    assert (critic.cache_hits, critic.cache_misses) == (1, 1)


def test_no_critic(item_ctx):
    assert NoCritic().rank(item_ctx, ["click[large]", "click[red]"]) == [0.5, 0.5]


def test_learned_critic_specs(tmp_path, hf_policy):
    from webgrove.agents.specs import make_critic
    from webgrove.envs.errors import UsageError

    with pytest.raises(UsageError, match="holds no learned critic"):
        make_critic(str(tmp_path))
    with pytest.raises(UsageError, match="not a local model"):
        make_critic("self-learned", None)
    with pytest.raises(UsageError, match="critic.*holds no learned critic"):
        make_critic("self-learned", hf_policy)  # the tiny model has no critic/ next to it
