"""Scripted shop agents: an oracle, WebShop's rule baseline and a random agent.

Each is a `Policy`: `act(ctx, rng)` gives the agent's own choice, and
`propose(ctx, k, rng)` returns that choice first, then other available actions
in an order drawn from `rng`, so tree search over a scripted agent explores
real alternatives. Log-probabilities describe the agent as a distribution:
the own choice has probability `choice_prob`, the rest share what is left.
"""
from __future__ import annotations

import math
import re

import numpy as np

from webgrove.agents.base import Proposal, StepContext

SEARCH_ACTION = "search[...]"
_PRICE_CLAUSE = re.compile(r",?\s*and price lower than [0-9.]+ dollars\s*$", re.IGNORECASE)
_CLICK = re.compile(r"^click\[(.*)\]$", re.IGNORECASE)


def instruction_query(instruction: str) -> str:
    """The instruction without its price clause: what a shopper would type."""
    return _PRICE_CLAUSE.sub("", instruction).strip().rstrip(".")


def click_label(action: str) -> str | None:
    m = _CLICK.match(action.strip())
    return m.group(1).lower() if m else None


def _is_asin(label: str) -> bool:
    return bool(re.fullmatch(r"b[0-9a-z]{9}", label))


class ScriptedPolicy:
    """Base: a deterministic choice turned into a Policy."""

    name = "scripted"
    choice_prob = 0.9

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        raise NotImplementedError

    def _candidates(self, ctx: StepContext, choice: str) -> list[str]:
        others = [a for a in ctx.available_actions if a != choice and a != SEARCH_ACTION]
        return [choice] + others

    def propose(self, ctx: StepContext, k: int, rng: np.random.Generator) -> list[Proposal]:
        choice = self.act(ctx, rng)
        others = self._candidates(ctx, choice)[1:]
        order = rng.permutation(len(others)) if others else []
        ranked = [choice] + [others[i] for i in order]
        lps = self.logprobs(ctx, ranked[:k])
        return [Proposal(a, lp) for a, lp in zip(ranked[:k], lps)]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        choice = self.act(ctx, np.random.default_rng(0))
        n_other = max(1, len(self._candidates(ctx, choice)) - 1)
        rest = math.log((1.0 - self.choice_prob) / n_other)
        return [math.log(self.choice_prob) if a.lower() == choice.lower() else rest for a in actions]


class RulePolicy(ScriptedPolicy):
    """WebShop's rule baseline: search the instruction, click the first result, buy."""

    name = "rule"

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        acts = ctx.available_actions
        if SEARCH_ACTION in acts:
            return f"search[{instruction_query(ctx.goal)}]"
        if "click[buy now]" in acts:
            return "click[buy now]"
        products = [a for a in acts if _is_asin(click_label(a) or "")]
        if products:
            return products[0]
        if "click[< prev]" in acts:
            return "click[< prev]"
        return acts[0] if acts else "click[back to search]"


class RandomPolicy(ScriptedPolicy):
    """Searches the instruction where there is a search bar, otherwise clicks uniformly."""

    name = "random"

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        acts = ctx.available_actions
        if SEARCH_ACTION in acts:
            return f"search[{instruction_query(ctx.goal)}]"
        rng = rng if rng is not None else np.random.default_rng()
        return acts[int(rng.integers(len(acts)))]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        if SEARCH_ACTION in ctx.available_actions:
            return [0.0 for _ in actions]
        n = max(1, len(ctx.available_actions))
        return [-math.log(n) for _ in actions]


class OraclePolicy(ScriptedPolicy):
    """Knows the goal's target product and options (reads `env.unwrapped.goal`).

    Searches the instruction, pages through results for the target (up to 5 pages),
    falls back to searching the target's title, opens it, selects the goal's options
    and buys. Everything else is read from the step context and its history, so the
    oracle is consistent under `set_state` (tree search) too.
    """

    name = "oracle"
    max_result_pages = 5

    def __init__(self, env):
        self.env = env

    def _goal_and_catalog(self):
        base = getattr(self.env, "unwrapped", self.env)
        return base.goal, base.catalog

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        goal, catalog = self._goal_and_catalog()
        target = goal.asin.lower()
        acts = ctx.available_actions
        history = [h.lower() for h in ctx.history]
        if SEARCH_ACTION in acts:
            searches = sum(h.startswith("search[") for h in history)
            if searches == 0:
                return f"search[{instruction_query(goal.instruction)}]"
            return f"search[{catalog.product(goal.asin).title}]"
        if f"click[{target}]" in acts:
            return f"click[{target}]"
        if "click[buy now]" in acts:
            if self._current_item(history) != target:
                return "click[< prev]"
            for action in self._option_clicks(goal, catalog, acts):
                if action not in self._clicked_since_open(history):
                    return action
            return "click[buy now]"
        if any(_is_asin(click_label(a) or "") for a in acts):  # a results page without the target
            pages_seen = self._pages_seen_since_search(history)
            if "click[next >]" in acts and pages_seen < self.max_result_pages:
                return "click[next >]"
            return "click[back to search]"
        if "click[< prev]" in acts:  # a sub-page
            return "click[< prev]"
        return "click[back to search]"

    @staticmethod
    def _current_item(history: list[str]) -> str | None:
        for h in reversed(history):
            label = click_label(h)
            if label and _is_asin(label):
                return label
        return None

    @staticmethod
    def _clicked_since_open(history: list[str]) -> set[str]:
        clicked: list[str] = []
        for h in reversed(history):
            label = click_label(h)
            if label and _is_asin(label):
                break
            clicked.append(h)
        return set(clicked)

    @staticmethod
    def _pages_seen_since_search(history: list[str]) -> int:
        pages = 1
        for h in reversed(history):
            if h.startswith("search["):
                break
            if h == "click[next >]":
                pages += 1
            elif h == "click[< prev]":
                pages -= 1
        return pages

    @staticmethod
    def _option_clicks(goal, catalog, acts: list[str]) -> list[str]:
        """The clicks that select the goal's options on the target's page, in goal order."""
        from rapidfuzz import fuzz

        product = catalog.product(goal.asin)
        clicks = []
        for name, wanted in goal.goal_options.items():
            values = product.options.get(name) or [v for vs in product.options.values() for v in vs]
            if not values:
                continue
            best = max(values, key=lambda v: (v.lower() == wanted.lower(), fuzz.token_set_ratio(v, wanted)))
            action = f"click[{best.lower()}]"
            if action in acts and action not in clicks:
                clicks.append(action)
        return clicks
