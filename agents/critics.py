"""Critics: values in [0, 1] for candidate actions at one step (higher is better).

- `LLMCritic`: Agent Q's self-critique. The policy's own model is shown the numbered
  candidates (`webgrove.agents.prompts.critic_prompt`) and asked which best advances the goal;
  the pick is removed and the question repeats on the rest until every candidate has
  a rank. Rank r (0 = picked first) of n maps to value 1 - r / (n - 1); a single
  candidate gets 1.0.
- `LexicalCritic`: a cheap baseline from word overlap with the goal (rules in its doc).
- `NoCritic`: 0.5 for everything.

`LLMCritic` and `LexicalCritic` cache values per (state, action), the state being a hash
of (goal, observation, history); `cache_hits` / `cache_misses` count lookups per call.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from webgrove.agents.base import StepContext
from webgrove.agents.prompts import critic_completion, critic_prompt, parse_critic_answer, search_query
from webgrove.agents.scripted import click_label

CRITIC_SYSTEM = "Reply with the number of the best action only."

_WORD = re.compile(r"[a-z0-9]+")
_ASIN = re.compile(r"b[0-9a-z]{9}")
_STOPWORDS = frozenset(
    "a an and the for of to in on with i im need want looking am is are be it that this my me "
    "by at as or from its please find buy get".split())
NAVIGATION = frozenset({"back to search", "next >", "< prev"})
SUB_PAGES = frozenset({"description", "features", "reviews", "attributes"})
BUY = "buy now"


def state_key(ctx: StepContext) -> str:
    """A hash naming the state a step is taken from: (goal, observation, history)."""
    h = hashlib.sha1()
    for part in (ctx.goal, ctx.observation, *ctx.history):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def rank_values(n: int) -> list[float]:
    """Value of ranks 0..n-1: 1 - r / (n - 1), evenly from 1.0 (best) to 0.0; [1.0] for n = 1."""
    if n == 1:
        return [1.0]
    return [1.0 - r / (n - 1) for r in range(n)]


class _CachedCritic:
    """Per-(state, action) cache around `_values(ctx, actions)`."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], float] = {}
        self.cache_hits = 0
        self.cache_misses = 0

    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """A value in [0, 1] per action; higher is better.

        Values already known for this state are reused; when any action is new, the
        whole set is valued again (a rank is relative to the set) and the new values are
        stored, without overwriting the old ones.
        """
        if not actions:
            return []
        key = state_key(ctx)
        if all((key, a) in self._cache for a in actions):
            self.cache_hits += 1
            return [self._cache[(key, a)] for a in actions]
        self.cache_misses += 1
        unique = list(dict.fromkeys(actions))
        values = dict(zip(unique, self._values(ctx, unique)))
        for a, v in values.items():
            self._cache.setdefault((key, a), v)
        return [self._cache[(key, a)] for a in actions]

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        raise NotImplementedError


class LLMCritic(_CachedCritic):
    """Agent Q's self-critique with the acting model (see the module docstring).

    Args:
        backend: `HFPolicy` or `OpenAIPolicy` (anything with `score_completions(prompt,
            completions)`; `complete(...)` is used when the backend cannot score, e.g. an
            OpenAI server without log-probabilities).

    Each round picks the candidate whose answer (" 1", " 2", ...) the model finds most
    likely; without scores, the model's greedy answer is parsed with
    `parse_critic_answer`, and an unparseable answer picks the first remaining candidate
    (counted in `parse_failures`). n candidates take n - 1 rounds.
    """

    def __init__(self, backend: Any):
        super().__init__()
        if not hasattr(backend, "score_completions"):
            raise TypeError(f"{type(backend).__name__} cannot critique: it has no model to ask")
        self.backend = backend
        self.parse_failures = 0

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        remaining = list(actions)
        order: list[str] = []
        while len(remaining) > 1:
            pick = self._pick(ctx, remaining)
            order.append(remaining.pop(pick))
        order += remaining
        value_of = dict(zip(order, rank_values(len(order))))
        return [value_of[a] for a in actions]

    def _pick(self, ctx: StepContext, candidates: list[str]) -> int:
        from webgrove.agents.openai_api import LogprobsUnsupported

        prompt = critic_prompt(ctx, candidates)
        try:
            scores = self.backend.score_completions(prompt, [critic_completion(i) for i in range(len(candidates))])
            return max(range(len(candidates)), key=lambda i: scores[i])
        except LogprobsUnsupported:
            answer = self.backend.complete(prompt, n=1, rng=None, temperature=0.0, max_tokens=8, stop=["\n"],
                                           system=CRITIC_SYSTEM)
            pick = parse_critic_answer(answer[0] if answer else "", candidates)
            if pick is None:
                self.parse_failures += 1
                return 0
            return pick


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def _overlap(text: str, goal_words: set[str]) -> float:
    """Share of `text`'s content words that appear in the goal (0 for no words)."""
    words = _words(text)
    return len(words & goal_words) / len(words) if words else 0.0


def _result_title(label: str, observation: str) -> str:
    """The text shown right after a product id on a results page (its title), else ""."""
    if not _ASIN.fullmatch(label):
        return ""
    parts = [p.strip() for p in observation.split("[SEP]")]
    for i, p in enumerate(parts[:-1]):
        if p.lower() == label:
            return parts[i + 1]
    return ""


class LexicalCritic(_CachedCritic):
    """Word overlap with the goal; a baseline that needs no model.

    Content words are lower-case alphanumerics minus a few stopwords. Per action:

    - `search[q]`: share of q's words found in the goal;
    - `click[back to search]`, `click[next >]`, `click[< prev]`: 0.1;
    - a sub-page (`click[description]`, features, reviews, attributes): 0.2;
    - an option already clicked (it is in the history): 0.1;
    - `click[buy now]`: 0.5 + 0.5 × the share of the page's goal-matching options
      (labels sharing a word with the goal) already clicked; 1.0 when there are none;
    - a product id on a results page: share of its title's words found in the goal;
    - any other click (an option): share of the label's words found in the goal.
    """

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        goal_words = _words(ctx.goal)
        clicked = {click_label(h) for h in ctx.history}
        labels = [click_label(a) for a in ctx.available_actions]
        matching_options = [
            lab for lab in labels
            if lab and lab not in NAVIGATION | SUB_PAGES | {BUY} and not _ASIN.fullmatch(lab)
            and _overlap(lab, goal_words) > 0]
        return [self._value(a, ctx, goal_words, clicked, matching_options) for a in actions]

    @staticmethod
    def _value(action: str, ctx: StepContext, goal_words: set[str], clicked: set[str | None],
               matching_options: list[str]) -> float:
        query = search_query(action)
        if query is not None:
            return _overlap(query, goal_words)
        label = click_label(action)
        if label is None:
            return 0.0
        if label in NAVIGATION:
            return 0.1
        if label in SUB_PAGES:
            return 0.2
        if label == BUY:
            if not matching_options:
                return 1.0
            return 0.5 + 0.5 * sum(o in clicked for o in matching_options) / len(matching_options)
        if label in clicked:
            return 0.1
        title = _result_title(label, ctx.observation)
        return _overlap(title or label, goal_words)


class NoCritic:
    """A critic with no opinion: 0.5 for every action."""

    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        return [0.5] * len(actions)
