import math
import socket
import time

import numpy as np
import pytest

from webgrove.agents import openai_api
from webgrove.agents.openai_api import LogprobsUnsupported, OpenAIPolicy, OpenAIServerError
from webgrove.agents.prompts import action_completion, policy_prompt, search_query


@pytest.fixture(autouse=True)
def _fresh_detection():
    """Each test detects its server's scoring mode anew (ports can be reused)."""
    openai_api.detected_scoring.clear()
    yield
    openai_api.detected_scoring.clear()


def _policy(server, **kwargs) -> OpenAIPolicy:
    kwargs.setdefault("backoff", 0.01)
    return OpenAIPolicy(server.base_url, server.model_name, **kwargs)


# -- a server with prompt log-probabilities (the tiny model behind it) ----------------

def test_scores_match_the_local_model(serve, tiny_lm, hf_policy, results_ctx):
    with serve(tiny_lm) as server:
        policy = _policy(server)
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


def test_one_prompt_servers_are_scored_one_request_per_candidate(serve, tiny_lm, hf_policy, results_ctx):
    with serve(tiny_lm, one_prompt=True, delay=0.05) as server:
        policy = _policy(server, max_concurrency=2)
        got = policy.logprobs(results_ctx, results_ctx.available_actions)
        assert policy.scoring == "echo_single" and policy.reference_logprobs
        assert [isinstance(body["prompt"], list) for _, body, _ in server.requests] == [True] + [False] * 5
        assert server.max_active == 2  # bounded concurrency
        # detected once per server: a second policy sends no list prompt again
        again = _policy(server).logprobs(results_ctx, results_ctx.available_actions[:2])
        assert len(server.requests) == 6 + 2
    prompt = policy_prompt(results_ctx)
    want = hf_policy.score_completions(prompt, [action_completion(a) for a in results_ctx.available_actions],
                                       add_eos=False)
    assert np.allclose(got, want, atol=1e-3) and np.allclose(again, want[:2], atol=1e-3)


# -- a server without prompt log-probabilities ----------------------------------------

class ChatterLM:
    """Writes the same text that is no action, whatever it is asked; no log-probabilities."""

    @staticmethod
    def sample(prompt, n, temperature, max_tokens, stop, seed):
        return [" I am not sure." if i % 3 else "" for i in range(n)]

    @staticmethod
    def echo(text):
        return {"text": text, "logprobs": None}


def test_unparseable_samples_go_to_the_env_as_invalid_actions(serve, results_ctx):
    with serve(ChatterLM()) as server:
        policy = _policy(server, num_samples=3)
        props = policy.propose(results_ctx, 3, np.random.default_rng(0))
        action = policy.act(results_ctx, np.random.default_rng(0))
        lps = policy.logprobs(results_ctx, [p.action for p in props])
    assert policy.scoring == "sampling"
    assert [p.action for p in props] == ["I am not sure.", ""] and action == "I am not sure."
    assert lps == [p.logprob for p in props] == pytest.approx([math.log(2 / 3), math.log(1 / 3)])


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


def test_a_server_that_never_answers_fails_after_the_request_timeout(results_ctx):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        policy = OpenAIPolicy(url, "m", timeout=0.3, max_retries=1, backoff=0.01)
        start = time.monotonic()
        with pytest.raises(OpenAIServerError, match=r"127\.0\.0\.1.*2 attempts.*no answer within 0\.3s"):
            policy.propose(results_ctx, 1, np.random.default_rng(0))
        assert time.monotonic() - start < 2.0
    finally:
        listener.close()


def test_the_policy_travels_to_other_processes(serve, toy_lm, results_ctx):
    import pickle

    with serve(toy_lm) as server:
        policy = _policy(server, logprobs=False, num_samples=4, max_concurrency=3)
        policy.propose(results_ctx, 1, np.random.default_rng(0))
        clone = pickle.loads(pickle.dumps(policy))
        assert clone.propose(results_ctx, 1, np.random.default_rng(0))  # its own lock and threads
        policy.close()
        policy.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="http"):
        OpenAIPolicy("localhost:8000", "m")
    with pytest.raises(ValueError, match="model_name"):
        OpenAIPolicy("http://127.0.0.1:1/v1", "")
    with pytest.raises(ValueError, match="chat"):
        OpenAIPolicy("http://127.0.0.1:1/v1", "m", api="chat", logprobs=True)
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIPolicy("http://127.0.0.1:1/v1", "m", max_concurrency=0)


