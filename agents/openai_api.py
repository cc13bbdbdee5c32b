"""A policy served by any OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp, `transformers serve`, ...).

Only the standard library is used (urllib, threads). Many env workers can share one
model server: `--policy openai --base-url URL --model-name NAME`.

**Scoring, in a fixed fallback order.** An action's log-probability is wanted for
acting (ranking candidates), for the self-critique (ranking " 1", " 2", ... answers) and
as the reference log-probability stored in trees for off-policy DPO. The policy finds
out once per server (per process; `detected_scoring`) which of these the server gives,
and remembers it:

1. ``"echo"`` -- prompt log-probabilities of every candidate in one `/completions`
   request (`echo: true, logprobs: 1, max_tokens: 1`, a list of prompts
   `policy_prompt + " " + action`); an action's log-probability is the sum of the echoed
   token log-probabilities whose `text_offset` lies at or after the end of the prompt
   (the server's own tokenization; no eos term, unlike `HFPolicy`). vLLM does this.
2. ``"echo_single"`` -- the same, one request per candidate (string prompts; at most
   `max_concurrency` in flight), for servers that echo but refuse a list of prompts.
3. ``"sampling"`` -- the server gives no prompt log-probabilities (llama.cpp returns
   generated-token ones only; `transformers serve` returns none and refuses list
   prompts with HTTP 400 and `max_tokens: 0` with 500): `num_samples` completions are
   drawn (one request each, in parallel, when the server ignores "n"), parsed with
   `webgrove.agents.prompts.parse_action` and counted; an action's log-probability is
   the estimate log(count / n), unseen actions log(0.5 / n). Samples are cached per
   prompt so `propose` and `logprobs` at the same step agree.

What a server without prompt log-probabilities (mode 3) can give:
- **acting**: yes, by sampling; proposals are the distinct valid sampled actions ranked
  by their frequencies. When no sample parses to a valid action, the sampled text itself
  is proposed and goes to the env as an invalid action (a no-op with `info["error"]`),
  so a step never crashes a run;
- **self-critique**: yes, approximately: `LLMCritic` falls back to the model's greedy
  answer (`complete`), parsed; an unparseable answer ranks the first candidate first;
- **reference log-probabilities**: no. The trees then store the frequency estimates,
  which are not the sequence log-probabilities DPO compares; train such pairs with
  `--ref-logps model` (computed once by the starting model). `reference_logprobs` tells
  which case a policy is in.

The chat API (`api="chat"`, `/v1/chat/completions`, for instruction-tuned models whose
server applies their chat template) always samples: chat servers do not echo prompts.

Requests time out after `timeout` seconds; connection errors, timeouts, 429 and 5xx
answers are retried `max_retries` times with exponential backoff (`backoff` x 2^attempt
seconds); other 4xx answers fail at once. Failures raise `OpenAIServerError` naming the
URL. A worker never has more than `max_concurrency` requests in flight.
"""
from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from webgrove.agents.base import Proposal, StepContext
from webgrove.agents.chat import POLICY_SYSTEM  # the chat messages HFPolicy builds use the same text
from webgrove.agents.hf import QUERY_PREFIX, gumbel_top_k
from webgrove.agents.prompts import (action_completion, is_search_template, parse_action, policy_prompt,
                                     search_actions)

APIS = ("completions", "chat")
SCORING_MODES = ("echo", "echo_single", "sampling")  # the fallback order (module docstring)
SAMPLE_CACHE_SIZE = 4096  # prompts whose samples are kept (sampling mode)
REFUSED_REQUEST = (400, 422)  # HTTP answers that mean "this server does not take that request"
MAX_INVALID_CHARS = 200  # an unparseable sample is sent to the env cut to this length

