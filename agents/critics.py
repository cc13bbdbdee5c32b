"""Critics: values in [0, 1] for candidate actions at one step (higher is better).

- `LLMCritic`: Agent Q's self-critique. The policy's own model is shown the numbered
  candidates (`webgrove.agents.prompts.critic_prompt`) and asked which best advances the goal;
  the pick is removed and the question repeats on the rest until every candidate has
  a rank. Rank r (0 = picked first) of n maps to value 1 - r / (n - 1); a single
  candidate gets 1.0. An untrained model answers by list position (the last-listed
  candidate won 48 of 60 states in issue 10), so by default the ranking is averaged over
  the candidates in a canonical order and reversed (`orders=2`): a pure position
  preference then cancels to 0.5 for everyone; `orders=1` is the raw critique. A model with a
  chat template reads the question as a conversation (system `CRITIC_SYSTEM`, the question
  as the user's message, the number as the assistant's answer; `webgrove.agents.chat`), as
  the policy it critiques for does.
- `LearnedCritic`: the same model family trained on the Q-values of earlier trees
  (`webgrove.training.critic_train`) to answer " good" / " bad" after the policy prompt
  and the action; the value is p(good) / (p(good) + p(bad)).
- `LexicalCritic`: a hand-written baseline from word overlap with the goal (rules in its
  doc); no model, and not Agent Q's AI feedback.
- `NoCritic`: 0.5 for everything.

`LLMCritic`, `LearnedCritic` and `LexicalCritic` cache values per (state, candidate set),
the state being a hash of (goal, observation, history): a rank means something only
within the set it was computed over. `cache_hits` / `cache_misses` count lookups per call.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from webgrove.agents.base import StepContext
from webgrove.agents.chat import CRITIC_SYSTEM, model_positions
from webgrove.agents.prompts import (action_completion, critic_completion, critic_prompt, parse_critic_answer,
                                     policy_prompt, search_query)
from webgrove.envs.booking.actions import current_values, element_names, parse_named
from webgrove.envs.browser.axtree import AxNode, parse_axtree
from webgrove.envs.shop.actions import BUY_NOW, NAVIGATION_LABELS, SUB_PAGE_CLICKS, click_label, is_product_id, split_page


_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and the for of to in on with i im need want looking am is are be it that this my me "
    "by at as or from its please find buy get".split())
NAVIGATION = NAVIGATION_LABELS
SUB_PAGES = SUB_PAGE_CLICKS
BUY = BUY_NOW.lower()


def state_key(ctx: StepContext) -> str:
    """A hash naming the state a step is taken from: (goal, observation, history)."""
    h = hashlib.sha1()
    for part in (ctx.goal, ctx.observation, *ctx.history):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def rank_values(n: int) -> list[float]:
    """Value of ranks 0..n-1: 1 - r / (n - 1), evenly from 1.0 (best) to 0.0; [1.0] for n = 1."""
    if n == 1:
        return [1.0]
    return [1.0 - r / (n - 1) for r in range(n)]


class _CachedCritic:
    """Per-(state, candidate set) cache around `_values(ctx, actions)`."""

    relative = True  # values depend on the whole set (ranks); False: each action is valued on its own

    def __init__(self) -> None:
        self._cache: dict[tuple[str, frozenset[str]], dict[str, float]] = {}
        self.cache_hits = 0
        self.cache_misses = 0

    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """A value in [0, 1] per action; higher is better.

        A relative critic's values are computed once per state and set of distinct actions
        (in the order first seen) and reused whatever order the set comes in; another set
        is valued anew. Other critics cache each action's value on its own.
        """
        if not actions:
            return []
        state = state_key(ctx)
        unique = list(dict.fromkeys(actions))
        groups = [unique] if self.relative else [[a] for a in unique]
        missing = [g for g in groups if (state, frozenset(g)) not in self._cache]
        self.cache_misses += bool(missing)
        self.cache_hits += not missing
        if missing:
            todo = [a for g in missing for a in g]
            for a, v in zip(todo, self._values(ctx, todo)):
                key = (state, frozenset(unique if self.relative else [a]))
                self._cache.setdefault(key, {})[a] = v
        values = {a: v for g in groups for a, v in self._cache[(state, frozenset(g))].items()}
        return [values[a] for a in actions]

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        raise NotImplementedError


def orderings(actions: list[str], orders: int, seed: str) -> list[list[str]]:
    """The orders a position-debiased critique lists `actions` in: as given (orders=1), or
    sorted and reversed, then orders-2 more shuffles seeded by `seed` (the state key)."""
    if orders < 1:
        raise ValueError(f"orders must be >= 1, got {orders}")
    if orders == 1:
        return [list(actions)]
    base = sorted(actions)
    out = [base, base[::-1]]
    rng = random.Random(seed)
    for _ in range(orders - 2):
        out.append(rng.sample(base, len(base)))
    return out


class LLMCritic(_CachedCritic):
    """Agent Q's self-critique with the acting model (see the module docstring).

    Args:
        backend: `HFPolicy` or `OpenAIPolicy` (anything with `score_completions(prompt,
            completions)`; `complete(...)` is used when the backend cannot score, e.g. an
            OpenAI server without log-probabilities).
        orders: candidate orders the ranking is averaged over (`orderings`); 1 = the raw,
            position-biased critique in the order given.

    Each round picks the candidate whose answer (" 1", " 2", ...) the model finds most
    likely; without scores, the model's greedy answer is parsed with
    `parse_critic_answer`, and an unparseable answer picks the first remaining candidate
    (counted in `parse_failures`). n candidates take n - 1 rounds per order.
    """

    def __init__(self, backend: Any, orders: int = 2):
        super().__init__()
        if not hasattr(backend, "score_completions"):
            raise TypeError(f"{type(backend).__name__} cannot critique: it has no model to ask")
        if orders < 1:
            raise ValueError(f"orders must be >= 1, got {orders}")
        self.backend = backend
        self.orders = orders
        self.parse_failures = 0

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        total = dict.fromkeys(actions, 0.0)
        runs = orderings(actions, self.orders, state_key(ctx))
        for listed in runs:
            for a, v in zip(listed, self._ranked(ctx, listed)):
                total[a] += v
        return [total[a] / len(runs) for a in actions]

    def _ranked(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """Rank values of `actions` listed in this order (one elimination critique)."""
        remaining = list(actions)
        order: list[str] = []
        while len(remaining) > 1:
            pick = self._pick(ctx, remaining)
            order.append(remaining.pop(pick))
        order += remaining
        value_of = dict(zip(order, rank_values(len(order))))
        return [value_of[a] for a in actions]

    def _pick(self, ctx: StepContext, candidates: list[str]) -> int:
        from webgrove.agents.openai_api import LogprobsUnsupported

        prompt = critic_prompt(ctx, candidates)
        try:
            scores = self.backend.score_completions(prompt, [critic_completion(i) for i in range(len(candidates))])
            return max(range(len(candidates)), key=lambda i: scores[i])
        except LogprobsUnsupported:
            answer = self.backend.complete(prompt, n=1, rng=None, temperature=0.0, max_tokens=8, stop=["\n"],
                                           system=CRITIC_SYSTEM)
            pick = parse_critic_answer(answer[0] if answer else "", candidates)
            if pick is None:
                self.parse_failures += 1
                return 0
            return pick


# -- the learned self-critic ----------------------------------------------------------

VALUE_CUE = "\nVerdict:"
VERDICTS = (" good", " bad")  # their first tokens are what the learned critic reads
LEARNED_CRITIC_FILE = "critic.json"  # marks a learned critic's model directory
SELF_LEARNED_DIR = "critic"  # "self-learned": the learned critic at <policy model dir>/critic


def value_prompt(policy_prompt_text: str, action: str) -> str:
    """The learned critic's input: the policy prompt, the action as the policy writes it, the cue."""
    return policy_prompt_text + action_completion(action) + VALUE_CUE


