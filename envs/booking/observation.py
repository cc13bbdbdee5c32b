"""The booking site's compact observation: the aria snapshot without what no reader acts on.

`webgrove/Booking-v0` shows `compact_axtree(snapshot)` as `obs["axtree"]`; actions are still
read against the whole snapshot (`BrowserEnv` keeps it), so every named action and ref of
the page works whether or not the observation shows it. The compact tree keeps the
snapshot's syntax (`envs/browser/axtree.py` parses it) and every element the agents read:
headings, links, buttons, text boxes with their values, radios and checkboxes with their
state, lists with their selected option, and the page's text. It drops, deterministically:

- the `/url:` line under every link and the `[cursor=pointer]` marks;
- wrappers without a name or text (`generic`, `paragraph`, `group`, `listitem`, the page
  banner and its navigation), their children moved up; a paragraph's text becomes `text:`;
- a `text:` line that only repeats the name of the control right before or after it (a label);
- the `:` ending a link whose only child was its `/url:`;
- the options of a list longer than `MAX_OPTIONS` (1), but the selected one, with a
  `text: N more options` line in their place (every option stays an action:
  `info["available_actions"]` lists them, e.g. `click[Time: 5:30 pm]`).

- a calendar grid, for one line naming its first and last bookable day.

Then `fit` keeps the tree within `MAX_CHARS`: long text lines go first (descriptions,
opening hours), then lines from the middle. The home page is 3,133 -> 650
characters, and a 1,024-position model's prompt (goal, page, actions, history) fits.
"""
from __future__ import annotations

import re

MAX_OPTIONS = 1
LONG_TEXT = 100  # text lines longer than this (descriptions, opening hours) are the first to go
MAX_CHARS = 750  # with a goal, 400 characters of actions and 4 history actions: < 1,000 tiny-model tokens
_LINE = re.compile(r"^(\s*)- (.*)$")
_WRAPPER = re.compile(r"^(generic|paragraph|group|listitem|banner|navigation \"Account\")( \[active\])?"
                      r"( \[ref=[^\]]+\])?:$")
_PARAGRAPH = re.compile(r"^paragraph \[ref=[^\]]+\]: ")
_NAMED = re.compile(r'^(\w+) "((?:[^"\\]|\\.)*)"')


def compact_axtree(axtree: str, max_chars: int = MAX_CHARS) -> str:
    """The compact observation of a booking page's aria snapshot (see the module docstring)."""
    return fit(_pruned(_without_grids(axtree.splitlines())), max_chars)


def _pruned(lines: list[str]) -> list[str]:
    """The snapshot's lines without what no reader acts on (the module docstring's list)."""
    parsed = [_parse(line) for line in lines]
    out: list[str] = []
    removed: list[int] = []  # depths of dropped wrappers above the current line
    options: list[tuple[int, int, list[str]]] = []  # open long lists: (depth, shown depth, dropped options)
    for i, (depth, body) in enumerate(parsed):
        if body is None:
            out.append(lines[i])
            continue
        while removed and removed[-1] >= depth:
            removed.pop()
        _close_lists(options, depth, out)
        if body.startswith("/url:"):
            continue
        if _WRAPPER.match(body):
            removed.append(depth)
            continue
        if body.startswith("text: ") and _is_label(body[6:].strip().strip('"'), parsed, i):
            continue
        if options and body.startswith("option ") and "[selected]" not in body:
            options[-1][2].append(body)
            continue
        shown = depth - len(removed)
        if body.startswith("combobox ") and _count_options(parsed, i) > MAX_OPTIONS:
            options.append((depth, shown, []))
        if body.endswith(":") and _only_urls_below(parsed, i):
            body = body[:-1]
        body = _PARAGRAPH.sub("text: ", body).replace(" [cursor=pointer]", "")
        out.append("  " * shown + "- " + body)
    _close_lists(options, -1, out)
    return out


