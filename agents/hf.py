"""A policy backed by any local `transformers` causal language model.

The model reads `webgrove.agents.prompts.policy_prompt(ctx)` and writes the action after the
"Action:" cue. Clicks are scored, queries are sampled:

- every available `click[...]` action is scored as the sum of its completion tokens'
  log-probabilities, eos included (so a label that is a prefix of another does not win
  for free); with `batching=True` the prompt runs once and its key/value cache is shared
  by all candidates, which run together as one right-padded batch (two forward calls
  per step however many actions there are, chunked by `batch_size`); with
  `batching=False` each candidate runs prompt + completion on its own (the baseline the
  benchmark compares against; both give the same numbers);
- scores are memoised: a search visits the same state again and again (MCTS evaluation of the
  demo's base: 65% of its scoring calls repeat an earlier (prompt, candidates) pair), so the
  last `cache_size` results are kept, keyed by prompt, candidates and scoring settings, and
  dropped whenever a parameter changes in place (torch's version counters: an optimizer step on
  the policy's own model object empties it; a write through `.data`, as PEFT's merge does, is
  not seen -- build a new `HFPolicy` after changing weights that way);
- when "search[...]" is available, queries are sampled with `generate` after the
  prefix " search[" (temperature, at most `max_query_tokens` new tokens, cut at "]"),
  then scored like clicks so every proposal carries its full-action log-probability.

Ranking uses constrained decoding's probabilities, not raw sequence log-probs: the
candidates form a token trie, and the probability of choosing one is the product over
its tokens of p(token) renormalised over the tokens that some candidate sharing the
same prefix has there (`choice_logprobs`). Tokens where no other candidate branches
count log 1 = 0, so a long label (a product id, a title) is not punished for its length
-- an undertrained model otherwise prefers "click[next >]" to every product. It is the
distribution greedy or sampled decoding restricted to the valid actions would follow.
Each `Proposal` carries both numbers: `logprob` (the sequence log-prob, what DPO's
stored reference must equal) and `choice_logprob`.

`propose` returns distinct candidates ordered by Gumbel-top-k sampling on the choice
log-probabilities divided by `temperature` (sampling without replacement); with
temperature 0 it is the top k. `sample` draws one action from the same distribution at
any temperature (what MCTS rollouts follow). All randomness comes from the `rng` argument: the Gumbel
noise directly, `generate` through a forked torch RNG seeded from it.
"""
from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from webgrove.agents.base import Proposal, StepContext
from webgrove.agents.chat import fit_prompt, generation_prefix_ids, model_positions, resolve_format, split_completions
from webgrove.agents.prompts import action_completion, clean_query, is_search_template, policy_prompt, search_actions

QUERY_PREFIX = " search["


def gumbel_top_k(scores: list[float], k: int, temperature: float, rng: np.random.Generator) -> list[int]:
    """Indices of k items drawn without replacement with probability ∝ exp(score / T).

    The Gumbel-top-k trick (Kool et al. 2019): perturb scores/T with Gumbel noise and sort.
    Temperature 0 means no noise: the k highest scores, ties kept in input order.
    """
    s = np.asarray(scores, dtype=np.float64)
    if temperature <= 0:
        keys = s
    else:
        keys = s / temperature + rng.gumbel(size=len(s))
    return [int(i) for i in np.argsort(-keys, kind="stable")[:k]]


def branch_sets(comp_ids: list[list[int]]) -> list[list[list[int]]]:
    """For each completion i and position t, the distinct tokens that the completions
    sharing i's first t tokens have at position t (i's own token among them), sorted."""
    nexts: dict[tuple[int, ...], set[int]] = {}
    for c in comp_ids:
        for t in range(len(c)):
            nexts.setdefault(tuple(c[:t]), set()).add(c[t])
    return [[sorted(nexts[tuple(c[:t])]) for t in range(len(c))] for c in comp_ids]


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]