def verdict_token_ids(tokenizer) -> tuple[int, int]:
    """First token ids of " good" and " bad". Raises ValueError if the tokenizer cannot tell them apart."""
    good, bad = (tokenizer(v, add_special_tokens=False)["input_ids"][0] for v in VERDICTS)
    if good == bad:
        raise ValueError("the tokenizer gives ' good' and ' bad' the same first token")
    return good, bad


def verdict_logits(model, tokenizer, prompts: list[str]):
    """(N,) logit of " good" minus logit of " bad" after each prompt (gradients kept).

    Prompts too long for the model keep their last tokens; the batch is right-padded.
    """
    import torch

    good, bad = verdict_token_ids(tokenizer)
    limit = model_positions(model.config)
    ids = [tokenizer(p)["input_ids"][-limit:] for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(x) for x in ids)
    device = next(model.parameters()).device
    batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)  # (N, T)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
    logits = model(input_ids=batch, attention_mask=mask).logits  # (N, T, V)
    last = logits[torch.arange(len(ids), device=device), mask.sum(dim=1) - 1]  # (N, V)
    return last[:, good] - last[:, bad]


class LearnedCritic(_CachedCritic):
    """The learned self-critic: a model directory written by `webgrove train critic`.

    Args:
        model_dir: the critic's directory (it holds `critic.json`).
        device: "cuda", "cpu", ...; CPU unless given.
        batch_size: (state, action) prompts per forward call.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 16):
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_dir)
        if not (path / LEARNED_CRITIC_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a learned critic (no {LEARNED_CRITIC_FILE}); "
                                    "train one with `webgrove train critic --trees DIR --model MODEL --out DIR`")
        self.info = json.loads((path / LEARNED_CRITIC_FILE).read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(device).eval()
        self.batch_size = batch_size

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        import torch

        prompt = policy_prompt(ctx)
        prompts = [value_prompt(prompt, a) for a in actions]
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(prompts), self.batch_size):
                out += torch.sigmoid(verdict_logits(self.model, self.tokenizer, prompts[i:i + self.batch_size]).float()).tolist()
        return out


def learned_critic(spec: str, policy: Any = None, device: str = "cpu") -> LearnedCritic:
    """The learned critic a spec names: a critic directory, or "self-learned" for the one
    next to the policy's model (`<policy dir>/critic`, where `webgrove improve` keeps it).

    Raises:
        UsageError: "self-learned" without a model policy, or no learned critic there.
    """
    from webgrove.envs.errors import UsageError

    if spec == "self-learned":
        name = getattr(policy, "name", None)
        if not name or not Path(name).is_dir():
            raise UsageError("critic 'self-learned' reads <policy model dir>/critic, but the policy is not a "
                             "local model; pass the critic's directory instead")
        spec = str(Path(name) / SELF_LEARNED_DIR)
    path = Path(spec).expanduser()
    if not (path / LEARNED_CRITIC_FILE).is_file():
        raise UsageError(f"{path} holds no learned critic ({LEARNED_CRITIC_FILE}); train one with "
                         f"`webgrove train critic --trees DIR --model MODEL --out {path}`")
    return LearnedCritic(path, device=device)


# Values a goal and a page write differently, each reduced to one token, so that word overlap
# sees them as equal: times ("5:30pm", "17:30", "5:30 pm" -> t1730), dates ("2026-03-20",
# "Friday, 20 March 2026", "Mar 20" -> d0320), party sizes ("for four people", "party of 4",
# "4 people" -> p4), phone numbers (-> their digits) and email addresses (-> one word, so that
# "Hiro" is not read as part of "hiro.silva@example.com").
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_COUNT = ("zero one two three four five six seven eight nine ten eleven twelve").split()
_VALUE_PATTERNS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), lambda m: " em" + re.sub(r"[^a-z0-9]", "", m[0]) + " "),
    (re.compile(r"\(?\b\d{3}\)?[ .-]?\d{3}-\d{4}\b"), lambda m: " ph" + re.sub(r"\D", "", m[0]) + " "),
    (re.compile(r"\b\d{4}-(\d{2})-(\d{2})\b"), lambda m: f" d{m[1]}{m[2]} "),
    (re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b"),
     lambda m: f" t{int(m[1]) % 12 + (12 if m[3] == 'p' else 0):02d}{m[2] or '00'} "),
    (re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b"), lambda m: f" t{int(m[1]):02d}{m[2]} "),
    (re.compile(r"\b(\d{1,2})\s+" + _MONTH + r"(?:,?\s+\d{4})?\b"),
     lambda m: f" d{_MONTHS.index(m[2]) + 1:02d}{int(m[1]):02d} "),
    (re.compile(r"\b" + _MONTH + r"\s+(\d{1,2})\b(?:,?\s+\d{4}\b)?"),
     lambda m: f" d{_MONTHS.index(m[1]) + 1:02d}{int(m[2]):02d} "),
    (re.compile(r"\b(?:party of|for)\s+(\d{1,2}|" + "|".join(_COUNT) + r")\b(?:\s+(?:people|persons?|guests))?"),
     lambda m: f" p{int(m[1]) if m[1].isdigit() else _COUNT.index(m[1])} "),
    (re.compile(r"\b(\d{1,2})\s+(?:people|persons?|guests)\b"), lambda m: f" p{int(m[1])} "),
    (re.compile(r"\bfor just me\b"), lambda m: " p1 "),
)


def normalize_values(text: str) -> str:
    """Lower-cased `text` with times, dates, party sizes and phone numbers as single tokens."""
    text = text.lower()
    for pattern, token in _VALUE_PATTERNS:
        text = pattern.sub(token, text)
    return text


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(normalize_values(text)) if w not in _STOPWORDS and len(w) > 1}


def _overlap(text: str, goal_words: set[str]) -> float:
    """Share of `text`'s content words that appear in the goal (0 for no words)."""
    words = _words(text)
    return len(words & goal_words) / len(words) if words else 0.0


