"""The shop's action vocabulary, shared by the env, its site and every shop agent.

WebShop's actions are `search[query]` (on the search page) and `click[label]`, where
a label is a button, a product id or an option value, lower-cased in
`available_actions`. Pages are `[SEP]`-joined texts. Agents import these names
instead of copying literals.
"""
from __future__ import annotations

import re

SEARCH, CLICK = "search", "click"
SEP = "[SEP]"
SEARCH_ACTION = "search[...]"  # stands for "any query" in available_actions

# Button labels, as WebShop prints them.
BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SUB_PAGE_LABELS = {"description": "Description", "features": "Features",
                   "reviews": "Reviews", "attributes": "Attributes"}
NAVIGATION_LABELS = frozenset(x.lower() for x in (BACK_TO_SEARCH, NEXT_PAGE, PREV_PAGE))
SUB_PAGE_CLICKS = frozenset(x.lower() for x in SUB_PAGE_LABELS.values())
RESERVED_LABELS = NAVIGATION_LABELS | SUB_PAGE_CLICKS | {BUY_NOW.lower()}

# A product id (WebShop's ASIN) as it appears in labels: "b" + 9 lower-case letters/digits.
PRODUCT_ID = re.compile(r"b[0-9a-z]{9}")
PRICE_CLAUSE_TEMPLATE = ", and price lower than {limit:.2f} dollars"
_PRICE_CLAUSE = re.compile(r",?\s*and price lower than [0-9.]+ dollars\s*$", re.IGNORECASE)
_ACTION = re.compile(r"^\s*(search|click)\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)


class InvalidAction(ValueError):
    """The action is not valid on the current page (the env turns this into info['error'])."""


def parse_action(action: str) -> tuple[str, str]:
    """Split 'search[q]' / 'click[label]' into (verb, argument). Raises InvalidAction."""
    if not isinstance(action, str):
        raise InvalidAction(
            f"actions are strings like 'search[query]' or 'click[label]', got {type(action).__name__}")
    m = _ACTION.match(action)
    if m is None:
        raise InvalidAction(
            f"cannot parse action {action[:80]!r}: expected 'search[query]' or 'click[label]'")
    return m.group(1).lower(), m.group(2).strip()


def is_shop_action(action: str) -> bool:
    """Whether `action` is in the shop's grammar (`search[...]` or `click[...]`)."""
    return isinstance(action, str) and _ACTION.match(action) is not None


def search_action(query: str) -> str:
    """`search[query]`."""
    return f"{SEARCH}[{query}]"


def click_action(label: str) -> str:
    """`click[label]`, lower-cased as in `available_actions`."""
    return f"{CLICK}[{label.lower()}]"


def click_label(action: str) -> str | None:
    """The lower-cased label of a `click[label]` action, or None for anything else."""
    try:
        verb, arg = parse_action(action)
    except InvalidAction:
        return None
    return arg.lower() if verb == CLICK else None


def is_product_id(label: str) -> bool:
    """Whether a click label is a product id (a result row), e.g. "b000syn042"."""
    return PRODUCT_ID.fullmatch(label) is not None


def split_page(observation: str) -> list[str]:
    """The parts of a `[SEP]`-joined page text, stripped."""
    return [part.strip() for part in observation.split(SEP)]


def price_clause(limit: float) -> str:
    """The end of an instruction that sets a price limit."""
    return PRICE_CLAUSE_TEMPLATE.format(limit=limit)


def instruction_query(instruction: str) -> str:
    """The instruction without its price clause: what a shopper would type."""
    return _PRICE_CLAUSE.sub("", instruction).strip().rstrip(".")
