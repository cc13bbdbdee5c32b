"""Scripted solutions for a few MiniWoB++ tasks, for tests and benchmarks.

A solution reads the goal once and returns a plan: a list of `PlanStep`s that name
their target by ARIA role and accessible name (or position), not by an env's
element ids, so the same plan can drive our env (`plan_to_actions` resolves refs
in the axtree) and other MiniWoB envs in the benchmarks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from webgrove.envs.browser.axtree import find_ref


@dataclass(frozen=True)
class PlanStep:
    """Click, type into or select on the `nth` element with `role` (and `name`, if given)."""

    kind: str  # "click" | "type" | "select"
    role: str
    name: str | None = None
    nth: int = 0
    text: str | None = None  # typed text or chosen option


def _quoted(goal: str) -> list[str]:
    return re.findall(r'"([^"]*)"', goal)


def click_test(goal: str) -> list[PlanStep]:
    return [PlanStep("click", "button", "Click Me!")]


def click_button(goal: str) -> list[PlanStep]:
    return [PlanStep("click", "button", _quoted(goal)[0])]


def enter_text(goal: str) -> list[PlanStep]:
    return [PlanStep("type", "textbox", text=_quoted(goal)[0]), PlanStep("click", "button", "Submit")]


def click_checkboxes(goal: str) -> list[PlanStep]:
    m = re.fullmatch(r"Select (.*) and click Submit\.", goal)
    if m is None:
        raise ValueError(f"unexpected click-checkboxes goal {goal!r}")
    names = [] if m[1] == "nothing" else [w.strip() for w in m[1].split(",") if w.strip()]
    return [PlanStep("click", "checkbox", n) for n in names] + [PlanStep("click", "button", "Submit")]


def focus_text(goal: str) -> list[PlanStep]:
    return [PlanStep("click", "textbox")]


def login_user(goal: str) -> list[PlanStep]:
    user, password = _quoted(goal)[:2]
    return [PlanStep("type", "textbox", nth=0, text=user), PlanStep("type", "textbox", nth=1, text=password),
            PlanStep("click", "button", "Login")]


def choose_list(goal: str) -> list[PlanStep]:
    m = re.fullmatch(r"Select (.*) from the list and click Submit\.", goal)
    if m is None:
        raise ValueError(f"unexpected choose-list goal {goal!r}")
    return [PlanStep("select", "combobox", text=m[1]), PlanStep("click", "button", "Submit")]


def click_dialog(goal: str) -> list[PlanStep]:
    return [PlanStep("click", "button", "Close")]


SOLUTIONS: dict[str, Callable[[str], list[PlanStep]]] = {
    "click-test": click_test,
    "click-button": click_button,
    "enter-text": enter_text,
    "click-checkboxes": click_checkboxes,
    "focus-text": focus_text,
    "login-user": login_user,
    "choose-list": choose_list,
    "click-dialog": click_dialog,
}


def plan_step_to_action(step: PlanStep, axtree: str) -> str:
    """The action string of our grammar for one plan step on this page.

    Raises LookupError if the page has no matching element.
    """
    ref = find_ref(axtree, step.role, step.name, step.nth)
    if ref is None:
        raise LookupError(f"no {step.role} {step.name or ''} #{step.nth} on the page")
    if step.kind == "click":
        return f"click [{ref}]"
    if step.kind == "type":
        return f"type [{ref}] [{step.text}]"
    if step.kind == "select":
        return f"select [{ref}] [{step.text}]"
    raise ValueError(f"unknown plan step kind {step.kind!r}")