def _result_title(label: str, observation: str) -> str:
    """The text shown right after a product id on a results page (its title), else ""."""
    if not is_product_id(label):
        return ""
    parts = split_page(observation)
    for i, p in enumerate(parts[:-1]):
        if p.lower() == label:
            return parts[i + 1]
    return ""


class LexicalCritic(_CachedCritic):
    """A hand-written baseline, not Agent Q's AI feedback: word overlap with the goal, no model.

    Content words are lower-case alphanumerics minus a few stopwords. Per action:

    - `search[q]`: share of q's words found in the goal;
    - `click[back to search]`, `click[next >]`, `click[< prev]`: 0.1;
    - a sub-page (`click[description]`, features, reviews, attributes): 0.2;
    - an option already clicked (it is in the history): 0.1;
    - `click[buy now]`: 0.5 + 0.5 × the share of the page's goal-matching options
      (labels sharing a word with the goal) already clicked; 1.0 when there are none;
    - a product id on a results page: share of its title's words found in the goal;
    - any other click (an option): share of the label's words found in the goal.
    """

    relative = False  # each action's value is its own

    def __init__(self, env: Any = None) -> None:
        """`env`: a browser env whose task shows a shortened page (the booking site's compact
        tree); the critic then reads the whole page (`page_axtree`) as its scripted agents do."""
        super().__init__()
        env = getattr(env, "unwrapped", env)
        shortened = getattr(getattr(env, "task", None), "observation_axtree", None) is not None
        self._env = env if shortened else None

    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        full = self._env.page_axtree if self._env is not None else ""
        return super().rank(replace(ctx, observation=full) if full else ctx, actions)

    def _values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        goal_words = _words(ctx.goal)
        clicked = {click_label(h) for h in ctx.history}
        labels = [click_label(a) for a in ctx.available_actions]
        matching_options = [
            lab for lab in labels
            if lab and lab not in NAVIGATION | SUB_PAGES | {BUY} and not is_product_id(lab)
            and _overlap(lab, goal_words) > 0]
        # Named actions on an aria-snapshot page: the booking site (the shop's pages are text)
        named = _NamedPage(ctx, goal_words) if "[ref=" in ctx.observation and any(map(parse_named, actions)) else None
        return [v if named is not None and (v := named.value(a)) is not None
                else self._value(a, ctx, goal_words, clicked, matching_options) for a in actions]

    @staticmethod
    def _value(action: str, ctx: StepContext, goal_words: set[str], clicked: set[str | None],
               matching_options: list[str]) -> float:
        query = search_query(action)
        if query is not None:
            return _overlap(query, goal_words)
        label = click_label(action)
        if label is None:
            return 0.0
        if label in NAVIGATION:
            return 0.1
        if label in SUB_PAGES:
            return 0.2
        if label == BUY:
            if not matching_options:
                return 1.0
            return 0.5 + 0.5 * sum(o in clicked for o in matching_options) / len(matching_options)
        if label in clicked:
            return 0.1
        title = _result_title(label, ctx.observation)
        return _overlap(title or label, goal_words)


