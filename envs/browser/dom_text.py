"""A page's visible text and controls, cleaned from its HTML (the `dom_text` observation).

For models that read pages rather than accessibility trees: scripts, styles and
hidden elements are dropped; controls are written as `[button] Buy Now`,
`[link] Next >`, `[textbox name=q] value`, `[checkbox x] label`, `[select size] a | *b*`.
"""
from __future__ import annotations

import re

_DROP = ("script", "style", "noscript", "template", "head", "svg", "canvas", "iframe")
_BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def html_to_dom_text(html: str) -> str:
    """The visible text and controls of an HTML page, one block per line."""
    from bs4 import BeautifulSoup, NavigableString, Tag  # light, but only needed here

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        if (tag.has_attr("hidden") or tag.get("aria-hidden") == "true"
                or _HIDDEN_STYLE.search(tag.get("style", "") or "")
                or (tag.name == "input" and (tag.get("type") or "").lower() == "hidden")):
            tag.decompose()

    out: list[str] = []

    def emit(text: str) -> None:
        out.append(text)

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:  # not comments, doctypes, CDATA
                    emit(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            control = _control(child)
            if control is not None:
                emit(f" {control} ")
                continue
            block = child.name in _BLOCKS
            if block:
                emit("\n")
            walk(child)
            if block:
                emit("\n")

    walk(soup.body or soup)
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line)


def _text(tag) -> str:
    return _SPACES.sub(" ", tag.get_text(" ", strip=True)).strip()


def _control(tag) -> str | None:
    """The one-line form of a control element, or None for other elements."""
    name = tag.name
    if name == "a" and tag.has_attr("href"):
        return f"[link] {_text(tag)}"
    if name == "button":
        return f"[button] {_text(tag)}"
    if name == "textarea":
        return f"[textbox{_named(tag)}] {tag.get_text()}".rstrip()
    if name == "select":
        options = []
        for opt in tag.find_all("option"):
            label = _text(opt)
            options.append(f"*{label}*" if opt.has_attr("selected") else label)
        return f"[select{_named(tag)}] " + " | ".join(options)
    if name == "input":
        kind = (tag.get("type") or "text").lower()
        if kind in ("submit", "button", "reset"):
            return f"[button] {tag.get('value', kind)}"
        if kind in ("checkbox", "radio"):
            mark = " checked" if tag.has_attr("checked") else ""
            return f"[{kind}{_named(tag)}{mark}]"
        placeholder = tag.get("placeholder")
        hint = f" placeholder={placeholder!r}" if placeholder else ""
        return f"[textbox{_named(tag)}{hint}] {tag.get('value', '')}".rstrip()
    return None


def _named(tag) -> str:
    name = tag.get("name") or tag.get("id")
    return f" name={name}" if name else ""
