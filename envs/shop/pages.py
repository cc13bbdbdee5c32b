"""The shop's one page renderer.

`build_page` turns a state into a `Page`: an ordered list of elements (text,
buttons, product links, option buttons, the search bar). The three observation
modes are serializations of that same list: `to_text` (WebShop's `[SEP]`
style), `to_text_rich` (buttons marked as in WebShop's `text_rich`) and
`to_html` (the page the HTTP site serves, whose links encode the next state in
the URL, so the browser's back button and a reload behave as on a real shop).
"""
from __future__ import annotations

import html
import json
from typing import NamedTuple
from urllib.parse import quote, urlencode

from webgrove.envs.shop.catalog import Goal
from webgrove.envs.shop.engine import (BACK_TO_SEARCH, BUY_NOW, DONE, ITEM, NEXT_PAGE, PREV_PAGE, RESULTS,
                              SEARCH, SUB, SUB_PAGE_LABELS, SUB_PAGES, InvalidAction, Purchase,
                              ShopEngine, ShopState)

# Element kinds
TEXT, INSTRUCTION, BUTTON, PRODUCT, OPTION, OPTION_NAME, SEARCH_BAR, HEADING = (
    "text", "instruction", "button", "product", "option", "option_name", "search_bar", "heading")


class Element(NamedTuple):
    kind: str
    text: str
    label: str = ""  # the click[...] label, for clickable elements
    selected: bool = False
    extra: str = ""  # product title / price on result rows


class Page(NamedTuple):
    kind: str
    elements: tuple[Element, ...]


def format_price(pricing: list[float]) -> str:
    if len(pricing) >= 2 and pricing[0] != pricing[1]:
        return f"${pricing[0]:.2f} to ${pricing[1]:.2f}"
    return f"${pricing[0]:.2f}"


def _button(text: str) -> Element:
    return Element(BUTTON, text, text.lower())


def build_page(engine: ShopEngine, state: ShopState, goal: Goal,
               purchase: Purchase | None = None) -> Page:
    """The elements of the page the shopper sees in `state`."""
    els: list[Element] = []
    if state.page == SEARCH:
        els += [Element(HEADING, "WebShop"), Element(TEXT, "Instruction:"),
                Element(INSTRUCTION, goal.instruction), Element(SEARCH_BAR, "Search")]
        return Page(SEARCH, tuple(els))
    if state.page == DONE:
        return Page(DONE, tuple(_done_elements(engine, state, goal, purchase)))
    els += [Element(TEXT, "Instruction:"), Element(INSTRUCTION, goal.instruction),
            _button(BACK_TO_SEARCH)]
    if state.page == RESULTS:
        total = len(engine.index.search(state.query))
        els.append(Element(TEXT, f"Page {state.page_num} (Total results: {total})"))
        if state.page_num > 1:
            els.append(_button(PREV_PAGE))
        if state.page_num < engine.num_pages(state.query):
            els.append(_button(NEXT_PAGE))
        for p in engine.page_results(state):
            els.append(Element(PRODUCT, p.asin, p.asin.lower(), extra=p.title))
            els.append(Element(TEXT, p.title))
            els.append(Element(TEXT, format_price(p.pricing)))
        return Page(RESULTS, tuple(els))
    product = engine.catalog.product(state.asin)
    els.append(_button(PREV_PAGE))
    if state.page == ITEM:
        selected = state.selected()
        for name, values in product.options.items():
            els.append(Element(OPTION_NAME, name))
            for v in values:
                els.append(Element(OPTION, v, v.lower(), selected=selected.get(name) == v, extra=name))
        els.append(Element(HEADING, product.title))
        els.append(Element(TEXT, f"Price: {format_price([product.price])}"))
        rating = "N.A." if product.rating is None else f"{product.rating:.1f}"
        els.append(Element(TEXT, f"Rating: {rating}"))
        els += [_button(SUB_PAGE_LABELS[s]) for s in SUB_PAGES]
        els.append(_button(BUY_NOW))
        return Page(ITEM, tuple(els))
    # SUB: the chosen tab's content
    if state.sub_page == "description":
        els.append(Element(TEXT, product.description or "N.A."))
    elif state.sub_page == "features":
        els += [Element(TEXT, b) for b in product.bullet_points] or [Element(TEXT, "N.A.")]
    elif state.sub_page == "reviews":
        for r in product.reviews:
            els += [Element(TEXT, r.title), Element(TEXT, f"{r.score} out of 5 stars"), Element(TEXT, r.body)]
        if not product.reviews:
            els.append(Element(TEXT, "N.A."))
    else:  # attributes
        els += [Element(TEXT, a) for a in product.attributes] or [Element(TEXT, "N.A.")]
    return Page(SUB, tuple(els))


