"""Scripted shop agents: an oracle, WebShop's rule baseline, the rule with options, a random agent.

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
from webgrove.envs.shop.actions import (BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, SEARCH, SEARCH_ACTION,
                                        click_action, click_label, instruction_query, is_product_id,
                                        search_action)

__all__ = ["OraclePolicy", "RandomPolicy", "RuleOptionsPolicy", "RulePolicy", "ScriptedPolicy", "SEARCH_ACTION", "click_label",
           "instruction_query"]
BUY = click_action(BUY_NOW)
BACK = click_action(BACK_TO_SEARCH)
NEXT = click_action(NEXT_PAGE)
PREV = click_action(PREV_PAGE)
_PRICE = re.compile(r"\$([0-9][0-9,]*\.?[0-9]*)")


def _is_search(action: str) -> bool:
    return action.startswith(SEARCH + "[")


class ScriptedPolicy:
    """Base: a deterministic choice turned into a Policy."""

    name = "scripted"
    choice_prob = 0.9
    rollout_by_act = True  # tree search rolls out with `act` (see `Policy`)

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
            return search_action(instruction_query(ctx.goal))
        if BUY in acts:
            return BUY
        products = [a for a in acts if is_product_id(click_label(a) or "")]
        if products:
            return products[0]
        if PREV in acts:
            return PREV
        return acts[0] if acts else BACK


def words(text: str) -> set[str]:
    """The shop search's own tokens of `text` (lower case, stopwords dropped)."""
    from webgrove.envs.shop.search import tokenize

    return set(tokenize(text))


def prices(text: str) -> list[float]:
    """The dollar amounts in `text` ("$12.50 to $1,200" -> [12.5, 1200.0])."""
    return [float(p.replace(",", "")) for p in _PRICE.findall(text)]


def item_view(obs: str, actions: list[str]) -> dict:
    """An item page read from its text: option groups (name -> clickable values, lower case),
    title and lowest listed price."""
    from webgrove.envs.shop.actions import RESERVED_LABELS, split_page

    clickable = {click_label(a) for a in actions} - RESERVED_LABELS - {None}
    els = split_page(obs)
    start = next((i + 1 for i, e in enumerate(els) if e.lower() == "< prev"), 0)
    groups: dict[str, list[str]] = {}
    name, title, price = None, "", float("inf")
    for i in range(start, len(els)):
        e = els[i]
        if e.startswith("Price:"):
            listed = prices(e)
            price = min(listed) if listed else price
            title = els[i - 1]
            break
        if e.lower() in clickable and name is not None:
            groups[name].append(e.lower())
        else:
            name = e.lower()
            groups[name] = []
    groups.pop(title.lower(), None)
    return {"groups": {k: v for k, v in groups.items() if v}, "title": title, "price": price}


def chosen_options(groups: dict, instruction: str) -> list[str]:
    """Per option group, the value whose words all appear in the instruction (the longest such)."""
    said = words(instruction)
    picks = []
    for values in groups.values():
        fits = [v for v in values if words(v) and words(v) <= said]
        if fits:
            picks.append(max(fits, key=lambda v: (len(words(v)), -values.index(v))))
    return picks


class RuleOptionsPolicy(RulePolicy):
    """The rule baseline that also reads the item page: search the instruction, open the first
    result, click each option value the instruction names (`chosen_options`, read from the page
    text only, never the hidden goal), buy. On the validation goals it succeeds on 64% against the
    rule's 10% (`benchmarks/ceiling.py`, row `first_options`); the demo clones it."""

    name = "rule-options"

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        acts = ctx.available_actions
        if SEARCH_ACTION not in acts and BUY in acts:  # an item page: the named options first
            clicked = OraclePolicy._clicked_since_open([h.lower() for h in ctx.history])
            for value in chosen_options(item_view(ctx.observation, acts)["groups"], ctx.goal):
                if click_action(value) in acts and click_action(value) not in clicked:
                    return click_action(value)
        return super().act(ctx, rng)


class RandomPolicy(ScriptedPolicy):
    """Searches the instruction where there is a search bar, otherwise clicks uniformly."""

    name = "random"

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        acts = ctx.available_actions
        if SEARCH_ACTION in acts:
            return search_action(instruction_query(ctx.goal))
        rng = rng if rng is not None else np.random.default_rng()
        return acts[int(rng.integers(len(acts)))]

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        if SEARCH_ACTION in ctx.available_actions:
            return [0.0 for _ in actions]
        n = max(1, len(ctx.available_actions))
        return [-math.log(n) for _ in actions]


class OraclePolicy(ScriptedPolicy):
    """Knows the goal's target product and options (reads `env.unwrapped.goal`, or
    `env.unwrapped.task.goal` on `webgrove/WebShopBrowser-v0`).

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
        shop = getattr(base, "task", base)  # a browser env's shop task holds the goal
        return shop.goal, shop.catalog

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        goal, catalog = self._goal_and_catalog()
        target = goal.asin.lower()
        acts = ctx.available_actions
        history = [h.lower() for h in ctx.history]
        if SEARCH_ACTION in acts:
            searches = sum(_is_search(h) for h in history)
            if searches == 0:
                return search_action(instruction_query(goal.instruction))
            return search_action(catalog.product(goal.asin).title)
        if click_action(target) in acts:
            return click_action(target)
        if BUY in acts:
            if self._current_item(history) != target:
                return PREV
            for action in self._option_clicks(goal, catalog, acts):
                if action not in self._clicked_since_open(history):
                    return action
            return BUY
        if any(is_product_id(click_label(a) or "") for a in acts):  # a results page without the target
            pages_seen = self._pages_seen_since_search(history)
            if NEXT in acts and pages_seen < self.max_result_pages:
                return NEXT
            return BACK
        if PREV in acts:  # a sub-page
            return PREV
        return BACK

    @staticmethod
    def _current_item(history: list[str]) -> str | None:
        for h in reversed(history):
            label = click_label(h)
            if label and is_product_id(label):
                return label
        return None

    @staticmethod
    def _clicked_since_open(history: list[str]) -> set[str]:
        clicked: list[str] = []
        for h in reversed(history):
            label = click_label(h)
            if label and is_product_id(label):
                break
            clicked.append(h)
        return set(clicked)

    @staticmethod
    def _pages_seen_since_search(history: list[str]) -> int:
        pages = 1
        for h in reversed(history):
            if _is_search(h):
                break
            if h == NEXT:
                pages += 1
            elif h == PREV:
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
            action = click_action(best)
            if action in acts and action not in clicks:
                clicks.append(action)
        return clicks
