"""A policy served by any OpenAI-compatible HTTP server (vLLM, llama.cpp server, ...).

Only the standard library is used (urllib). Two ways to get action probabilities:

- **scoring** (servers that return prompt log-probabilities): one `/completions`
  request with `echo: true, logprobs: 1, max_tokens: 1` and one prompt per candidate
  (`policy_prompt + " " + action`); an action's log-probability is the sum of the echoed
  token log-probabilities whose `text_offset` lies at or after the end of the prompt
  (the server's own tokenization; no eos term, unlike `HFPolicy`). vLLM supports this;
  llama.cpp's server returns generated-token log-probabilities only, which is detected;
- **sampling** (everything else, or `api="chat"`): `num_samples` completions are drawn,
  parsed with `webgrove.agents.prompts.parse_action`, and counted; an action's log-probability is
  log(count / n), with unseen actions at log(0.5 / n). Samples are cached per prompt so
  `propose` and `logprobs` at the same step agree; `propose` orders the sampled actions
  by Gumbel-top-k on those estimates, as in scoring mode.

`logprobs=None` (the default) detects which applies on first use. Requests time out
after `timeout` seconds; connection errors, timeouts, 429 and 5xx answers are retried
`max_retries` times with exponential backoff (`backoff` × 2^attempt seconds); other
4xx answers fail at once. Failures raise `OpenAIServerError` naming the URL.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import numpy as np

from webgrove.agents.base import Proposal, StepContext
from webgrove.agents.hf import QUERY_PREFIX, gumbel_top_k
from webgrove.agents.prompts import (action_completion, is_search_template, parse_action, policy_prompt,
                            search_actions)

POLICY_SYSTEM = "Reply with exactly one action from the Actions line, nothing else."
APIS = ("completions", "chat")
SAMPLE_CACHE_SIZE = 4096  # prompts whose samples are kept (sampling mode)


class OpenAIServerError(RuntimeError):
    """The server could not be reached or answered with an error (`status`: its HTTP code, if any)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LogprobsUnsupported(RuntimeError):
    """The server does not return log-probabilities of prompt (echoed) tokens."""