def _without_grids(lines: list[str]) -> list[str]:
    """A calendar grid becomes one line naming its first and last bookable day (each day
    stays an action, `click[Friday, 20 March 2026]`)."""
    out, grid = [], None
    for line in lines:
        depth, body = _parse(line)
        if grid is not None and body is not None and depth > grid[0]:
            if body.startswith("link "):
                grid[1].append(_NAMED.match(body)[2])
            continue
        if grid is not None:
            out.append(_grid_line(grid))
            grid = None
        if body is not None and (body.startswith("grid ") or body.startswith("table ")):
            grid = (depth, [], len(out))
            out.append(line.split(" [ref=")[0].replace("- grid", "- text: calendar").replace("- table", "- text: calendar"))
            continue
        out.append(line)
    if grid is not None:
        out.append(_grid_line(grid))
    return out


def _grid_line(grid: tuple[int, list[str], int]) -> str:
    depth, days, _ = grid
    text = f"bookable days {days[0]} to {days[-1]}" if days else "no bookable days"
    return "  " * (depth + 1) + f"- text: {text}"


def fit(lines: list[str], max_chars: int) -> str:
    """`lines` joined, within `max_chars` when it can be done deterministically: first the
    `text:` lines longer than `LONG_TEXT` go, longest first (descriptions, opening hours;
    short ones such as a booking's summary stay), then lines from the middle
    (a `text: N lines not shown` line in their place), so the page's head and end stay."""
    text = "\n".join(lines)
    if len(text) <= max_chars:
        return text
    order = sorted((i for i, line in enumerate(lines) if (_parse(line)[1] or "").startswith("text: ")
                    and len(line) > LONG_TEXT), key=lambda i: (-len(lines[i]), i))
    dropped: set[int] = set()
    size = len(text)
    for i in order:
        if size <= max_chars:
            break
        dropped.add(i)
        size -= len(lines[i]) + 1
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    return "\n".join(kept) if size <= max_chars else _cut_middle(kept, max_chars)


def _cut_middle(lines: list[str], max_chars: int) -> str:
    """The first lines that fill 60 % of `max_chars` and the last that fill the rest."""
    head, tail, used = [], [], 0
    for line in lines:
        if used + len(line) + 1 > 0.6 * max_chars:
            break
        head.append(line)
        used += len(line) + 1
    for line in reversed(lines[len(head):]):
        if used + len(line) + 1 > max_chars - 40:
            break
        tail.insert(0, line)
        used += len(line) + 1
    hidden = len(lines) - len(head) - len(tail)
    return "\n".join(head + [f"- text: {hidden} lines not shown"] + tail)


def _parse(line: str) -> tuple[int, str | None]:
    m = _LINE.match(line)
    return (len(m[1]) // 2, m[2]) if m else (0, None)


def _close_lists(options: list[tuple[int, int, list[str]]], depth: int, out: list[str]) -> None:
    """End the long lists at `depth` or deeper: one line for the options not shown."""
    while options and options[-1][0] >= depth:
        _, shown, dropped = options.pop()
        if dropped:
            out.append("  " * (shown + 1) + f"- text: {len(dropped)} more options")


def _is_label(text: str, parsed: list[tuple[int, str | None]], i: int) -> bool:
    """Whether the line before or after `i` is a control named `text` (so the text is its label)."""
    for j in (i - 1, i + 1):
        m = _NAMED.match(parsed[j][1] or "") if 0 <= j < len(parsed) else None
        if m and m[2] == text and m[1] != "text":
            return True
    return False


def _only_urls_below(parsed: list[tuple[int, str | None]], i: int) -> bool:
    depth = parsed[i][0]
    children = []
    for d, body in parsed[i + 1:]:
        if body is None or d <= depth:
            break
        children.append(body)
    return bool(children) and all(c.startswith("/url:") for c in children)


def _count_options(parsed: list[tuple[int, str | None]], i: int) -> int:
    depth, n = parsed[i][0], 0
    for d, body in parsed[i + 1:]:
        if body is None or d <= depth:
            break
        n += body.startswith("option ")
    return n
