"""Named actions on the booking site: what an element is called, not its ref.

`webgrove/Booking-v0` takes the browser grammar (`click [e12]`) and these, which name
their target by its accessible name, so a reader of the action alone (a person, the
lexical critic, a model's training data) knows what it does:

    click[7:30 pm]              a link, button, radio or checkbox by name
    click[Time: 7:30 pm]        an option of a list (combobox) by the list's name
    type[First name][Ada]       text into a box by the box's name

A later element with the same name as an earlier one is `name (2)`, `name (3)`, in
page order; the same page always gives the same names.
"""
from __future__ import annotations

import re

from webgrove.envs.browser.axtree import AxNode, parse_axtree

CLICKABLE = ("link", "button", "radio", "checkbox")
TEXT_BOXES = ("textbox", "searchbox")
_CLICK = re.compile(r"click\[(.+)\]", re.S)
_TYPE = re.compile(r"type\[(.+?)\]\[(.*)\]", re.S)


def is_named_action(action: str) -> bool:
    """Whether `action` is in this vocabulary (else it may be a browser action)."""
    text = action.strip()
    return bool(_CLICK.fullmatch(text) or _TYPE.fullmatch(text))


def element_names(axtree: str) -> list[tuple[str, AxNode, str | None]]:
    """(name, node, option) for every element that can be acted on, in page order:
    clickables and text boxes with `option` None, each option of a list with its label."""
    out, seen = [], {}
    box: AxNode | None = None
    for node in parse_axtree(axtree):
        if box is not None and node.depth <= box.depth:
            box = None
        if node.role == "option" and box is not None:
            out.append((_unique(f"{box.name or 'list'}: {node.name}", seen), box, node.name))
        elif node.ref and node.role == "combobox":
            box = node
        elif node.ref and node.role in CLICKABLE + TEXT_BOXES:
            out.append((_unique(node.name or node.role, seen), node, None))
    return out


def _unique(name: str, seen: dict[str, int]) -> str:
    name = " ".join(name.replace("[", "(").replace("]", ")").split())
    seen[name] = seen.get(name, 0) + 1
    return name if seen[name] == 1 else f"{name} ({seen[name]})"


def named_actions(axtree: str, typed: tuple[str, ...] = ()) -> list[str]:
    """Every named action on the page: each click and option, and each of `typed` in each text box."""
    actions = []
    for name, node, option in element_names(axtree):
        if node.role in TEXT_BOXES:
            actions += [f"type[{name}][{text}]" for text in typed if text]
        else:
            actions.append(f"click[{name}]")
    return actions


def to_browser_action(action: str, axtree: str) -> str:
    """The browser action for a named action on this page; other actions unchanged.

    Raises LookupError when the name matches nothing on the page.
    """
    text = action.strip()
    click, typing = _CLICK.fullmatch(text), _TYPE.fullmatch(text)
    if not (click or typing):
        return action
    wanted = (click or typing)[1].strip()
    for name, node, option in element_names(axtree):
        if name != wanted:
            continue
        if typing:
            if node.role not in TEXT_BOXES:
                raise LookupError(f"{action!r}: {name!r} is a {node.role}, not a text box; use click[{name}]")
            return f"type [{node.ref}] [{typing[2]}]"
        if node.role in TEXT_BOXES:
            raise LookupError(f"{action!r}: {name!r} is a text box; use type[{name}][text]")
        return f"select [{node.ref}] [{option}]" if option is not None else f"click [{node.ref}]"
    raise LookupError(f"{action!r}: nothing on this page is called {wanted!r}")


def parse_named(action: str) -> tuple[str, str, str | None] | None:
    """("click", name, None) or ("type", box name, text) for a named action, else None."""
    text = action.strip()
    if m := _TYPE.fullmatch(text):
        return "type", m[1].strip(), m[2]
    if m := _CLICK.fullmatch(text):
        return "click", m[1].strip(), None
    return None


def current_values(axtree: str) -> dict[str, str]:
    """What the page's controls hold now, by the name their named actions use: a text box's
    text, a list's selected option, "checked" for a checked radio or checkbox."""
    out: dict[str, str] = {}
    for name, node, option in element_names(axtree):
        if option is None and node.role in TEXT_BOXES:
            out[name] = node.value.strip()
        elif option is None and "checked" in node.attrs:
            out[name] = "checked"
    out.update(_selected_options(axtree))
    return out


def _selected_options(axtree: str) -> list[tuple[str, str]]:
    """(list name, its selected option) for every list on the page."""
    out, box = [], None
    for node in parse_axtree(axtree):
        if box is not None and node.depth <= box.depth:
            box = None
        if node.ref and node.role == "combobox":
            box = node
        elif box is not None and node.role == "option" and "selected" in node.attrs:
            out.append((" ".join((box.name or "list").replace("[", "(").replace("]", ")").split()), node.name))
    return out