def _repeat_cache(cache: Any, n: int) -> Any:
    """A copy of a batch-1 key/value cache repeated to batch n (the original is left intact)."""
    if hasattr(cache, "batch_repeat_interleave"):  # transformers Cache objects
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(n)
        return cache
    # legacy tuple-of-tuples format: ((key, value), ...) with tensors (1, heads, T, dim)
    return tuple(tuple(t.expand(n, *t.shape[1:]).contiguous() for t in layer) for layer in cache)


class HFPolicy:
    """A `Policy` over a local causal LM (see the module docstring for how it scores).

    Args:
        model_path_or_model: a model directory (loaded with `AutoModelForCausalLM` and,
            unless `tokenizer` is given, `AutoTokenizer`), or a loaded model.
        tokenizer: required when a model object is passed.
        device: "cuda", "cpu", ...; CUDA when available by default.
        temperature: sampling temperature for `propose`/`act` and query generation (0 = greedy).
        max_query_tokens: new-token limit for a sampled search query.
        batch_size: candidates scored per forward call when batching.
        batching: score all candidates together (True) or one forward pass each (False).
        prompt_format: "auto" (the chat template when the tokenizer has one), "chat" or "raw"
            (`webgrove.agents.chat`); `self.prompt_format` is the resolved one.
        cache_size: scoring results kept (0: none; `cache_hits` counts the calls it answered).
    """

    def __init__(self, model_path_or_model: Any, tokenizer: Any = None, device: str | None = None,
                 temperature: float = 1.0, max_query_tokens: int = 40, batch_size: int = 64,
                 batching: bool = True, prompt_format: str = "auto", cache_size: int = 4096):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model_path_or_model, (str, Path)):
            path = Path(model_path_or_model)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} is not a model directory (no config.json)")
            self.name = str(path)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer along with a model object")
            model = model_path_or_model
            self.name = getattr(model.config, "_name_or_path", "") or type(model).__name__
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; completions could not end")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.prompt_format = resolve_format(tokenizer, prompt_format)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        cfg = model.config
        self.max_positions = model_positions(cfg)
        self.temperature = temperature
        self.max_query_tokens = max_query_tokens
        self.batch_size = batch_size
        self.batching = batching
        self.forward_calls = 0  # model forward calls made by scoring (for tests and benchmarks)
        self.cache_size, self.cache_hits = cache_size, 0
        self._cache: OrderedDict[tuple, tuple[list[float], list[float]]] = OrderedDict()
        self._cache_version = -1
        # the prompt pass needs only its last position's logits; most causal LMs can skip the rest
        # (with a 2,000-token vocabulary the head is a third of a small model's work per position)
        forward_args = inspect.signature(model.forward).parameters
        self._last_logits = {"logits_to_keep": 1} if "logits_to_keep" in forward_args else {}
        # transformers 5.24 renamed the key/value cache argument `past_key_values` to `cache`
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"

    # -- Policy ----------------------------------------------------------------

    def propose(self, ctx: StepContext, k: int, rng: np.random.Generator) -> list[Proposal]:
        """Up to k distinct actions with their log-probabilities, the preferred one first."""
        if k < 1:
            return []
        return self._draw(ctx, k, 2 * k, self.temperature, rng)

    def sample(self, ctx: StepContext, temperature: float, rng: np.random.Generator) -> Proposal | None:
        """One action drawn from the policy's own distribution at `temperature` (0: the greedy one).

        The draw is over every available action -- softmax(choice log-prob / T), with one
        query generated at T where search is available -- not over a top-k shortlist:
        what a rollout must follow. None when there is nothing to choose from.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        drawn = self._draw(ctx, 1, 1, temperature, rng)
        return drawn[0] if drawn else None

    def _draw(self, ctx: StepContext, k: int, n_queries: int, temperature: float,
              rng: np.random.Generator) -> list[Proposal]:
        """k distinct candidates by Gumbel-top-k on choice log-probs / T, queries generated at T."""
        prompt = policy_prompt(ctx)
        actions = _dedupe([a for a in ctx.available_actions if not is_search_template(a)])
        if any(is_search_template(a) for a in ctx.available_actions):
            n = n_queries if temperature > 0 else 1
            actions = _dedupe(actions + search_actions(self.sample_queries(prompt, n, rng, temperature)))
        if not actions:
            return []
        scores, choice = self.score_choices(prompt, [action_completion(a) for a in actions])
        order = gumbel_top_k(choice, k, temperature, rng)
        return [Proposal(actions[i], scores[i], choice[i]) for i in order]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """Log-probability of each action (any string, search queries included) after the prompt."""
        return self.score_completions(policy_prompt(ctx), [action_completion(a) for a in actions])

    def act(self, ctx: StepContext, rng: np.random.Generator) -> str:
        """One action: sampled at `temperature`, greedy at 0."""
        proposals = self.propose(ctx, 1, rng)
        if not proposals:
            raise ValueError("no available actions to choose from")
        return proposals[0].action

    # -- scoring ---------------------------------------------------------------

    def _encode(self, prompt: str, completions: list[str], add_eos: bool) -> tuple[list[int], list[list[int]]]:
        prompt_ids, comp_ids = split_completions(self.tokenizer, prompt, completions, self.prompt_format, add_eos)
        # Too long a prompt loses its oldest tokens; prompts.py budgets keep this rare.
        return fit_prompt(prompt_ids, max(len(c) for c in comp_ids), self.max_positions), comp_ids

    def score_completions(self, prompt: str, completions: list[str], add_eos: bool = True) -> list[float]:
        """Sum of log p(token) over each completion's tokens (plus the end: eos, or the chat
        template's end of turn, if `add_eos`), given `prompt`.

        Tokenized as TRL tokenizes a pair (`webgrove.agents.chat.split_completions`): prompt
        and completion together, the completion from where they part; these are the numbers
        DPO's stored reference must equal.
        """
        return self.score_choices(prompt, completions, add_eos)[0]

    def score_choices(self, prompt: str, completions: list[str],
                      add_eos: bool = True) -> tuple[list[float], list[float]]:
        """(sequence log-probs, choice log-probs) of `completions` after `prompt`.

        The sequence log-prob is `score_completions`'s. The choice log-prob renormalises
        each token over the tokens the candidates sharing its prefix have there (see the
        module docstring); over distinct candidates ending in eos they sum to 1 in
        probability.
        """
        if not completions:
            return [], []
        key = (prompt, tuple(completions), add_eos, self.batching, self.max_positions, self.prompt_format)
        hit = self._cached(key)
        if hit is not None:
            return list(hit[0]), list(hit[1])
        scores, choices = self._score(prompt, completions, add_eos)
        if self.cache_size:
            self._cache[key] = (scores, choices)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return list(scores), list(choices)

    def _cached(self, key: tuple) -> tuple[list[float], list[float]] | None:
        """The memoised result for `key`, after emptying the cache if any weight changed."""
        if not self.cache_size:
            return None
        version = sum(p._version for p in self.model.parameters())  # bumped by every in-place update
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
        return hit

    def _score(self, prompt: str, completions: list[str], add_eos: bool) -> tuple[list[float], list[float]]:
        import torch

        prompt_ids, comp_ids = self._encode(prompt, completions, add_eos)
        sets = branch_sets(comp_ids)
        with torch.inference_mode():
            if self.batching:
                return self._score_shared_prompt(prompt_ids, comp_ids, sets)
            pairs = [self._score_one(prompt_ids, c, s) for c, s in zip(comp_ids, sets)]
        return [a for a, _ in pairs], [b for _, b in pairs]

    def _score_one(self, prompt_ids: list[int], comp: list[int], sets: list[list[int]]) -> tuple[float, float]:
        import torch

        ids = torch.tensor([prompt_ids + comp], device=self.device)  # (1, P + C)
        self.forward_calls += 1
        logits = self.model(input_ids=ids).logits[0].float()  # (P + C, V)
        p = len(prompt_ids)
        logp = torch.log_softmax(logits[p - 1:p - 1 + len(comp)], dim=-1)  # (C, V): predicts comp
        target = torch.tensor(comp, device=self.device)
        token_logp = logp.gather(-1, target[:, None])[:, 0]  # (C,)
        norm = torch.stack([torch.logsumexp(logp[t, s], dim=0) for t, s in enumerate(sets)])  # (C,)
        return float(token_logp.sum()), float((token_logp - norm).sum())

    def _score_shared_prompt(self, prompt_ids: list[int], comp_ids: list[list[int]],
                             sets: list[list[list[int]]]) -> tuple[list[float], list[float]]:
        import torch

        p = len(prompt_ids)
        self.forward_calls += 1
        out = self.model(input_ids=torch.tensor([prompt_ids], device=self.device), use_cache=True,
                         **self._last_logits)
        first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # (V,): predicts token 0
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        scores: list[float] = []
        choices: list[float] = []
        for start in range(0, len(comp_ids), self.batch_size):
            chunk = comp_ids[start:start + self.batch_size]
            chunk_sets = sets[start:start + self.batch_size]
            b, c = len(chunk), max(len(x) for x in chunk)
            m = max(len(s) for x in chunk_sets for s in x)
            ids = torch.tensor([x + [self.pad_id] * (c - len(x)) for x in chunk], device=self.device)  # (B, C)
            comp_mask = torch.tensor([[1] * len(x) + [0] * (c - len(x)) for x in chunk], device=self.device)
            # (B, C, M): the branch set of every position, padded with token 0 and masked out
            padded = [[s + [0] * (m - len(s)) for s in xs] + [[0] * m] * (c - len(xs)) for xs in chunk_sets]
            branch = torch.tensor(padded, dtype=torch.long, device=self.device)
            branch_ok = torch.tensor([[[j < len(s) for j in range(m)] for s in xs] + [[False] * m] * (c - len(xs))
                                      for xs in chunk_sets], dtype=torch.bool, device=self.device)
            token_logp = first_logp[ids[:, 0]][:, None]  # (B, 1)
            branch_logp = first_logp[branch[:, :1]]  # (B, 1, M)
            if c > 1:
                attention = torch.cat([torch.ones((b, p), dtype=torch.long, device=self.device), comp_mask], 1)
                positions = torch.arange(p, p + c, device=self.device).expand(b, c)
                self.forward_calls += 1
                kv = {self._cache_arg: _repeat_cache(cache, b)}
                logits = self.model(input_ids=ids, attention_mask=attention, position_ids=positions,
                                    use_cache=True, **kv).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, C-1, V): predicts tokens 1..C-1
                token_logp = torch.cat([token_logp, logp.gather(-1, ids[:, 1:, None])[..., 0]], dim=1)  # (B, C)
                branch_logp = torch.cat([branch_logp, logp.gather(-1, branch[:, 1:])], dim=1)  # (B, C, M)
            norm = torch.logsumexp(branch_logp.masked_fill(~branch_ok, float("-inf")), dim=-1)  # (B, C)
            norm = torch.where(comp_mask.bool(), norm, torch.zeros_like(norm))
            scores += (token_logp * comp_mask).sum(dim=1).tolist()
            choices += ((token_logp - norm) * comp_mask).sum(dim=1).tolist()
        return scores, choices

    # -- query sampling -------------------------------------------------------

    def sample_queries(self, prompt: str, n: int, rng: np.random.Generator,
                       temperature: float | None = None) -> list[str]:
        """n search queries written by the model after `prompt` + " search[" (may repeat).

        Sampled at `temperature` (default `self.temperature`; greedy, one query, at 0) with
        `generate`; each is cleaned by `webgrove.agents.prompts.clean_query`. Seeded from `rng`.
        """
        import torch

        temperature = self.temperature if temperature is None else temperature

        seed = int(rng.integers(0, 2**31 - 1))
        prefix_ids = generation_prefix_ids(self.tokenizer, prompt, QUERY_PREFIX, self.prompt_format)
        prefix_ids = prefix_ids[-(self.max_positions - self.max_query_tokens):]
        ids = torch.tensor([prefix_ids], device=self.device)
        sample = temperature > 0
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=self.max_query_tokens, do_sample=sample, num_return_sequences=n if sample else 1,
            pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id,
            stop_strings=["]", "\n"], tokenizer=self.tokenizer)
        if sample:
            gen_kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen_kwargs)
        texts = self.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        return [clean_query(t) for t in texts]

