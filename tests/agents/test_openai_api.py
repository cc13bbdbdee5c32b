import math
import time

import numpy as np
import pytest

from webgrove.agents.base import Policy
from webgrove.agents.openai_api import LogprobsUnsupported, OpenAIPolicy, OpenAIServerError
from webgrove.agents.prompts import action_completion, policy_prompt, search_query


def _policy(server, **kwargs) -> OpenAIPolicy:
    kwargs.setdefault("backoff", 0.01)
    return OpenAIPolicy(server.base_url, server.model_name, **kwargs)


# -- a server with prompt log-probabilities (the tiny model behind it) ----------------

def test_scores_match_the_local_model(serve, tiny_lm, hf_policy, results_ctx):
    with serve(tiny_lm) as server:
        policy = _policy(server)
        assert isinstance(policy, Policy)
        got = policy.logprobs(results_ctx, results_ctx.available_actions)
        assert policy.supports_logprobs is True
        assert len(server.requests) == 1  # all candidates in one request
        path, body, _ = server.requests[0]
        assert path == "/v1/completions" and body["echo"] is True and len(body["prompt"]) == 5
    prompt = policy_prompt(results_ctx)
    want = hf_policy.score_completions(prompt, [action_completion(a) for a in results_ctx.available_actions],
                                       add_eos=False)
    assert np.allclose(got, want, atol=1e-3)


def test_propose_with_logprobs(serve, tiny_lm, results_ctx):
    with serve(tiny_lm) as server:
        policy = _policy(server, temperature=0.0)
        props = policy.propose(results_ctx, 3, np.random.default_rng(0))
        scores = policy.logprobs(results_ctx, [p.action for p in props])
    assert len({p.action for p in props}) == 3
    assert all(p.action in results_ctx.available_actions for p in props)
    assert [p.logprob for p in props] == pytest.approx(scores)
    assert [p.logprob for p in props] == sorted((p.logprob for p in props), reverse=True)


def test_search_queries_are_sampled_then_scored(serve, tiny_lm, search_ctx):
    with serve(tiny_lm) as server:
        policy = _policy(server)
        props = policy.propose(search_ctx, 2, np.random.default_rng(0))
        paths = [(path, body.get("echo", False), str(body["prompt"])[-8:]) for path, body, _ in server.requests]
        scored = server.requests[1][1]["prompt"]  # prompt + " " + action for each distinct query
    assert len(props) == min(2, len(scored))
    assert all(any(s.endswith(" " + p.action) for s in scored) for p in props)
    assert all(search_query(p.action) is not None and math.isfinite(p.logprob) for p in props)
    assert paths[0] == ("/v1/completions", False, " search[")  # sampled after the query prefix
    assert paths[1][1] is True  # then scored


# -- a server without prompt log-probabilities ----------------------------------------

def test_sampling_mode_counts_frequencies(serve, toy_lm, results_ctx):
    with serve(toy_lm) as server:
        policy = _policy(server, num_samples=40)
        props = policy.propose(results_ctx, 3, np.random.default_rng(0))
        assert policy.supports_logprobs is False  # detected: the prompt was not echoed
        lps = policy.logprobs(results_ctx, results_ctx.available_actions + ["click[not there]"])
        n_requests = len(server.requests)
        firsts = [policy.propose(results_ctx, 1, np.random.default_rng(s))[0].action for s in range(200)]
        assert len(server.requests) == n_requests  # samples are cached per prompt
    assert len({p.action for p in props}) == 3
    assert [p.logprob for p in props] == [lps[results_ctx.available_actions.index(p.action)] for p in props]
    # ToyLM picks the i-th action with probability ∝ 1/(i+1): the first is the most frequent
    assert int(np.argmax(lps)) == 0
    counts = np.round(np.exp(lps[:-1]) * 40)
    assert np.allclose(np.exp(lps[:-1]) * 40, counts) and counts.sum() <= 40  # chatter is dropped
    assert lps[-1] == pytest.approx(math.log(0.5 / 40))
    # proposals are drawn in proportion to the counts
    share = firsts.count("click[back to search]") / len(firsts)
    assert share == pytest.approx(counts[0] / counts.sum(), abs=0.1)