# Words a goal introduces a form value with ("Email: ...", "my number is ...") -> words of the
# boxes that value belongs in.
_FIELD_BOXES = {"name": {"name"}, "phone": {"phone"}, "number": {"phone"}, "email": {"email"},
                "note": {"request"}, "request": {"request"}}


def _goal_fields(goal: str) -> list[tuple[str, set[str]]]:
    """(field word, the words after it in its sentence) for each field a goal gives a value for."""
    out = []
    for sentence in re.split(r"\.\s+", goal):
        words = _WORD.findall(normalize_values(sentence))
        for i, w in enumerate(words):
            if w in _FIELD_BOXES:
                out.append((w, set(words[i + 1:]) - _STOPWORDS))
                break
    return out


_RECENT = 4  # an action repeated within this many steps goes round in a loop
# Sign-up and sign-in: a detour unless the goal asks for it. Prompts in the way of the task
# ("Continue as guest", "No thanks") are answered first.
_ACCOUNT_WORDS = frozenset({"sign", "join", "log", "login", "password", "register", "account", "membership"})
_DISMISSALS = frozenset({"Continue as guest", "No thanks", "Accept all cookies", "Reject non-essential"})
_TIME_TOKEN = re.compile(r"\bt(\d{2})(\d{2})\b")
_EARLIEST = re.compile(r"\b(earliest|first free)\b")
_BEST = re.compile(r"\b(best|highest)[- ]rated\b")
_MIN_RATING = re.compile(r"rated at least (\d(?:\.\d)?)")
_RATED = re.compile(r"rated (\d(?:\.\d)?)")