# -- a live `transformers serve` (Hugging Face's server, not ours) ---------------------

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hf_server(tiny_model_dir, tmp_path_factory):
    """`transformers serve` on 127.0.0.1 serving the tiny model and a copy with a chat template.

    Yields (base_url, plain model name, chat model name); a model's name is its directory.
    """
    import json
    import os
    import shutil
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():  # `make test` installs it (the `all` extra)
        pytest.fail("the serving extra is not installed: pip install 'webgrove[serve]'")
    chat_dir = tmp_path_factory.mktemp("tiny-chat")
    shutil.copytree(tiny_model_dir, chat_dir, dirs_exist_ok=True)
    config = json.loads((chat_dir / "tokenizer_config.json").read_text())
    (chat_dir / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHAT_TEMPLATE}))
    port = _free_port()
    cli = Path(sys.executable).with_name("transformers")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    log = open(tmp_path_factory.mktemp("serve-log") / "serve.log", "w+")
    proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                             "--log-level", "error"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"transformers serve did not start:\n{log.read()[-3000:]}") from None
                time.sleep(0.3)
        yield base_url, str(tiny_model_dir), str(chat_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _hf_policy(hf_server, chat: bool = False, **kwargs) -> OpenAIPolicy:
    base_url, plain, chat_model = hf_server
    kwargs.setdefault("backoff", 0.05)
    kwargs.setdefault("max_tokens", 12)
    return OpenAIPolicy(base_url, chat_model if chat else plain, api="chat" if chat else "completions", **kwargs)


@pytest.mark.slow
def test_transformers_serve_acting_falls_back_to_sampling_once(hf_server, results_ctx):
    policy = _hf_policy(hf_server, num_samples=3)
    props = policy.propose(results_ctx, 2, np.random.default_rng(0))
    # the server refuses a list of prompts (400) and answers a single one with no log-probabilities
    assert policy.scoring == "sampling" and policy.supports_logprobs is False and not policy.reference_logprobs
    # a proposal's log-prob is log(count / 3) over the 3 samples; one proposal means all 3 agreed
    counts = [round(3 * math.exp(p.logprob)) for p in props]
    assert [p.logprob for p in props] == pytest.approx([math.log(c / 3) for c in counts])
    assert len({p.action for p in props}) == len(props) and all(c >= 1 for c in counts) and sum(counts) <= 3
    assert counts == [3] if len(props) == 1 else len(props) == 2
    lps = policy.logprobs(results_ctx, [p.action for p in props])  # the same samples: no new request
    assert lps == pytest.approx([p.logprob for p in props])
    second = _hf_policy(hf_server, num_samples=1)
    assert second.scoring == "sampling"  # remembered for this server: no detection requests
    second.propose(results_ctx, 1, np.random.default_rng(1))
    assert second.requests == 1


@pytest.mark.slow
def test_transformers_serve_runs_a_whole_episode_and_a_search(hf_server, item_ctx):
    """The untrained model writes no valid action: the episode goes on with invalid actions."""
    from webgrove.agents.critics import LLMCritic, rank_values
    from webgrove.search.mcts import SearchConfig, search_episode
    from webgrove.agents.episode import run_episode
    from webgrove.envs.make import make_env

    policy = _hf_policy(hf_server, num_samples=2, temperature=1.0)
    env = make_env("webgrove/WebShop-v0", split="test", num_products=200)
    try:
        result = run_episode(env, lambda ctx: policy.act(ctx, np.random.default_rng(0)), goal_id=0, seed=0)
        assert result.steps == 15 and result.errors >= 1  # the time limit, not an exception
        critic = LLMCritic(policy, orders=1)  # one listing: n - 1 greedy answers per ranking
        env.reset(seed=1, options={"goal_id": 1})
        tree = search_episode(env, policy, critic, SearchConfig(simulations=2, k=2, max_depth=3, seed=1))
    finally:
        env.close()
    nodes = tree.records()[1:]
    assert nodes and all(math.isfinite(n.logprob) and n.logprob <= 0 for n in nodes)  # frequency estimates
    # the self-critique asks the server for its greedy answers (useless from an untrained model)
    sent, failures = policy.requests, critic.parse_failures
    values = critic.rank(item_ctx, item_ctx.available_actions[2:6])
    assert sorted(values) == sorted(rank_values(4)) and policy.requests == sent + 3
    assert critic.parse_failures == failures + 3


@pytest.mark.slow
def test_transformers_serve_chat_completions(hf_server, item_ctx):
    policy = _hf_policy(hf_server, chat=True, num_samples=3, max_concurrency=3)
    props = policy.propose(item_ctx, 3, np.random.default_rng(0))
    assert policy.scoring == "sampling" and 1 <= len(props) <= 3
    assert policy.requests == 3  # the server ignores "n": one request per sample
    # a model without a chat template: the server fails, and the error names the URL
    plain = _hf_policy(hf_server, chat=False, api_key_env=None, max_retries=0)
    plain.api = "chat"
    with pytest.raises(OpenAIServerError, match=r"127\.0\.0\.1:\d+/v1/chat/completions"):
        plain.complete("hi", 1, None, 0.0, 4, ["\n"])
