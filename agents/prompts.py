"""The prompt formats shared by acting, critiquing and training.

Every model-backed policy, the self-critic and the training-data builders take their
text from here, so what a model is trained on is exactly what it later acts on.

Policy prompt (the completion is the action, see `action_completion`)::

    Goal: i need a red cotton shirt, and price lower than 40.00 dollars
    Page: Back to Search [SEP] < Prev [SEP] size [SEP] small [SEP] large [SEP] ... [SEP] Buy Now
    Actions: click[back to search] | click[< prev] | click[small] | click[large] | click[buy now]
    History: search[red cotton shirt] > click[b000syn042]
    Action: click[large]<eos>

The history comes last, next to the cue: what to do on an item page depends mostly on
the last action (just arrived: pick the options; options picked: buy), and small models
read nearby tokens more easily.

Critic prompt (the completion is the number of the best remaining candidate)::

    Goal: ...
    History: ...
    Page: ...
    Which action best advances the goal?
    1. click[small]
    2. click[large]
    Best: 2

Keeping prompts short (tiny models have 1024 positions) -- all cuts are deterministic:
- the "Instruction: [SEP] <goal> [SEP]" part of the page is dropped (the goal is already
  on the first line);
- the page text is cut in the middle to `max_observation_chars`: the first 60 % and the
  last 40 % of the budget are kept, joined by " ... ", so both the page header (options,
  title, navigation) and its end (last results, Buy Now) survive;
- the history keeps the last `max_history` actions (earlier ones become "... > ");
- the action list is cut at the end to `max_actions_chars` (whole actions, then " | ...").

Earlier attempts (multi-attempt episodes, RISE; `webgrove.envs.multi_attempt`) come as one
line each between the action list and the history, oldest first, only when there are any
(a first attempt's prompt is exactly the one-attempt prompt above)::

    Actions: ...
    Attempt 1: search[smart watch pink] > click[b0k1tlmcbp] > click[buy now] => failed, reward 0.80: wrong options (want color: pink)
    Attempt 2: ... => failed, reward 0.60: over the price limit (paid 120.00, limit 100.00)
    History: none
    Action:

An attempt line is "Attempt <n>: <actions> => <feedback>" ("=> <feedback>" left out when the
feedback is empty, as in the no-feedback mode). Its cuts are deterministic too: each action
is cut to `MAX_ATTEMPT_ACTION_CHARS` (the query of a long search loses its end: "search[i want
a red sh...]"), an attempt keeps its last `MAX_ATTEMPT_ACTIONS` actions ("... > " before
them), and the block keeps the newest attempts that fit in `MAX_ATTEMPTS_CHARS`, the newest
always (cut in the middle if alone too long). `with_attempts` inserts the block into a
prompt made without it (e.g. a search tree's recorded prompt), giving the same text.
"""
from __future__ import annotations

import re

from webgrove.agents.base import StepContext
from webgrove.agents.scripted import SEARCH_ACTION, click_label

ACTION_CUE = "Action:"
CRITIC_QUESTION = "Which action best advances the goal?"
CRITIC_CUE = "Best:"

MAX_OBSERVATION_CHARS = 1200
MAX_HISTORY = 4
MAX_ACTIONS_CHARS = 400
MAX_ATTEMPTS_CHARS = 480
MAX_ATTEMPT_ACTIONS = 5
MAX_ATTEMPT_ACTION_CHARS = 40
HISTORY_PREFIX = "History: "
_ELLIPSIS = " ... "
_HEAD_SHARE = 0.6

_SEARCH = re.compile(r"^search\[(.*)\]$", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"^\s*\(?#?\s*(\d+)\b")


# -- pieces ------------------------------------------------------------------------

