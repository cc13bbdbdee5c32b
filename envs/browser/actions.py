"""The browser action grammar: one action per step, parsed, never executed as code.

    click [ref]                 type [ref] [text]           type [ref] [text] [enter]
    select [ref] [option]       press [key]                 scroll [up|down]
    goto [url]                  back                        stop [answer]

`ref` is an element id from the observation's aria snapshot (`e12`, or `f1e3` inside
a frame). The last bracketed argument of an action extends to the last closing
bracket of the line, so typed text may itself contain brackets. A string that does
not match the grammar raises `ActionParseError`; envs turn that into a no-op step
with `info["error"]`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ACTION_KINDS = ("click", "type", "select", "press", "scroll", "goto", "back", "stop")
SCROLL_DIRECTIONS = ("up", "down")
MAX_ACTION_CHARS = 4096

REF_PATTERN = r"(?:f\d+)?e\d+"
_REF = re.compile(REF_PATTERN)
_KEY = re.compile(r"[^\[\]\n]+")
_URL = re.compile(r"\S+")
_AMBIGUOUS_TEXT = re.compile(r"\]\s+\[enter\Z")

# One pattern per verb; arguments are bracketed. Lazy `(.*?)` before an optional
# `[enter]` suffix lets the text itself contain "] [".
_GRAMMAR: dict[str, re.Pattern[str]] = {
    "click": re.compile(rf"click\s+\[({REF_PATTERN})\]", re.S),
    "type": re.compile(rf"type\s+\[({REF_PATTERN})\]\s+\[(.*?)\](\s+\[enter\])?", re.S),
    "select": re.compile(rf"select\s+\[({REF_PATTERN})\]\s+\[(.+)\]", re.S),
    "press": re.compile(r"press\s+\[([^\[\]\n]+)\]"),
    "scroll": re.compile(r"scroll\s+\[(up|down)\]"),
    "goto": re.compile(r"goto\s+\[(\S+)\]"),
    "back": re.compile(r"back"),
    "stop": re.compile(r"stop(?:\s+\[(.*)\])?", re.S),
}


class ActionParseError(ValueError):
    """A string that is not an action of the browser grammar."""


@dataclass(frozen=True)
class BrowserAction:
    """One parsed browser action.

    Attributes:
        kind: one of ACTION_KINDS.
        ref: the target element's ref (click, type, select), else None.
        value: the text (type), option (select), key (press), direction (scroll),
            url (goto) or answer (stop); None for click and back.
        enter: for `type`, whether Enter is pressed after typing.
    """

    kind: str
    ref: str | None = None
    value: str | None = None
    enter: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ActionParseError(f"unknown action kind {self.kind!r}; expected one of {ACTION_KINDS}")
        needs_ref = self.kind in ("click", "type", "select")
        if needs_ref != (self.ref is not None):
            raise ActionParseError(f"{self.kind} {'needs' if needs_ref else 'takes no'} ref")
        if self.ref is not None and not _REF.fullmatch(self.ref):
            raise ActionParseError(f"bad ref {self.ref!r}; refs look like e12 or f1e3")
        needs_value = self.kind not in ("click", "back")
        if needs_value != (self.value is not None):
            raise ActionParseError(f"{self.kind} {'needs' if needs_value else 'takes no'} value")
        if self.enter and self.kind != "type":
            raise ActionParseError("only type takes [enter]")
        if self.kind == "scroll" and self.value not in SCROLL_DIRECTIONS:
            raise ActionParseError(f"scroll direction must be up or down, not {self.value!r}")
        if self.kind == "select" and not self.value:
            raise ActionParseError("select needs a non-empty option")
        if self.kind == "press" and not _KEY.fullmatch(self.value or ""):
            raise ActionParseError(f"bad key {self.value!r}; keys look like Enter, a or Control+A")
        if self.kind == "goto" and not _URL.fullmatch(self.value or ""):
            raise ActionParseError("goto needs a url without spaces")
        if self.kind == "type" and _AMBIGUOUS_TEXT.search(self.value or ""):
            # "type [e1] [x] [enter]" would read back as text "x" plus Enter.
            raise ActionParseError("typed text cannot end with '] [enter'")

    def __str__(self) -> str:
        return format_action(self)


def parse_action(text: str) -> BrowserAction:
    """Parse one action string of the grammar above.

    Leading and trailing whitespace is ignored; anything else that does not match
    the grammar exactly raises ActionParseError with a message saying why.
    """
    if not isinstance(text, str):
        raise ActionParseError(f"an action is a string, not {type(text).__name__}")
    if len(text) > MAX_ACTION_CHARS:
        raise ActionParseError(f"action longer than {MAX_ACTION_CHARS} characters")
    text = text.strip()
    verb = text.split(maxsplit=1)[0] if text else ""
    pattern = _GRAMMAR.get(verb)
    if pattern is None:
        raise ActionParseError(
            f"unknown action {verb!r}; expected one of: " + ", ".join(ACTION_KINDS))
    m = pattern.fullmatch(text)
    if m is None:
        raise ActionParseError(f"malformed {verb} action {text!r}; expected {_USAGE[verb]}")
    if verb == "click":
        return BrowserAction("click", ref=m[1])
    if verb == "type":
        return BrowserAction("type", ref=m[1], value=m[2], enter=m[3] is not None)
    if verb == "select":
        return BrowserAction("select", ref=m[1], value=m[2])
    if verb == "back":
        return BrowserAction("back")
    if verb == "stop":
        return BrowserAction("stop", value=m[1] or "")
    return BrowserAction(verb, value=m[1])  # press, scroll, goto


def format_action(action: BrowserAction) -> str:
    """The canonical string of an action; `parse_action(format_action(a)) == a`."""
    if action.kind == "back":
        return "back"
    if action.kind == "click":
        return f"click [{action.ref}]"
    if action.kind in ("type", "select"):
        suffix = " [enter]" if action.enter else ""
        return f"{action.kind} [{action.ref}] [{action.value}]{suffix}"
    return f"{action.kind} [{action.value}]"


_USAGE = {
    "click": "click [ref]",
    "type": "type [ref] [text] or type [ref] [text] [enter]",
    "select": "select [ref] [option]",
    "press": "press [key], e.g. press [Enter]",
    "scroll": "scroll [up] or scroll [down]",
    "goto": "goto [url]",
    "back": "back",
    "stop": "stop [answer]",
}
