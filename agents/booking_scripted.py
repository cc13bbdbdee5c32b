"""Scripted agents for `webgrove/Booking-v0`: an oracle, a rule baseline and a random agent.

They read the page from the step context's observation (the axtree: Playwright's
ai-mode aria snapshot) and answer with browser actions on its refs
(`click [e12]`, `select [e7] [7:30 pm]`, `type [e9] [Ana]`), so they work under tree
search too (`propose` ranks the agent's own choice first, then the page's other
actions). The oracle knows the goal's target (it reads `env.unwrapped.task.goal`);
the rule and random agents know only the instruction.
"""
from __future__ import annotations

import math
import re
from datetime import date

import numpy as np

from webgrove.agents.base import StepContext
from webgrove.agents.scripted import ScriptedPolicy
from webgrove.envs.booking.actions import named_actions
from webgrove.envs.booking.data import format_date, format_time
from webgrove.envs.booking.pages import SORTS, party_label
from webgrove.envs.browser.axtree import AxNode, parse_axtree

CLICKABLE = ("link", "button", "radio", "checkbox")
HOME = "click[TableFinder]"  # the site's logo link, on every page (a named action)
TEXT_FIELDS = {"First name": "first_name", "Last name": "last_name", "Phone": "phone", "Email": "email",
               "Special request": "request"}
_PHONE = re.compile(r"\(?\d{3}\)?[ -]?\d{3}-\d{4}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+\w")
_NAME = re.compile(r"(?:name|for|Name:)\s+([A-Z][a-z]+) ([A-Z][a-z]+)")
_REQUEST = re.compile(r"(?:note|request:) '([^']+)'")
_PHRASE = re.compile(r"(?<![.:!?] )(?<!^)\b[A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)*")  # capitalised runs, not sentence-first
_CALENDAR_WORDS = frozenset("Monday Tuesday Wednesday Thursday Friday Saturday Sunday Mon Tue Wed Thu Fri Sat Sun "
                            "January February March April May June July August September October November "
                            "December Jan Feb Mar Apr Jun Jul Aug Sep Oct Nov Dec".split())


class Page:
    """The nodes of one axtree with the lookups the agents need."""

    def __init__(self, axtree: str) -> None:
        self.nodes = parse_axtree(axtree)

    def find(self, role: str | tuple[str, ...], name: str | None = None) -> AxNode | None:
        roles = (role,) if isinstance(role, str) else role
        return next((n for n in self.nodes if n.ref and n.role in roles and (name is None or n.name == name)), None)

    @property
    def title(self) -> str:
        return next((n.name for n in self.nodes if n.role == "heading" and n.attrs.get("level") == "1"), "")

    def selected(self, combobox: AxNode) -> str:
        """The selected option's label of a combobox node."""
        i = self.nodes.index(combobox)
        for n in self.nodes[i + 1:]:
            if n.depth <= combobox.depth:
                break
            if n.role == "option" and "selected" in n.attrs:
                return n.name
        return ""

    def options(self, combobox: AxNode) -> list[str]:
        i = self.nodes.index(combobox)
        out = []
        for n in self.nodes[i + 1:]:
            if n.depth <= combobox.depth:
                break
            if n.role == "option":
                out.append(n.name)
        return out

    def text_starting(self, prefix: str) -> str:
        return next((n.value for n in self.nodes if n.role == "text" and n.value.startswith(prefix)), "")

    def in_list(self, label: str) -> list[AxNode]:
        """The links inside the list named `label` (e.g. the results or the free times)."""
        start = next((i for i, n in enumerate(self.nodes) if n.role == "list" and n.name == label), None)
        if start is None:
            return []
        depth = self.nodes[start].depth
        out = []
        for n in self.nodes[start + 1:]:
            if n.depth <= depth:
                break
            if n.role == "link" and n.ref:
                out.append(n)
        return out


def click(node: AxNode) -> str:
    return f"click [{node.ref}]"


def page_actions(page: Page, typed: dict[str, str]) -> list[str]:
    """Every action a diner could take here: clicks, each option of each list, and the
    `typed` values (field -> text) in each text box."""
    actions = []
    for n in page.nodes:
        if not n.ref:
            continue
        if n.role in CLICKABLE:
            actions.append(click(n))
        elif n.role == "combobox":
            actions += [f"select [{n.ref}] [{o}]" for o in page.options(n)]
        elif n.role in ("textbox", "searchbox"):
            actions += [f"type [{n.ref}] [{v}]" for v in typed.values() if v]
    return actions