# (base_url, model_name) -> scoring mode found on first use; one detection per server and process
detected_scoring: dict[tuple[str, str], str] = {}
_DETECT_LOCK = threading.Lock()


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
        timeout: seconds to wait for each answer (the `--request-timeout` flag).
        max_retries: retries after the first attempt on connection errors, timeouts, 429, 5xx.
        temperature: sampling temperature (0 = greedy).
        logprobs: True to require prompt log-probabilities (modes echo / echo_single),
            False to always sample, None to detect.
        api: "completions" or "chat" (chat always samples).
        num_samples: completions drawn per step in sampling mode.
        max_tokens: completion length limit for sampled actions.
        max_query_tokens: completion length limit for sampled search queries.
        backoff: first retry delay in seconds (doubles each retry).
        max_concurrency: most requests this policy has in flight at once.
    """

    def __init__(self, base_url: str, model_name: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 30, max_retries: int = 3, temperature: float = 1.0,
                 logprobs: bool | None = None, api: str = "completions", num_samples: int = 8,
                 max_tokens: int = 48, max_query_tokens: int = 40, backoff: float = 0.5,
                 max_concurrency: int = 4):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not model_name:
            raise ValueError("model_name is required for an OpenAI-compatible server")
        if api not in APIS:
            raise ValueError(f"api must be one of {APIS}, got {api!r}")
        if api == "chat" and logprobs:
            raise ValueError("the chat API cannot score actions; use api='completions' for logprobs=True")
        if timeout <= 0 or max_retries < 0 or max_concurrency < 1:
            raise ValueError(f"need timeout > 0, max_retries >= 0, max_concurrency >= 1; got "
                             f"{timeout}, {max_retries}, {max_concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.name = f"openai:{model_name}@{self.base_url}"
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout = timeout
        self.max_retries = max_retries
        self.temperature = temperature
        self._forced = "sampling" if (api == "chat" or logprobs is False) else None
        self._require_logprobs = bool(logprobs)
        self.api = api
        self.num_samples = num_samples
        self.max_tokens = max_tokens
        self.max_query_tokens = max_query_tokens
        self.backoff = backoff
        self.max_concurrency = max_concurrency
        self.requests = 0  # HTTP requests sent, retries included
        self._count_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._samples: dict[str, tuple[int, Counter, list[str]]] = {}

    # -- what the server gives -------------------------------------------------------

    @property
    def scoring(self) -> str | None:
        """The scoring mode in use ("echo", "echo_single", "sampling"), None before detection."""
        return self._forced or detected_scoring.get((self.base_url, self.model_name))

    @property
    def supports_logprobs(self) -> bool | None:
        """True when actions are scored with prompt log-probabilities, False when sampled, None if unknown."""
        return None if self.scoring is None else self.scoring != "sampling"

    @property
    def reference_logprobs(self) -> bool:
        """True when `logprobs` are sequence log-probabilities DPO can use as its reference."""
        return bool(self.supports_logprobs)

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
            with self._count_lock:
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
                reason = getattr(e, "reason", e)
                last = f"no answer within {self.timeout:g}s (--request-timeout)" if isinstance(
                    reason, (socket.timeout, TimeoutError)) else str(reason)
            except json.JSONDecodeError as e:
                raise OpenAIServerError(f"{url} answered with invalid JSON: {e}") from None
        raise OpenAIServerError(
            f"OpenAI-compatible server at {url} failed after {self.max_retries + 1} attempts: {last}")

    def _map(self, fn, items: list) -> list:
        """fn over items with at most `max_concurrency` requests in flight, in order."""
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="openai-policy")
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        """Stop the request threads (safe to call twice)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __getstate__(self) -> dict:  # threads and locks do not travel to other processes
        state = dict(self.__dict__, _pool=None)
        state.pop("_count_lock")
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _count_lock=threading.Lock())

    # -- scoring ---------------------------------------------------------------------

    def score_completions(self, prompt: str, completions: list[str]) -> list[float]:
        """Sum of the server's log-probabilities of each completion's tokens after `prompt`.

        Tries the modes "echo" then "echo_single" the first time (module docstring) and
        remembers the first that works for this server.

        Raises:
            LogprobsUnsupported: the server does not return echoed prompt log-probabilities.
        """
        if not completions:
            return []
        mode = self.scoring
        if mode == "sampling":
            raise LogprobsUnsupported(f"{self.base_url} does not return prompt log-probabilities")
        if mode is not None:
            return self._score(mode, prompt, completions)
        with _DETECT_LOCK:
            for mode in SCORING_MODES[:2]:
                try:
                    scores = self._score(mode, prompt, completions)
                except LogprobsUnsupported:
                    continue
                detected_scoring[(self.base_url, self.model_name)] = mode
                return scores
            detected_scoring[(self.base_url, self.model_name)] = "sampling"
        raise LogprobsUnsupported(f"{self.base_url} returns no prompt log-probabilities; sampling instead")

    def _score(self, mode: str, prompt: str, completions: list[str]) -> list[float]:
        """Scores in one echo mode; an answer without them raises LogprobsUnsupported."""
        def one_request(batch: list[str]) -> list[float]:
            body = {"model": self.model_name, "prompt": [prompt + c for c in batch] if mode == "echo"
                    else prompt + batch[0], "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
            try:
                answer = self._post("completions", body)
            except OpenAIServerError as e:
                # a request refused as malformed (400 "prompt must be a string", 422 unknown
                # field) while detecting means "not this mode"; 401/404 and the rest are errors
                if self.scoring is None and e.status in REFUSED_REQUEST:
                    raise LogprobsUnsupported(f"{self.base_url} refused an echo request: {e}") from e
                raise
            return _echo_scores(answer, prompt, batch)

        if mode == "echo":
            return one_request(completions)
        return [s for scores in self._map(one_request, [[c] for c in completions]) for s in scores]

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

        The first request asks for all n; a server that ignores "n" (llama.cpp,
        `transformers serve`) is asked for the rest one request each, in parallel, each
        with its own seed drawn from `rng`.
        """
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=n)] if rng is not None else [None] * n
        texts = self._complete_once(prompt, n, seeds[0], temperature, max_tokens, stop, system)
        if texts and len(texts) < n:
            rest = self._map(lambda s: self._complete_once(prompt, 1, s, temperature, max_tokens, stop, system),
                             seeds[len(texts):])
            texts += [t for r in rest for t in r]
        return texts[:n]

    def _complete_once(self, prompt: str, n: int, seed: int | None, temperature: float, max_tokens: int,
                       stop: list[str], system: str | None) -> list[str]:
        body: dict[str, Any] = {"model": self.model_name, "n": n, "temperature": temperature,
                                "max_tokens": max_tokens, "stop": stop}
        if seed is not None:
            body["seed"] = seed
        if self.api == "chat":
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}]
            answer = self._post("chat/completions", {**body, "messages": messages})
            return [(c.get("message") or {}).get("content") or "" for c in answer.get("choices", [])]
        answer = self._post("completions", {**body, "prompt": prompt})
        return [c.get("text") or "" for c in answer.get("choices", [])]

    def _sample_counts(self, ctx: StepContext, prompt: str,
                       rng: np.random.Generator | None) -> tuple[int, Counter, list[str]]:
        """(samples drawn, counts of the valid actions among them, the raw texts) at this prompt, cached.

        When no sample is a valid action, the counts are those of the texts as written.
        """
        if prompt not in self._samples:
            n = self.num_samples if self.temperature > 0 else 1
            texts = self.complete(prompt, n, rng if rng is not None else np.random.default_rng(0),
                                  self.temperature, self.max_tokens, ["\n"], POLICY_SYSTEM)
            counts = Counter(a for a in (parse_action(t, ctx.available_actions) for t in texts) if a is not None)
            if not counts:  # nothing valid was sampled: the env will answer the texts as invalid actions
                texts = texts or [""]
                counts = Counter(_invalid_action(t) for t in texts)
            if len(self._samples) >= SAMPLE_CACHE_SIZE:
                self._samples.pop(next(iter(self._samples)))  # the oldest prompt
            self._samples[prompt] = (len(texts), counts, texts)
        return self._samples[prompt]

    @staticmethod
    def _frequency_logprob(n: int, counts: Counter, action: str) -> float:
        return math.log(max(counts.get(action, 0), 0.5) / max(n, 1))

    # -- Policy ----------------------------------------------------------------------

    def propose(self, ctx: StepContext, k: int, rng: np.random.Generator) -> list[Proposal]:
        """Up to k distinct actions, the preferred one first (at least one when k >= 1).

        Proposals are valid actions, except when no sample is: then the sampled text is
        proposed as it is, for the env to answer as an invalid action.
        """
        if k < 1:
            return []
        prompt = policy_prompt(ctx)
        if self.supports_logprobs is not False:
            scored = self._propose_scored(ctx, prompt, k, rng)
            if scored is not None:
                return scored
        n, counts, _ = self._sample_counts(ctx, prompt, rng)
        seen = list(counts)  # first-seen order breaks ties at temperature 0
        scores = [self._frequency_logprob(n, counts, a) for a in seen]
        return [Proposal(seen[i], scores[i]) for i in gumbel_top_k(scores, k, self.temperature, rng)]

    def _propose_scored(self, ctx: StepContext, prompt: str, k: int,
                        rng: np.random.Generator) -> list[Proposal] | None:
        """Proposals ranked by server log-probabilities; None when the server has none."""
        actions = list(dict.fromkeys(a for a in ctx.available_actions if not is_search_template(a)))
        if any(is_search_template(a) for a in ctx.available_actions):
            n = 2 * k if self.temperature > 0 else 1
            queries = self.complete(prompt + QUERY_PREFIX, n, rng, self.temperature,
                                    self.max_query_tokens, ["]", "\n"])
            actions = list(dict.fromkeys(actions + search_actions(queries)))
        if not actions:
            return None
        scores = self._can_score(prompt, [action_completion(a) for a in actions])
        if scores is None:
            return None
        return [Proposal(actions[i], scores[i]) for i in gumbel_top_k(scores, k, self.temperature, rng)]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """Server log-probabilities of `actions`, or sample-frequency estimates (see module doc)."""
        prompt = policy_prompt(ctx)
        if self.supports_logprobs is not False:
            scores = self._can_score(prompt, [action_completion(a) for a in actions])
            if scores is not None:
                return scores
        n, counts, _ = self._sample_counts(ctx, prompt, None)
        return [self._frequency_logprob(n, counts, a) for a in actions]

    def act(self, ctx: StepContext, rng: np.random.Generator) -> str:
        """One action; possibly an invalid one (see `propose`), never an exception for model output."""
        return self.propose(ctx, 1, rng)[0].action


def _invalid_action(text: str) -> str:
    """A sampled text that parses to no action, as the env will see it (first line, trimmed)."""
    return text.strip().split("\n", 1)[0].strip()[:MAX_INVALID_CHARS]


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
