"""Reading Playwright's ai-mode aria snapshot: nodes, refs, and finding an element.

A snapshot line looks like `- button "Buy Now" [ref=e12]`, `- checkbox [checked] [ref=e8]`
or `- textbox [ref=e6]: typed text`; YAML quotes a line that holds special characters
(`- 'button "Say \\"hi\\": now" [ref=e2]'`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

REF_IN_TREE = re.compile(r"\[ref=((?:f\d+)?e\d+)\]")
# Roles whose elements take clicks, text or choices.
INTERACTIVE_ROLES = frozenset({
    "button", "link", "checkbox", "radio", "textbox", "searchbox", "combobox", "listbox",
    "option", "menuitem", "menuitemcheckbox", "menuitemradio", "tab", "switch", "slider",
    "spinbutton", "treeitem",
})
_KEY = re.compile(r'(?P<role>[\w-]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?(?P<attrs>(?: \[[^\]]*\])*)')
_ATTR = re.compile(r"\[([^\]=]+)(?:=([^\]]*))?\]")


@dataclass(frozen=True)
class AxNode:
    """One line of the snapshot.

    Attributes:
        role: the ARIA role ("button", "link", "text", "/url", ...).
        name: the accessible name ("" when none).
        ref: the element ref (e.g. "e12"), None for nodes without one.
        attrs: bracketed attributes other than ref ({"checked": "", "level": "1"}).
        value: the text after the colon (a textbox's value, a node's text).
        depth: indentation level, 0 for the top.
    """

    role: str
    name: str = ""
    ref: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    value: str = ""
    depth: int = 0


def parse_axtree(axtree: str) -> list[AxNode]:
    """The snapshot's lines as nodes, in page order (lines that do not parse are skipped)."""
    nodes = []
    for line in axtree.splitlines():
        stripped = line.lstrip(" ")
        if not stripped.startswith("- "):
            continue
        depth = (len(line) - len(stripped)) // 2
        key, value = _split_key(stripped[2:])
        m = _KEY.fullmatch(key)
        if m is None:
            continue
        attrs = {a: (v or "") for a, v in _ATTR.findall(m["attrs"] or "")}
        ref = attrs.pop("ref", None)
        name = json.loads(f'"{m["name"]}"') if m["name"] is not None else ""
        nodes.append(AxNode(m["role"], name, ref, attrs, value, depth))
    return nodes


def refs_in(axtree: str) -> set[str]:
    """Every ref in the snapshot."""
    return set(REF_IN_TREE.findall(axtree))


def interactive_refs(axtree: str) -> list[str]:
    """Refs of elements that take clicks, text or choices (or show a pointer), in page order."""
    return [n.ref for n in parse_axtree(axtree)
            if n.ref and (n.role in INTERACTIVE_ROLES or n.attrs.get("cursor") == "pointer")]


def find_ref(axtree: str, role: str | tuple[str, ...], name: str | None = None,
             nth: int = 0) -> str | None:
    """The ref of the nth element with this role (and exact accessible name), or None."""
    roles = (role,) if isinstance(role, str) else role
    matches = [n.ref for n in parse_axtree(axtree)
               if n.ref and n.role in roles and (name is None or n.name == name)]
    return matches[nth] if nth < len(matches) else None


def _split_key(item: str) -> tuple[str, str]:
    """Split `key: value` of one YAML list item, unquoting both."""
    if item.startswith("'"):
        end = 1
        while True:
            end = item.find("'", end)
            if end == -1:
                return item[1:].replace("''", "'"), ""
            if item.startswith("''", end):
                end += 2
                continue
            break
        key, rest = item[1:end].replace("''", "'"), item[end + 1:]
    else:
        colon = item.find(": ")
        if colon == -1:
            return item.removesuffix(":"), ""
        key, rest = item[:colon], item[colon:]
    rest = rest.removeprefix(":").strip()
    return key, _unquote(rest)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


# -- document-relative refs -------------------------------------------------------------
# Playwright prefixes a document's refs with the page's document counter (`f3e12` is
# element 12 of the page's 3rd document), so the same page reached on a reused tab
# would read differently from a fresh one. The env shows refs relative to the
# episode's first document (`base`): that document's refs carry no prefix.
_RAW_REF = re.compile(r"\[ref=(?:f(\d+))?e(\d+)\]")
_REF_PARTS = re.compile(r"(?:f(\d+))?e(\d+)")


def first_frame_seq(axtree: str) -> int | None:
    """The document number of the snapshot's first ref (its top document), None if no ref."""
    m = _RAW_REF.search(axtree)
    return None if m is None else int(m[1] or 0)


def relative_refs(axtree: str, base: int) -> str:
    """The snapshot with each ref's document number counted from `base`."""
    if base == 0:
        return axtree

    def shift(m: re.Match[str]) -> str:
        seq = int(m[1] or 0) - base
        return f"[ref=f{seq}e{m[2]}]" if seq > 0 else f"[ref=e{m[2]}]"

    return _RAW_REF.sub(shift, axtree)


def absolute_ref(ref: str, base: int) -> str:
    """Playwright's ref for a ref shown by `relative_refs(…, base)`."""
    m = _REF_PARTS.fullmatch(ref)
    if m is None or base == 0:
        return ref
    seq = int(m[1] or 0) + base
    return f"f{seq}e{m[2]}" if seq > 0 else f"e{m[2]}"
