"""Evaluators for `webgrove/Browser-v0`: is the goal reached on this page?

An evaluator is called with the page (and the agent's `stop` answer, if any) after
every step and returns a score in [0, 1]; 1 means success. Evaluators are Python
objects chosen by the person who sets up the task, never model output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from playwright.sync_api import Page


@runtime_checkable
class Evaluator(Protocol):
    def __call__(self, page: Page, answer: str | None) -> float:
        """A score in [0, 1] for the page (and the `stop` answer, None before stop)."""
        ...


@dataclass(frozen=True)
class UrlMatch:
    """Success when the page URL matches.

    Args:
        pattern: the URL (or, with regex=True, a regular expression searched in it).
        regex: treat pattern as a regular expression.
    """

    pattern: str
    regex: bool = False

    def __call__(self, page: Page, answer: str | None) -> float:
        url = page.url
        if self.regex:
            return float(re.search(self.pattern, url) is not None)
        return float(url.rstrip("/") == self.pattern.rstrip("/"))


@dataclass(frozen=True)
class TextPresent:
    """Success when a text appears in the page's visible text (or in the `stop` answer).

    Args:
        text: the text to look for (case-insensitive, whitespace-normalized).
        in_answer: look in the agent's `stop` answer instead of the page.
    """

    text: str
    in_answer: bool = False

    def __call__(self, page: Page, answer: str | None) -> float:
        haystack = (answer or "") if self.in_answer else page.locator("body").inner_text()
        return float(_norm(self.text) in _norm(haystack))


@dataclass(frozen=True)
class PagePredicate:
    """Success when `predicate(page)` is true (any Python check on the Playwright page).

    Args:
        predicate: a function of the page returning a bool (or a score in [0, 1]).
        name: a label for reports.
    """

    predicate: Callable[[Page], bool | float]
    name: str = "predicate"

    def __call__(self, page: Page, answer: str | None) -> float:
        return float(self.predicate(page))


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()