def _done_elements(engine: ShopEngine, state: ShopState, goal: Goal,
                   purchase: Purchase | None) -> list[Element]:
    product = engine.catalog.product(state.asin)
    els = [Element(HEADING, "Thank you for shopping with us!"), Element(TEXT, "Purchased"),
           Element(TEXT, product.asin), Element(TEXT, product.title)]
    if state.options:
        els.append(Element(TEXT, "Options: " + ", ".join(f"{k}: {v}" for k, v in state.options)))
    els.append(Element(TEXT, f"Price: {format_price([product.price])}"))
    if purchase is not None:
        els += [Element(TEXT, "Your score (min 0.0, max 1.0)"), Element(TEXT, f"{purchase.reward:.4g}")]
    return els


# -- text modes ------------------------------------------------------------------

def to_text(page: Page) -> str:
    """WebShop's `text` observation: element texts joined by ' [SEP] '."""
    return " [SEP] ".join(e.text for e in page.elements)


def to_text_rich(page: Page) -> str:
    """WebShop's `text_rich` observation: clickables marked as [button] ... [button_]."""
    parts = []
    for e in page.elements:
        if e.kind in (BUTTON, PRODUCT, OPTION):
            tag = "clicked button" if e.selected else "button"
            parts.append(f"[{tag}] {e.text} [{tag}_]")
        elif e.kind == SEARCH_BAR:
            parts.append("[button] Search [button_]")
        else:
            parts.append(e.text)
    return " [SEP] ".join(parts)


# -- URLs: the state lives in the URL, as on WebShop's site -----------------------

def state_to_url(state: ShopState, base: str = "") -> str:
    """The site path (under `base`) that shows `state`."""
    if state.page == SEARCH:
        return f"{base}/"
    params: list[tuple[str, str]] = [("q", state.query), ("page", str(state.page_num))]
    if state.page == RESULTS:
        return f"{base}/search?{urlencode(params)}"
    params += [(f"o.{name}", value) for name, value in state.options]
    asin = quote(state.asin)
    if state.page == ITEM:
        return f"{base}/item/{asin}?{urlencode(params)}"
    if state.page == SUB:
        return f"{base}/item/{asin}/{state.sub_page}?{urlencode(params)}"
    return f"{base}/buy/{asin}?{urlencode(params)}"


def url_to_state(engine: ShopEngine, path: str, params: dict[str, str]) -> ShopState:
    """Inverse of `state_to_url` (path relative to the base). Raises InvalidAction on bad URLs."""
    parts = [p for p in path.split("/") if p]
    query = params.get("q", "")
    try:
        page_num = int(params.get("page", "1"))
    except ValueError:
        raise InvalidAction(f"bad page number {params.get('page')!r}") from None
    if not parts:
        return ShopState()
    if parts == ["search"]:
        if not query.strip():
            raise InvalidAction("search needs a query")
        if not 1 <= page_num <= engine.num_pages(query):
            raise InvalidAction(f"page {page_num} is out of range")
        return ShopState(page=RESULTS, query=query, page_num=page_num)
    if parts[0] not in ("item", "buy") or len(parts) < 2 or not engine.catalog.has_product(parts[1]):
        raise InvalidAction(f"no such page: /{'/'.join(parts)}")
    product = engine.catalog.product(parts[1])
    options = []
    for key, value in params.items():
        if key.startswith("o."):
            name = key[2:]
            if value not in product.options.get(name, ()):
                raise InvalidAction(f"{value!r} is not a {name!r} option of {product.asin}")
            options.append((name, value))
    state = ShopState(page=ITEM, query=query, page_num=page_num, asin=product.asin,
                      options=tuple(sorted(options)))
    if parts[0] == "buy":
        return state._replace(page=DONE)
    if len(parts) == 3 and parts[2] in SUB_PAGES:
        return state._replace(page=SUB, sub_page=parts[2])
    if len(parts) != 2:
        raise InvalidAction(f"no such page: /{'/'.join(parts)}")
    return state