def truncate_middle(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters by removing its middle.

    Keeps the first 60 % and the last 40 % of the budget around " ... ". Deterministic;
    text within the budget is returned unchanged.
    """
    if len(text) <= max_chars:
        return text
    room = max(0, max_chars - len(_ELLIPSIS))
    head = int(room * _HEAD_SHARE)
    tail = room - head
    return text[:head] + _ELLIPSIS + (text[len(text) - tail:] if tail else "")


def strip_instruction(observation: str, goal: str) -> str:
    """The page text without its "Instruction: [SEP] <goal> [SEP]" part (shown once as Goal)."""
    marker = f"Instruction: [SEP] {goal} [SEP] "
    i = observation.find(marker)
    if i < 0:
        return observation
    return observation[:i] + observation[i + len(marker):]


def format_history(history: list[str], max_history: int = MAX_HISTORY) -> str:
    """The last `max_history` actions joined by " > "; "none" for a fresh episode."""
    if not history:
        return "none"
    recent = " > ".join(history[-max_history:])
    return ("... > " + recent) if len(history) > max_history else recent


def format_actions(actions: list[str], max_chars: int = MAX_ACTIONS_CHARS) -> str:
    """Actions joined by " | ", cut after the last whole action that fits in `max_chars`."""
    out: list[str] = []
    used = 0
    for a in actions:
        extra = len(a) + (3 if out else 0)
        if out and used + extra > max_chars:
            return " | ".join(out) + " | ..."
        out.append(a)
        used += extra
    return " | ".join(out)


def _context_lines(ctx: StepContext, max_observation_chars: int, max_history: int) -> list[str]:
    page = truncate_middle(strip_instruction(ctx.observation, ctx.goal), max_observation_chars)
    return [f"Goal: {ctx.goal}", f"History: {format_history(ctx.history, max_history)}", f"Page: {page}"]


# -- policy ------------------------------------------------------------------------

def policy_prompt(ctx: StepContext, max_observation_chars: int = MAX_OBSERVATION_CHARS,
                  max_history: int = MAX_HISTORY, max_actions_chars: int = MAX_ACTIONS_CHARS) -> str:
    """The policy's input at one step; it ends with the cue "Action:" (no trailing space).

    The model's completion is `action_completion(action)`, i.e. " " + action, then eos.
    """
    goal, history, page = _context_lines(ctx, max_observation_chars, max_history)
    lines = [goal, page, f"Actions: {format_actions(ctx.available_actions, max_actions_chars)}",
             *format_attempts(ctx.attempts), history]
    lines.append(ACTION_CUE)
    return "\n".join(lines)


def action_completion(action: str) -> str:
    """The completion text for `action` after `policy_prompt` (a leading space, no eos)."""
    return " " + action.strip()


# -- earlier attempts (multi-attempt episodes) -----------------------------------

def compress_action(action: str, max_chars: int = MAX_ATTEMPT_ACTION_CHARS) -> str:
    """`action` cut to `max_chars` at its end, keeping a closing "]" ("search[a long q...]")."""
    action = " ".join(action.split())
    if len(action) <= max_chars:
        return action
    closing = "]" if action.endswith("]") else ""
    return action[:max(0, max_chars - 3 - len(closing))] + "..." + closing


def format_attempt(record: dict, max_actions: int = MAX_ATTEMPT_ACTIONS) -> str:
    """One attempt record as "Attempt <n>: <actions> => <feedback>" (see the module docstring)."""
    actions = [compress_action(a) for a in record.get("actions", [])]
    line = f"Attempt {record['attempt']}: {format_history(actions, max_actions)}"
    feedback = " ".join(str(record.get("feedback") or "").split())
    return f"{line} => {feedback}" if feedback else line


def format_attempts(attempts: list[dict], max_chars: int = MAX_ATTEMPTS_CHARS) -> list[str]:
    """Attempt lines, oldest first: the newest attempts whose lines fit in `max_chars` together
    (newline included), the newest always, cut in the middle when it alone is too long."""
    lines: list[str] = []
    used = 0
    for record in reversed(attempts):
        line = format_attempt(record)
        if lines and used + len(line) + 1 > max_chars:
            break
        lines.append(line if lines else truncate_middle(line, max_chars))
        used += len(lines[-1]) + 1
    return lines[::-1]


def with_attempts(prompt: str, attempts: list[dict]) -> str:
    """A policy prompt made without earlier attempts, with their lines inserted before its
    history line: equal to `policy_prompt` of the same context with `attempts` set."""
    lines = format_attempts(attempts)
    if not lines:
        return prompt
    i = prompt.rfind("\n" + HISTORY_PREFIX)
    if i < 0:
        raise ValueError("not a policy prompt: no history line to put the attempts before")
    return prompt[:i] + "\n" + "\n".join(lines) + prompt[i:]


def is_search_template(action: str) -> bool:
    """True for the placeholder "search[...]" meaning "any query may be typed here"."""
    return action.strip().lower() == SEARCH_ACTION


def search_query(action: str) -> str | None:
    """The query of a `search[query]` action, or None when `action` is not a search."""
    m = _SEARCH.match(action.strip())
    return m.group(1) if m else None


def clean_query(text: str) -> str:
    """A generated query: cut at the first "]" or newline, without brackets, control
    characters or U+FFFD (from partial byte tokens), whitespace collapsed."""
    text = text.split("]", 1)[0].split("\n", 1)[0]
    return " ".join("".join(ch for ch in text if ch.isprintable() and ch not in "[\ufffd").split())


def search_actions(queries: list[str]) -> list[str]:
    """Distinct `search[q]` actions for generated queries (cleaned), in order, empty ones dropped.

    When every query is empty, "search[]" is returned alone so a policy still proposes
    something; the env answers it as an invalid no-op.
    """
    cleaned = list(dict.fromkeys(clean_query(q) for q in queries))
    kept = [f"search[{q}]" for q in cleaned if q]
    return kept or ["search[]"]


def parse_action(text: str, available_actions: list[str]) -> str | None:
    """The action a model wrote, if it is valid now; None otherwise.

    Reads the first line of `text`. A `search[query]` is valid when "search[...]" is
    available (the query is kept as written, trimmed); a `click[label]` is valid when it
    matches an available action case-insensitively, and the available spelling is returned.
    """
    line = text.strip().split("\n", 1)[0].strip()
    end = line.find("]")
    if end >= 0:
        line = line[:end + 1]
    query = search_query(line)
    if query is not None:
        if any(is_search_template(a) for a in available_actions) and query.strip():
            return f"search[{query.strip()}]"
        return None
    label = click_label(line)
    if label is None:
        return None
    for a in available_actions:
        if click_label(a) == label:
            return a
    return None


# -- critic ------------------------------------------------------------------------

def critic_prompt(ctx: StepContext, candidates: list[str],
                  max_observation_chars: int = MAX_OBSERVATION_CHARS,
                  max_history: int = MAX_HISTORY) -> str:
    """Asks which of the numbered `candidates` best advances the goal; ends with "Best:".

    The expected completion is `critic_completion(i)` (" 1", " 2", ...), 1-based.
    """
    if not candidates:
        raise ValueError("critic_prompt needs at least one candidate")
    lines = _context_lines(ctx, max_observation_chars, max_history)
    lines.append(CRITIC_QUESTION)
    lines += [f"{i}. {a}" for i, a in enumerate(candidates, start=1)]
    lines.append(CRITIC_CUE)
    return "\n".join(lines)


def critic_completion(index: int) -> str:
    """The critic's answer naming candidate `index` (0-based) -> " 1" for index 0."""
    return f" {index + 1}"


def parse_critic_answer(text: str, candidates: list[str]) -> int | None:
    """The 0-based index of the candidate a critic answer names, or None.

    Accepted: a leading number 1..len(candidates) ("2", " 2.", "(2)", "#2 because ...");
    otherwise the longest candidate action text found in the answer (case-insensitive);
    otherwise a candidate whose click label appears as "[label]" in the answer.
    """
    m = _NUMBER.match(text)
    if m:
        n = int(m.group(1))
        if 1 <= n <= len(candidates):
            return n - 1
    lowered = text.lower()
    found = [(len(c), i) for i, c in enumerate(candidates) if c.strip().lower() in lowered]
    if found:
        return max(found)[1]
    for i, c in enumerate(candidates):
        label = click_label(c)
        if label and f"[{label}]" in lowered:
            return i
    return None