def _minutes(text: str) -> list[int]:
    """The times in `text` (as `normalize_values` writes them), in minutes after midnight."""
    return [60 * int(h) + int(m) for h, m in _TIME_TOKEN.findall(normalize_values(text))]


def _shown_text(nodes: list[AxNode]) -> str:
    """The page's text without the names of links and options: what it says, not what it
    offers (a calendar's links name every date)."""
    return " ".join(f"{n.name} {n.value}" for n in nodes if n.role not in ("link", "option", "/url"))


def result_rows(nodes: list[AxNode]) -> dict[str, str]:
    """For each link inside a list item that reads as a result ("Greek · Russian Hill · $$$ ·
    rated 4.9 (1120 reviews)": parts joined by " · "), the row's text lines, joined."""
    rows, row, links, texts = {}, None, [], []
    for node in [*nodes, None]:
        if row is not None and (node is None or node.depth <= row.depth):
            if any(" · " in t for t in texts):
                rows.update(dict.fromkeys(links, " ".join(texts)))
            row, links, texts = None, [], []
        if node is None:
            break
        if node.role == "listitem":
            row = node
        elif row is not None and node.role == "link" and node.name:
            links.append(" ".join(node.name.replace("[", "(").replace("]", ")").split()))
        elif row is not None and node.role in ("paragraph", "text") and node.value:
            texts.append(node.value)
    return rows