class OpenAIPolicy:
    """A `Policy` over an OpenAI-compatible server (see the module docstring).

    Args:
        base_url: the API root, e.g. "http://127.0.0.1:8000/v1".
        model_name: the served model's name (the request's "model").
        api_key_env: environment variable holding the API key (sent as a Bearer token if set).
        timeout: seconds per HTTP request.
        max_retries: retries after the first attempt on connection errors, timeouts, 429, 5xx.
        temperature: sampling temperature (0 = greedy).
        logprobs: True to require echo log-probabilities, False to always sample, None to detect.
        api: "completions" or "chat" (chat always samples).
        num_samples: completions drawn per step in sampling mode.
        max_tokens: completion length limit for sampled actions.
        backoff: first retry delay in seconds (doubles each retry).
    """

    def __init__(self, base_url: str, model_name: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 30, max_retries: int = 3, temperature: float = 1.0,
                 logprobs: bool | None = None, api: str = "completions", num_samples: int = 8,
                 max_tokens: int = 48, max_query_tokens: int = 40, backoff: float = 0.5):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not model_name:
            raise ValueError("model_name is required for an OpenAI-compatible server")
        if api not in APIS:
            raise ValueError(f"api must be one of {APIS}, got {api!r}")
        if api == "chat" and logprobs:
            raise ValueError("the chat API cannot score actions; use api='completions' for logprobs=True")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.name = f"openai:{model_name}@{self.base_url}"
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout = timeout
        self.max_retries = max_retries
        self.temperature = temperature
        self.supports_logprobs = False if api == "chat" else logprobs
        self._require_logprobs = bool(logprobs)
        self.api = api
        self.num_samples = num_samples
        self.max_tokens = max_tokens
        self.max_query_tokens = max_query_tokens
        self.backoff = backoff
        self.requests = 0  # HTTP requests sent, retries included
        self._samples: dict[str, tuple[int, Counter]] = {}

    # -- HTTP ----------------------------------------------------------------------

    def _post(self, endpoint: str, body: dict) -> dict:
        url = f"{self.base_url}/{endpoint}"
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code == 429 or e.code >= 500:
                    last = f"HTTP {e.code}: {detail}"
                    continue
                raise OpenAIServerError(f"{url} answered HTTP {e.code}: {detail}", status=e.code) from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
                last = str(getattr(e, "reason", e))
            except json.JSONDecodeError as e:
                raise OpenAIServerError(f"{url} answered with invalid JSON: {e}") from None
        raise OpenAIServerError(
            f"OpenAI-compatible server at {url} failed after {self.max_retries + 1} attempts: {last}")

    # -- scoring ---------------------------------------------------------------------

    def score_completions(self, prompt: str, completions: list[str]) -> list[float]:
        """Sum of the server's log-probabilities of each completion's tokens after `prompt`.

        Raises:
            LogprobsUnsupported: the server does not return echoed prompt log-probabilities.
        """
        if self.supports_logprobs is False:
            raise LogprobsUnsupported(f"{self.base_url} does not return prompt log-probabilities")
        if not completions:
            return []
        body = {"model": self.model_name, "prompt": [prompt + c for c in completions], "echo": True,
                "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        try:
            answer = self._post("completions", body)
        except OpenAIServerError as e:
            if self.supports_logprobs is None and e.status is not None and 400 <= e.status < 500:
                self.supports_logprobs = False  # e.g. a server that rejects "echo"
                raise LogprobsUnsupported(f"{self.base_url} rejected an echo request: {e}") from e
            raise
        try:
            scores = _echo_scores(answer, prompt, completions)
        except LogprobsUnsupported:
            if self.supports_logprobs is None:
                self.supports_logprobs = False
            raise
        self.supports_logprobs = True
        return scores

    def _can_score(self, prompt: str, completions: list[str]) -> list[float] | None:
        """Scores when the server supports them (detecting on first use), else None."""
        try:
            return self.score_completions(prompt, completions)
        except LogprobsUnsupported:
            if self._require_logprobs:
                raise
            return None

    # -- sampling --------------------------------------------------------------------

    def complete(self, prompt: str, n: int, rng: np.random.Generator | None, temperature: float,
                 max_tokens: int, stop: list[str], system: str | None = None) -> list[str]:
        """n completion texts of `prompt` (fewer only if the server returns none).

        Servers that ignore "n" (e.g. llama.cpp) are asked again until n texts arrive.
        """
        texts: list[str] = []
        for _ in range(n):  # at most n requests
            body: dict[str, Any] = {"model": self.model_name, "n": n - len(texts), "temperature": temperature,
                                    "max_tokens": max_tokens, "stop": stop}
            if rng is not None:
                body["seed"] = int(rng.integers(0, 2**31 - 1))
            if self.api == "chat":
                messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": prompt}]
                answer = self._post("chat/completions", {**body, "messages": messages})
                new = [c["message"]["content"] or "" for c in answer.get("choices", [])]
            else:
                answer = self._post("completions", {**body, "prompt": prompt})
                new = [c.get("text", "") for c in answer.get("choices", [])]
            if not new:
                break
            texts += new
            if len(texts) >= n:
                break
        return texts[:n]

    def _sample_counts(self, ctx: StepContext, prompt: str,
                       rng: np.random.Generator | None) -> tuple[int, Counter]:
        """(samples drawn, counts of the valid actions among them) at this prompt, cached."""
        if prompt not in self._samples:
            n = self.num_samples if self.temperature > 0 else 1
            texts = self.complete(prompt, n, rng if rng is not None else np.random.default_rng(0),
                                  self.temperature, self.max_tokens, ["\n"], POLICY_SYSTEM)
            counts = Counter(a for a in (parse_action(t, ctx.available_actions) for t in texts) if a is not None)
            if len(self._samples) >= SAMPLE_CACHE_SIZE:
                self._samples.pop(next(iter(self._samples)))  # the oldest prompt
            self._samples[prompt] = (len(texts), counts)
        return self._samples[prompt]

    @staticmethod
    def _frequency_logprob(n: int, counts: Counter, action: str) -> float:
        return math.log(max(counts.get(action, 0), 0.5) / max(n, 1))

    # -- Policy ----------------------------------------------------------------------

    def propose(self, ctx: StepContext, k: int, rng: np.random.Generator) -> list[Proposal]:
        """Up to k distinct valid actions, the preferred one first."""
        if k < 1:
            return []
        prompt = policy_prompt(ctx)
        clicks = list(dict.fromkeys(a for a in ctx.available_actions if not is_search_template(a)))
        can_search = any(is_search_template(a) for a in ctx.available_actions)
        if self.supports_logprobs is not False:
            actions = clicks
            if can_search:
                n = 2 * k if self.temperature > 0 else 1
                queries = self.complete(prompt + QUERY_PREFIX, n, rng, self.temperature,
                                        self.max_query_tokens, ["]", "\n"])
                actions = list(dict.fromkeys(actions + search_actions(queries)))
            scores = self._can_score(prompt, [action_completion(a) for a in actions]) if actions else []
            if scores is not None:
                order = gumbel_top_k(scores, k, self.temperature, rng)
                return [Proposal(actions[i], scores[i]) for i in order]
        n, counts = self._sample_counts(ctx, prompt, rng)
        seen = list(counts)  # first-seen order breaks ties at temperature 0
        scores = [self._frequency_logprob(n, counts, a) for a in seen]
        return [Proposal(seen[i], scores[i]) for i in gumbel_top_k(scores, k, self.temperature, rng)]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """Server log-probabilities of `actions`, or sample-frequency estimates (see module doc)."""
        prompt = policy_prompt(ctx)
        if self.supports_logprobs is not False:
            scores = self._can_score(prompt, [action_completion(a) for a in actions])
            if scores is not None:
                return scores
        n, counts = self._sample_counts(ctx, prompt, None)
        return [self._frequency_logprob(n, counts, a) for a in actions]

    def act(self, ctx: StepContext, rng: np.random.Generator) -> str:
        proposals = self.propose(ctx, 1, rng)
        if not proposals:
            raise ValueError(f"{self.name} produced no valid action")
        return proposals[0].action


def _echo_scores(answer: dict, prompt: str, completions: list[str]) -> list[float]:
    """Completion log-probabilities from an echo answer (one choice per prompt, by index)."""
    choices = sorted(answer.get("choices", []), key=lambda c: c.get("index", 0))
    if len(choices) != len(completions):
        raise LogprobsUnsupported(f"expected {len(completions)} choices, got {len(choices)}")
    start = len(prompt)
    scores = []
    for choice, completion in zip(choices, completions):
        lp = choice.get("logprobs") or {}
        tokens, token_lps = lp.get("tokens"), lp.get("token_logprobs")
        if not tokens or not token_lps:
            raise LogprobsUnsupported("the answer has no token log-probabilities")
        offsets = lp.get("text_offset")
        if offsets is None:  # rebuild from token texts
            offsets, pos = [], 0
            for t in tokens:
                offsets.append(pos)
                pos += len(t)
        end = start + len(completion)
        echoed = "".join(tokens)
        if len(echoed) < end or offsets[-1] < start:
            # llama.cpp and others return generated tokens only: the prompt was not echoed
            raise LogprobsUnsupported("the server did not echo the prompt's token log-probabilities")
        picked = [x for off, x in zip(offsets, token_lps) if start <= off < end]
        if not picked or any(x is None for x in picked):
            raise LogprobsUnsupported("missing log-probabilities for the completion tokens")
        scores.append(float(math.fsum(picked)))
    return scores