def instruction_fields(instruction: str) -> dict[str, str]:
    """What a reader takes from the instruction without knowing the site: name, phone, email, note."""
    out = {}
    if m := _NAME.search(instruction):
        out["first_name"], out["last_name"] = m[1], m[2]
    if m := _PHONE.search(instruction):
        out["phone"] = m[0]
    if m := _EMAIL.search(instruction):
        out["email"] = m[0]
    if m := _REQUEST.search(instruction):
        out["request"] = m[1]
    return out


def instruction_phrases(instruction: str) -> list[str]:
    """The instruction's capitalised phrases that are not first in a sentence nor a day or
    month name ("Iron Anchor Taverna", "North Beach", "Italian", "Ben Lopez"): the names a
    reader could type into a search box."""
    out = []
    for phrase in _PHRASE.findall(instruction):
        words = [w for w in phrase.split() if w not in _CALENDAR_WORDS]
        if words and " ".join(words) not in out:
            out.append(" ".join(words))
    return out


def typed_values(instruction: str) -> tuple[str, ...]:
    """What the random agent types: the instruction's fields, then its other phrases."""
    fields = list(instruction_fields(instruction).values())
    return tuple(dict.fromkeys(fields + instruction_phrases(instruction)))


def fill_details(page: Page, wanted: dict[str, str], occasion: str, seating: str) -> str | None:
    """The next action that makes the details form hold `wanted`, or None when it does."""
    for label, key in TEXT_FIELDS.items():
        box = page.find("textbox", label)
        if box is not None and box.value.strip() != wanted.get(key, "").strip():
            return f"type [{box.ref}] [{wanted.get(key, '')}]"
    combo = page.find("combobox", "Occasion")
    if combo is not None and page.selected(combo) != occasion:
        return f"select [{combo.ref}] [{occasion}]"
    radio = page.find("radio", seating)
    if radio is not None and "checked" not in radio.attrs:
        return click(radio)
    return None


def friction(page: Page) -> str | None:
    """Answer the cookie banner, the rewards modal and the sign-in prompt."""
    for name in ("Accept all cookies", "No thanks", "Continue as guest"):
        node = page.find("link", name)
        if node is not None and (name != "Continue as guest" or page.title.startswith("Sign in")):
            return click(node)
    return None


class BookingScripted(ScriptedPolicy):
    """Base: the page's own actions are the alternatives `propose` ranks after the choice.

    Scripted agents read the whole page: the env's full snapshot when they are given the
    env (`env.unwrapped.page_axtree`; the observation a model reads is the compact tree of
    `envs/booking/observation.py`), else the step context's observation.
    """

    def __init__(self, env=None) -> None:
        self.env = env

    def page_text(self, ctx: StepContext) -> str:
        full = getattr(getattr(self.env, "unwrapped", self.env), "page_axtree", "") if self.env is not None else ""
        return full or ctx.observation

    def _candidates(self, ctx: StepContext, choice: str) -> list[str]:
        others = page_actions(Page(self.page_text(ctx)), instruction_fields(ctx.goal))
        return [choice] + [a for a in others if a != choice]


class BookingRulePolicy(BookingScripted):
    """Books the first free table of the first result under the instruction's name,
    phone and email: the site's defaults for everything else (WebShop's rule baseline)."""

    name = "rule"

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        page = Page(self.page_text(ctx))
        step = friction(page) or _forward(page, instruction_fields(ctx.goal))
        return step or HOME


def _forward(page: Page, fields: dict[str, str]) -> str | None:
    title = page.title
    if title == "Find a table":
        return click(page.find("button", "Find a table"))
    if title.startswith("Restaurants"):
        results = page.in_list("Results")
        return click(results[0]) if results else None
    if title == "Complete your reservation":
        fill = fill_details(page, fields, "None", "No preference")
        return fill or click(page.find("button", "Continue to review"))
    if title == "Review your reservation":
        return click(page.find("button", "Confirm reservation"))
    if page.find("heading", "Reserve"):
        slots = page.in_list("Available times")
        return click(slots[0]) if slots else None
    return None