# -- HTML ------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#232f3e;color:#fff;padding:10px 24px;font-size:22px;font-weight:600}
main{max-width:980px;margin:16px auto;background:#fff;padding:16px 24px;border-radius:8px;box-shadow:0 1px 3px #0002}
.instruction{background:#fff8e1;border:1px solid #f0d98c;padding:8px 12px;border-radius:6px;margin-bottom:12px}
.btn,.opt{display:inline-block;padding:6px 12px;margin:3px;border:1px solid #aaa;border-radius:16px;
 text-decoration:none;color:#222;background:#fafafa}
.btn:hover,.opt:hover{background:#eee}
.opt[aria-pressed=true]{background:#ffd814;border-color:#c7a600;font-weight:600}
.buy{background:#ffa41c;border-color:#c77d00;font-weight:600}
.result{display:flex;gap:12px;padding:8px 0;border-bottom:1px solid #eee}
.result .asin{min-width:110px}
.price{color:#b12704;font-weight:600}
.option-group{margin:8px 0}.option-group h4{margin:4px 0;text-transform:capitalize}
form.search input{width:70%;padding:8px;font-size:16px}form.search button{padding:8px 16px;font-size:16px}
table.reward td{padding:2px 10px;border-bottom:1px solid #eee}
"""


def _a(label: str, href: str, cls: str = "btn", pressed: bool | None = None) -> str:
    aria = "" if pressed is None else f' role="button" aria-pressed="{str(pressed).lower()}"'
    return f'<a class="{cls}" href="{html.escape(href)}"{aria}>{html.escape(label)}</a>'


def to_html(page: Page, engine: ShopEngine, state: ShopState, base: str = "",
            purchase: Purchase | None = None) -> str:
    """The page as the HTTP site serves it. Links point at the state each click leads to."""
    esc = html.escape

    def href(label: str) -> str:
        return state_to_url(engine.step(state, f"click[{label}]"), base)

    body: list[str] = []
    for e in page.elements:
        if e.kind == HEADING:
            body.append(f"<h2>{esc(e.text)}</h2>")
        elif e.kind == INSTRUCTION:
            body.append(f'<div class="instruction" id="instruction-text">{esc(e.text)}</div>')
        elif e.kind == SEARCH_BAR:
            body.append(
                f'<form class="search" action="{esc(base)}/search" method="get" role="search">'
                '<input type="text" name="q" aria-label="Search query" placeholder="Search products" '
                'autofocus required><button type="submit">Search</button></form>')
        elif e.kind == BUTTON:
            cls = "btn buy" if e.label == BUY_NOW.lower() else "btn"
            body.append(_a(e.text, href(e.label), cls))
        elif e.kind == PRODUCT:
            body.append(f'<div class="result"><span class="asin">{_a(e.text, href(e.label), "product-link")}</span>')
        elif e.kind == OPTION_NAME:
            body.append(f'<div class="option-group"><h4>{esc(e.text)}</h4>')
        elif e.kind == OPTION:
            body.append(_a(e.text, href(e.label), "opt", pressed=e.selected))
        elif e.kind == TEXT:
            cls = "price" if e.text.startswith("$") or e.text.startswith("Price:") else "text"
            body.append(f'<div class="{cls}">{esc(e.text)}</div>')
    out = _close_groups(page, body)
    if page.kind == DONE and purchase is not None:
        rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(_fmt(v))}</td></tr>"
                       for k, v in purchase.reward_info.items())
        out.append(f'<h3>Reward components</h3><table class="reward" id="reward-info">{rows}</table>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>WebShop</title>"
            f"<style>{_CSS}</style></head><body><header>WebShop</header><main>"
            + "".join(out) + "</main></body></html>")


def _close_groups(page: Page, body: list[str]) -> list[str]:
    """Close the <div>s opened for result rows and option groups at the right places."""
    out: list[str] = []
    open_div = False
    for e, chunk in zip(_html_elements(page), body):
        starts_block = e.kind in (PRODUCT, OPTION_NAME)
        ends_block = e.kind in (BUTTON, HEADING) or starts_block
        if open_div and ends_block:
            out.append("</div>")
            open_div = False
        out.append(chunk)
        if starts_block:
            open_div = True
    if open_div:
        out.append("</div>")
    return out


def _html_elements(page: Page) -> list[Element]:
    return [e for e in page.elements if e.kind in
            (HEADING, INSTRUCTION, SEARCH_BAR, BUTTON, PRODUCT, OPTION_NAME, OPTION, TEXT)]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)