def test_chat_api_samples(serve, toy_lm, search_ctx):
    with serve(toy_lm) as server:
        policy = _policy(server, api="chat", num_samples=5)
        props = policy.propose(search_ctx, 2, np.random.default_rng(1))
        path, body, _ = server.requests[0]
    assert path == "/v1/chat/completions" and body["messages"][0]["role"] == "system"
    assert props[0].action == "search[i need a large]"  # the toy writes the goal's first words
    assert len(props) == 1  # one distinct query; one answer in ten is chatter
    assert any(props[0].logprob == pytest.approx(math.log(c / 5)) for c in range(1, 6))


def test_requiring_logprobs_from_a_server_without_them_fails(serve, toy_lm, results_ctx):
    with serve(toy_lm) as server:
        policy = _policy(server, logprobs=True)
        with pytest.raises(LogprobsUnsupported):
            policy.logprobs(results_ctx, ["click[next >]"])


# -- failures ---------------------------------------------------------------------------

def test_retries_after_server_errors(serve, tiny_lm, results_ctx):
    with serve(tiny_lm, fail_first=2) as server:
        policy = _policy(server, max_retries=3)
        lps = policy.logprobs(results_ctx, ["click[next >]"])
        assert len(server.requests) == 3
    assert math.isfinite(lps[0])


def test_gives_up_after_max_retries(serve, tiny_lm, results_ctx):
    with serve(tiny_lm, fail_first=10) as server:
        policy = _policy(server, max_retries=2)
        with pytest.raises(OpenAIServerError, match="failed after 3 attempts: HTTP 500"):
            policy.logprobs(results_ctx, ["click[next >]"])
        assert len(server.requests) == 3


def test_down_server_error_names_the_url(closed_port_url, results_ctx):
    policy = OpenAIPolicy(closed_port_url, "m", max_retries=2, backoff=0.01, timeout=2)
    start = time.monotonic()
    with pytest.raises(OpenAIServerError) as err:
        policy.propose(results_ctx, 2, np.random.default_rng(0))
    assert f"{closed_port_url}/completions" in str(err.value) and "3 attempts" in str(err.value)
    assert policy.requests == 3
    assert time.monotonic() - start < 5


def test_timeouts_are_retried_then_reported(serve, tiny_lm, results_ctx):
    with serve(tiny_lm, delay=1.0) as server:
        policy = _policy(server, timeout=0.2, max_retries=1)
        start = time.monotonic()
        with pytest.raises(OpenAIServerError, match="2 attempts"):
            policy.logprobs(results_ctx, ["click[next >]"])
        assert time.monotonic() - start < 1.5
        assert policy.requests == 2


def test_client_errors_are_not_retried(serve, tiny_lm, results_ctx):
    with serve(tiny_lm) as server:
        policy = OpenAIPolicy(server.base_url, "no-such-model", logprobs=True, backoff=0.01)
        with pytest.raises(OpenAIServerError, match="HTTP 404.*not found"):
            policy.logprobs(results_ctx, ["click[next >]"])
        assert len(server.requests) == 1


def test_api_key_is_sent(serve, tiny_lm, results_ctx, monkeypatch):
    monkeypatch.setenv("WEBGROVE_TEST_KEY", "sk-test")
    with serve(tiny_lm) as server:
        _policy(server, api_key_env="WEBGROVE_TEST_KEY").logprobs(results_ctx, ["click[next >]"])
        assert server.requests[0][2] == "Bearer sk-test"


def test_bad_arguments():
    with pytest.raises(ValueError, match="http"):
        OpenAIPolicy("localhost:8000", "m")
    with pytest.raises(ValueError, match="model_name"):
        OpenAIPolicy("http://127.0.0.1:1/v1", "")
    with pytest.raises(ValueError, match="chat"):
        OpenAIPolicy("http://127.0.0.1:1/v1", "m", api="chat", logprobs=True)