class BookingRandomPolicy(BookingScripted):
    """Picks uniformly among the page's named actions (`envs/booking/actions.py`), so what it
    does reads in the action itself. Like MiniWoB's random agents, it types words of the
    instruction, never invented text: each text box gets each of `typed_values` (the
    name, phone, email and note the instruction gives, and its capitalised phrases, e.g.
    the restaurant's name)."""

    name = "random"

    def _actions(self, ctx: StepContext) -> list[str]:
        return named_actions(self.page_text(ctx), typed_values(ctx.goal))

    def _candidates(self, ctx: StepContext, choice: str) -> list[str]:
        return [choice] + [a for a in self._actions(ctx) if a != choice]

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        actions = self._actions(ctx)
        rng = rng if rng is not None else np.random.default_rng()
        return actions[int(rng.integers(len(actions)))] if actions else "scroll [down]"

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        n = max(1, len(self._actions(ctx)))
        return [-math.log(n) for _ in actions]


class BookingOraclePolicy(BookingScripted):
    """Books the goal's target through every widget: calendar, selects, filters and
    sorting, the free-time buttons or the alternatives, the details form, the review."""

    name = "oracle"

    def __init__(self, env) -> None:
        super().__init__(env)

    def _task(self):
        return getattr(self.env, "unwrapped", self.env).task

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        task = self._task()
        goal = task.goal
        target = task.site.by_id[goal.restaurant_ids[0]]
        page = Page(self.page_text(ctx))
        title = page.title
        step = friction(page)
        if step is None and title == "Find a table":
            step = self._home(page, goal, target)
        elif step is None and title.startswith("Restaurants"):
            step = self._results(page, goal, target, ctx.history)
        elif step is None and title == "Complete your reservation":
            wanted = {k: getattr(goal, k) or "" for k in TEXT_FIELDS.values()}
            step = fill_details(page, wanted, goal.occasion or "None", goal.seating or "No preference") or click(
                page.find("button", "Continue to review"))
        elif step is None and title == "Review your reservation":
            step = click(page.find("button", "Confirm reservation"))
        elif step is None and title == target.name:
            slot = page.find("link", format_time(goal.time))
            step = click(slot) if slot else None
        return step or HOME

    @staticmethod
    def _home(page: Page, goal, target) -> str:
        day = date.fromisoformat(goal.date)
        if page.find("link", "Close calendar"):
            link = page.find("link", format_date(day)) or page.find("link", "Next month")
            return click(link)
        if page.text_starting("Date: ") != f"Date: {format_date(day)}":
            return click(page.find("button", "Change date"))
        search = goal.kind != "specified"
        for label, wanted in (("Time", format_time(goal.search_time)), ("Party size", party_label(goal.party_size)),
                              ("Neighbourhood", target.neighbourhood if search else "Any neighbourhood")):
            combo = page.find("combobox", label)
            if page.selected(combo) != wanted:
                return f"select [{combo.ref}] [{wanted}]"
        box = page.find("textbox", "Restaurant or cuisine")
        text = "" if search else target.name
        if box.value != text:
            return f"type [{box.ref}] [{text}]"
        return click(page.find("button", "Find a table"))

    @staticmethod
    def _results(page: Page, goal, target, history: list[str]) -> str | None:
        if goal.kind != "specified":
            rating = "4.5 and up" if target.rating >= 4.5 else "4.0 and up" if target.rating >= 4.0 else "Any rating"
            sort = SORTS["rating" if goal.kind == "best_rated" else "match"]
            for label, wanted in (("Cuisine", target.cuisine), ("Rating", rating), ("Sort by", sort)):
                combo = page.find("combobox", label)
                if page.selected(combo) != wanted:
                    return f"select [{combo.ref}] [{wanted}]"
            if history and history[-1].startswith("select"):
                return click(page.find("button", "Apply filters"))
        link = page.find("link", target.name)
        if link is not None:
            return click(link)
        more = page.find("link", "Next page")
        return click(more) if more else None



def booking_policy(spec: str, env) -> ScriptedPolicy | None:
    """The booking agent a scripted spec ("oracle", "rule", "random") names for a booking
    env; None when `env` is not one (then the shop's agents apply)."""
    from webgrove.envs.booking.task import BookingTask

    if not isinstance(getattr(getattr(env, "unwrapped", env), "task", None), BookingTask):
        return None
    if spec == "oracle":
        return BookingOraclePolicy(env)
    if spec not in ("rule", "random"):
        from webgrove.envs.errors import UsageError

        raise UsageError(f"policy {spec!r} reads the shop's item pages; on the booking site use oracle, rule or random")
    return {"rule": BookingRulePolicy, "random": BookingRandomPolicy}[spec](env)