class _NamedPage:
    """The lexical critic's rules for named actions (`webgrove.envs.booking.actions`):

    - an action the page already shows done (the option is selected, the box holds the
      text, the radio is checked) or taken in the last four steps (a loop): 0;
    - `type[box][text]`: 0 when the text shares no word with the goal or the box already
      holds goal words; 0.2 when another box holds the text, or when the goal gives the
      text as a field ("Email: ...", "phone ...", "the name ...") the box is not named
      after; else 0.5, plus 0.5 when the goal names the box right before the text or gives
      the text as the box's field ("my number is ..." for Phone); a tenth
      of that when the goal never names the box (a password, a search box);
    - an option of a list (`click[Time: 5:30 pm]`): the option's share of goal words;
    - a date or month control (`click[Change date]`, `click[Next month]`; not a list's
      option such as `Occasion: Date night`): 1.0 while the page's text (not its links: a
      calendar names every date) does not show the goal's date, 0 once it does;
    - other clicks: the share of the label's words found in the goal, at least 0.05;
    - a link in a row of results (a restaurant or one of its times): 0.2 + 0.6 × the share
      of the row's place (cuisine, neighbourhood) the goal names (0 below the goal's "rated
      at least"), + 0.1 × the rating above 4 for a "best-rated" goal, + 0.2 × the time fit;
    - a time (a slot link, or a time in a results link): for an "earliest"/"first free"
      goal 1 - (minutes after the goal's time) / 150, 0 before it; else word overlap;
    - a button (it sends a form: search, filters, details, confirmation): the share of its
      words found in the goal, between 0.3 and 0.9 (a form is sent after its fields are set);
      0.9 right after a list option was chosen or a box typed in;
    - account actions (sign in, join, password, ...; a typed box counts by its name) when the
      goal does not ask for an account: 0; a prompt's way out ("Continue as guest", "No
      thanks", a cookie banner's buttons): 1.0, and while one is on the page every other
      action at most 0.5.
    Times, dates, party sizes, phone numbers and emails are compared as `normalize_values`
    writes them.
    """

    def __init__(self, ctx: StepContext, goal_words: set[str]) -> None:
        self.goal_words = goal_words
        self.goal_tokens = _WORD.findall(normalize_values(ctx.goal))
        self.held = current_values(ctx.observation)
        self.recent = set(ctx.history[-_RECENT:])
        names = element_names(ctx.observation)
        self.buttons = {name for name, node, _ in names if node.role == "button"}
        self.prompted = any(name in _DISMISSALS for name, _, _ in names)
        nodes = parse_axtree(ctx.observation)  # read once for the rows and the text shown
        self.rows = result_rows(nodes)
        goal = normalize_values(ctx.goal)
        times = _minutes(ctx.goal)
        self.earliest = times[0] if times and _EARLIEST.search(goal) else None
        self.best = bool(_BEST.search(goal))
        floor = _MIN_RATING.search(goal)
        self.min_rating = float(floor[1]) if floor else None
        last = parse_named(ctx.history[-1]) if ctx.history else None
        self.form_changed = last is not None and (last[0] == "type" or ": " in last[1])
        self.fields = _goal_fields(ctx.goal)
        dates = {w for w in goal_words if re.fullmatch(r"d\d{4}", w)}
        self.has_date = bool(dates)
        self.date_missing = self.has_date and not dates <= _words(_shown_text(nodes))

    def value(self, action: str) -> float | None:
        named = parse_named(action)
        if named is None:
            return None
        words = _words(named[1])
        if words & _ACCOUNT_WORDS and not words & _ACCOUNT_WORDS & self.goal_words:
            return 0.0
        if named[1] in _DISMISSALS and action not in self.recent:
            return 1.0
        value = self._value(action, *named)
        return min(value, 0.5) if self.prompted else value

    def _value(self, action: str, verb: str, name: str, text: str | None) -> float:
        words = _words(name)
        if verb == "click" and ": " not in name and words & {"date", "month"} and "close" not in words and self.has_date:
            return 1.0 if self.date_missing else 0.0
        if action in self.recent:
            return 0.0
        if verb == "type":
            return self._typed(name, text or "")
        if self.held.get(name) == "checked":
            return 0.0
        box, sep, option = name.partition(": ")
        if sep and box in self.held:
            return 0.0 if self.held[box] == option else _overlap(option, self.goal_words)
        if name in self.rows:
            return self._row_link(name, self.rows[name])
        if name in self.buttons:
            return 0.9 if self.form_changed else min(0.9, max(0.3, _overlap(name, self.goal_words)))
        fit = self._time_fit(name)
        return max(0.05, _overlap(name, self.goal_words) if fit is None else fit)

    def _time_fit(self, label: str) -> float | None:
        """How well the time in `label` serves an "earliest" goal; None when either has none."""
        times = _minutes(label)
        if self.earliest is None or not times:
            return None
        after = times[0] - self.earliest
        return 0.0 if after < 0 else max(0.0, 1.0 - after / 150)

    def _row_link(self, name: str, row: str) -> float:
        place = row.split(" · ")[:2]
        match = sum(bool(_words(p)) and _words(p) <= self.goal_words for p in place) / 2
        rated = _RATED.search(row)
        rating = float(rated[1]) if rated else 0.0
        if self.min_rating is not None and rating < self.min_rating:
            match = 0.0
        value = 0.2 + 0.6 * match + (0.1 * max(0.0, rating - 4.0) if self.best else 0.0)
        fit = self._time_fit(name)
        if fit is None and _minutes(name):
            fit = _overlap(name.split(" at ")[0], self.goal_words)
        return min(1.0, value + 0.2 * (fit or 0.0))

    def _typed(self, box: str, text: str) -> float:
        held = self.held.get(box, "")
        if held == text.strip() or not _overlap(text, self.goal_words) or (
                held and _overlap(held, self.goal_words) == 1.0):
            return 0.0
        field = next((f for f, words in self.fields if _words(text) <= words), None)
        if any(v == text.strip() for k, v in self.held.items() if k != box) or (
                field is not None and not _FIELD_BOXES[field] & _words(box)):
            value = 0.2
        else:
            named = field is not None or self._named_before(box, text)  # the goal says which box
            value = 0.5 + 0.5 * named
        return value if _words(box) & self.goal_words else value / 10

    def _named_before(self, box: str, text: str) -> float:
        """1.0 when a word of the box's name comes right before the text in the goal."""
        want, label = _WORD.findall(normalize_values(text)), set(_WORD.findall(box.lower()))
        tokens = self.goal_tokens
        for i in range(1, len(tokens) - len(want) + 1):
            if tokens[i:i + len(want)] == want and tokens[i - 1] in label:
                return 1.0
        return 0.0


class NoCritic:
    """A critic with no opinion: 0.5 for every action."""

    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        return [0.5] * len(actions)
