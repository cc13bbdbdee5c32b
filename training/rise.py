"""RISE for web agents: self-correction data from the agent's own attempts, and the loop.

RISE (Qu, Zhang, Garg, Kumar 2024) teaches a model to improve over attempts after being
told one failed. Here an attempt is an episode of a webgrove env inside
`webgrove.envs.multi_attempt.MultiAttemptWrapper`, and the policy's prompt shows the
earlier attempts with their feedback (`webgrove.agents.prompts.format_attempts`).

**Collection** (`webgrove rise collect`): on each train goal, a multi-attempt rollout of
the current policy (up to T attempts, stopping at a success). Each attempt is a
*candidate* at its *state* (the goal plus the earlier attempts). For every failed attempt
t < T, improved candidates for state t + 1 (the same history plus attempt t) come from:

- `self` -- self-distillation: N attempts of the same policy sampled at a temperature from
  that state (`MultiAttemptWrapper.set_state`), all kept (the `best` filter picks one). With
  `sample_history=False` the samples are drawn from the policy's one-attempt prompt (the
  attempt lines left out, as the search teacher's recorded prompts are) and their rows carry
  the attempt lines: the policy's own one-turn samples as the teacher of its later turns,
  for a policy that has not learnt to read attempt lines yet;
- `search` -- search as the teacher: the best terminal path of the goal's MCTS tree
  (`webgrove collect`'s files), its recorded prompts given the attempt lines (`with_attempts`);
- `teacher` -- distillation: an attempt of another policy spec from that state (e.g. `oracle`,
  or `openai` with a bigger model); rows use our prompt format whatever the teacher reads;
- `repair` -- the feedback as the teacher: the failed attempt replayed with the option values
  its `components` feedback wants ("wrong options (want size: 32)") clicked before buying,
  run in the env for its real reward (`repair_actor`); nothing when the feedback names no
  option or none of them can be clicked (a pure repeat).

A candidate is one JSONL line::

    {"goal_id": 7, "seed": 123, "attempt": 2, "source": "own" | "self" | "search" | "teacher" | "repair",
     "history": [<attempt records 1..attempt-1>], "reward": 0.8, "baseline": 0.5,
     "steps": [{"prompt": "<policy prompt with attempt lines>", "action": "click[...]"}, ...]}

`baseline` is the reward of the attempt the candidate follows (attempt − 1; None at 1).

**Rows** (`rise_rows`, `webgrove rise rows`): RISE's filters choose candidates per state --
`all`; `better` (reward above the baseline; above 0 at attempt 1); `best` (the state's
highest reward, first in file order on ties); `successful` (reward 1) -- and every step of
a chosen candidate becomes a weighted SFT row (`--drop-repeats` first drops the candidates
that settle on an earlier failed attempt's answer, so a later attempt is never taught to
redo what failed)::

    {"prompt", "completion": " <action>", "weight": exp(r/τ) / mean, "reward", "baseline",
     "goal_id", "attempt", "depth", "source"}

**Training** is `webgrove.training.weighted_sft`; **iterating** is `webgrove rise improve`
(collect → rows → weighted SFT → `webgrove.training.rise_eval`, N times, resumable).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from webgrove.agents.base import StepContext
from webgrove.envs import is_success
from webgrove.envs.errors import UsageError
from webgrove.io import write_json_atomic
from webgrove.search.attempts import AttemptRun, run_attempt, step_limit

log = logging.getLogger(__name__)

SOURCES = ("self", "search", "teacher", "repair")
FILTERS = ("all", "better", "best", "successful")
CANDIDATES_FILE = "candidates.jsonl"


def candidate(goal_id: int, seed: int, history: list[dict], source: str, steps: list[dict],
              reward: float) -> dict:
    """A candidate record (see the module docstring); `steps` are {"prompt", "action"} dicts."""
    return {"goal_id": goal_id, "seed": seed, "attempt": len(history) + 1, "source": source,
            "history": [dict(r) for r in history], "reward": float(reward),
            "baseline": float(history[-1]["reward"]) if history else None, "steps": steps}


def _steps(run: AttemptRun) -> list[dict]:
    from webgrove.agents.prompts import policy_prompt

    return [{"prompt": policy_prompt(ctx), "action": action} for ctx, action in run.steps]


# ---------------------------------------------------------------------------------------
# Search as the teacher (pure)

def search_candidate(tree, history: list[dict], seed: int) -> dict | None:
    """The best terminal path of a tree as a candidate after `history`.

    `tree` is a `webgrove.search.tree.TreeIndex` or its records (header, then nodes). Best:
    the highest return among terminal trajectory ends, lowest id on ties. Each step's prompt
    is the node's recorded prompt with the attempt lines inserted, so it reads as the policy
    would at that state. None when the tree has no terminal end.
    """
    from webgrove.agents.prompts import with_attempts
    from webgrove.search.tree import TreeIndex

    tree = TreeIndex.from_records(tree)
    ends = [i for i in tree.outcome if tree.nodes[i].terminal]
    if not ends:
        return None
    best = max(ends, key=lambda i: (tree.outcome[i], -i))
    steps = [{"prompt": with_attempts(tree.nodes[i].prompt, history), "action": tree.nodes[i].action}
             for i in tree.steps_to(best)]
    return candidate(tree.goal_id, seed, history, "search", steps, tree.outcome[best])


# ---------------------------------------------------------------------------------------
# The feedback as the teacher (pure)

_NEXT_OPTION = re.compile(r", (?=[^,:()]+: )")


def wanted_options(feedback: str) -> list[str]:
    """The option values a `components` feedback names as wanted:
    "... wrong options (want size: 32, color: grey) ..." -> ["32", "grey"]."""
    found = re.search(r"wrong options \(want ([^)]*)\)", feedback)
    # split only before the next "name: ", so a value with a comma ("2 pack, 8 oz") stays whole
    return [v.split(": ", 1)[-1].strip() for v in _NEXT_OPTION.split(found.group(1))] if found else []


def repair_actor(failed: dict) -> Callable[[StepContext], str] | None:
    """An actor that replays a failed attempt's actions up to its last `click[buy now]`, then
    clicks each option value its feedback wants that the page offers (case-insensitive, not
    clicked yet in this attempt), then buys. None when the attempt never bought or its
    feedback names no wanted option."""
    actions, wanted = failed["actions"], wanted_options(failed.get("feedback", ""))
    if "click[buy now]" not in actions or not wanted:
        return None
    prefix = actions[:len(actions) - 1 - actions[::-1].index("click[buy now]")]

    def act(ctx: StepContext) -> str:
        if len(ctx.history) < len(prefix):
            return prefix[len(ctx.history)]
        done = {a.lower() for a in ctx.history[len(prefix):]}
        offered = {a.lower(): a for a in ctx.available_actions}
        for value in wanted:
            click = f"click[{value.lower()}]"
            if click in offered and click not in done:
                return offered[click]
        return "click[buy now]"
    return act


# ---------------------------------------------------------------------------------------
# Rows (pure)

def _state_key(c: dict) -> tuple:
    return c["goal_id"], c["seed"], c["attempt"]


def select_candidates(candidates: list[dict], rule: str) -> list[dict]:
    """The candidates RISE's filter `rule` keeps (see the module docstring), in input order."""
    if rule not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {rule!r}")
    if rule == "all":
        return list(candidates)
    if rule == "better":
        return [c for c in candidates if c["reward"] > (c["baseline"] if c["baseline"] is not None else 0.0)]
    if rule == "successful":
        return [c for c in candidates if is_success(c["reward"])]
    best: dict[tuple, dict] = {}
    for c in candidates:
        key = _state_key(c)
        if key not in best or c["reward"] > best[key]["reward"]:
            best[key] = c
    kept = {id(c) for c in best.values()}
    return [c for c in candidates if id(c) in kept]


def answer_actions(actions: list[str]) -> tuple[str, ...]:
    """What an attempt's actions settled on: those after its last search (in the shop, the
    product clicked, its options and the purchase); all of them when it never searched."""
    searches = [i for i, a in enumerate(actions) if a.startswith("search[")]
    return tuple(actions[searches[-1] + 1:] if searches else actions)


def repeats_failure(c: dict) -> bool:
    """Whether a candidate settles on what an earlier (failed) attempt of its state settled on."""
    answer = answer_actions([s["action"] for s in c["steps"]])
    return any(answer == answer_actions(h["actions"]) for h in c["history"])


def drop_repeats(candidates: list[dict]) -> list[dict]:
    """The candidates without those that repeat an earlier attempt's answer (`repeats_failure`):
    after a failure the data then shows something else, never the failed answer again."""
    return [c for c in candidates if not repeats_failure(c)]


def rise_rows(candidates: list[dict], rule: str = "best", tau: float = 0.4, no_repeats: bool = False) -> list[dict]:
    """Weighted SFT rows from candidates: filter, then one row per step, weight exp(r/τ)
    normalised to mean 1 over the rows (reward-weighted regression, RISE Sec. 4.2).
    With `no_repeats`, candidates that repeat a failed answer are dropped before the filter."""
    from webgrove.agents.prompts import action_completion
    from webgrove.training.weighted_sft import rwr_weights

    rows = []
    for c in select_candidates(drop_repeats(candidates) if no_repeats else candidates, rule):
        for depth, step in enumerate(c["steps"]):
            rows.append({"prompt": step["prompt"], "completion": action_completion(step["action"]),
                         "reward": c["reward"], "baseline": c["baseline"], "goal_id": c["goal_id"],
                         "attempt": c["attempt"], "depth": depth, "source": c["source"]})
    for row, w in zip(rows, rwr_weights([r["reward"] for r in rows], tau)):
        row["weight"] = w
    return rows


# ---------------------------------------------------------------------------------------
# Collection

@dataclass(kw_only=True)
class RiseCollectConfig:
    """Multi-attempt rollouts of a policy on train goals, with improved next attempts (RISE data)."""

    policy: str = field(metadata={"help": "the current policy: a model directory (or oracle | rule | rule-options | random)"})
    out: str = field(metadata={"help": "output folder: candidates.jsonl and stats.json"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    split: str = field(default="train", metadata={"help": "goal split", "choices": ["train", "test"]})
    goal_range: str = field(default="0:50", metadata={"help": "goal ids A:B (A included, B excluded)"})
    num_products: int | None = field(default=None, metadata={"help": "synthetic catalog size (default 1000)"})
    attempts: int = field(default=5, metadata={"help": "attempts per episode (T)"})
    max_steps: int | None = field(default=None, metadata={"help": "step limit of one attempt (default: the id's)"})
    feedback: str = field(default="components", metadata={
        "help": "feedback after a failed attempt", "choices": ["retry", "score", "components", "none"]})
    temperature: float = field(default=0.0, metadata={"help": "temperature of the policy's own attempts"})
    improve: str = field(default="self", metadata={
        "help": "comma-separated sources of improved attempts: self, search, teacher, repair"})
    samples: int = field(default=4, metadata={"help": "sampled attempts per failed attempt (self)"})
    sample_temperature: float = field(default=1.0, metadata={"help": "temperature of those samples (self)"})
    sample_history: bool = field(default=True, metadata={
        "help": "the samples see the earlier attempts (RISE); --no-sample-history: they are drawn from "
                "the one-attempt prompt and their rows get the attempt lines (self)"})
    teacher: str | None = field(default=None, metadata={"help": "policy spec of the teacher (teacher), e.g. oracle"})
    trees: str | None = field(default=None, metadata={
        "help": "folder(s) of MCTS trees of these goals, comma-separated (search)"})
    seed: int = field(default=0, metadata={"help": "base seed; goal g resets with a seed derived from it"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        from webgrove.envs.make import parse_goal_range

        parse_goal_range(self.goal_range)
        sources = self.sources()
        bad = [s for s in sources if s not in SOURCES]
        if bad or not sources:
            raise UsageError(f"--improve takes a comma-separated list of {', '.join(SOURCES)}, got {self.improve!r}")
        if "teacher" in sources and not self.teacher:
            raise UsageError("--improve teacher needs --teacher SPEC (e.g. oracle)")
        if "search" in sources and not (self.trees and all(d.is_dir() for d in tree_dirs(self.trees))):
            raise UsageError(f"--improve search needs --trees DIR[,DIR...] with the goals' trees, got {self.trees!r}")
        if self.attempts < 1 or self.samples < 1 or self.temperature < 0 or self.sample_temperature < 0:
            raise UsageError("--attempts and --samples must be >= 1 and temperatures >= 0")

    def sources(self) -> list[str]:
        return [s.strip() for s in self.improve.split(",") if s.strip()]


def tree_dirs(trees: str | None) -> list[Path]:
    """The folders of a comma-separated `--trees` value (e.g. the demo's three collection blocks)."""
    return [Path(d.strip()) for d in (trees or "").split(",") if d.strip()]


def _policy(spec: str, env, temperature: float):
    from webgrove.agents.specs import PolicyArgs

    return PolicyArgs(policy=spec, temperature=temperature).make_policy(env)


def _actor(policy, rng, see_attempts: bool = True) -> Callable[[StepContext], str]:
    """`policy.act`; with `see_attempts` False the policy reads the context without its earlier
    attempts (the step's recorded prompt, `_steps`, still has them)."""
    from dataclasses import replace

    if see_attempts:
        return lambda ctx: policy.act(ctx, rng)
    return lambda ctx: policy.act(replace(ctx, attempts=[]), rng)


class _Collector:
    """The env and the policies of one collection run."""

    def __init__(self, cfg: RiseCollectConfig):
        import numpy as np

        from webgrove.envs.make import make_env
        from webgrove.envs.multi_attempt import MultiAttemptWrapper

        self.cfg, self.np = cfg, np
        self.env = MultiAttemptWrapper(make_env(cfg.env, split=cfg.split, num_products=cfg.num_products,
                                                **step_limit(cfg.max_steps)),
                                       attempts=cfg.attempts, feedback=cfg.feedback)
        self.policy = _policy(cfg.policy, self.env, cfg.temperature)
        sources = cfg.sources()
        self.sampler = _policy(cfg.policy, self.env, cfg.sample_temperature) if "self" in sources else None
        self.teacher = _policy(cfg.teacher, self.env, 0.0) if "teacher" in sources else None

    def improvements(self, goal_id: int, seed: int, history: list[dict], rng) -> list[dict]:
        """Improved attempts from the env's current state (the start of attempt len(history)+1)."""
        state = self.env.get_state()
        out = []
        for source, policy, n in (("self", self.sampler, self.cfg.samples), ("teacher", self.teacher, 1)):
            see = source != "self" or self.cfg.sample_history
            for _ in range(n if policy is not None else 0):
                self.env.set_state(state)
                obs, info = self.env.observe()
                run = run_attempt(self.env, obs, info, _actor(policy, rng, see))
                out.append(candidate(goal_id, seed, history, source, _steps(run), run.record["reward"]))
        if self.cfg.trees:
            out += self._from_tree(goal_id, seed, history)
        if "repair" in self.cfg.sources():
            out += self._repair(goal_id, seed, history, state)
        self.env.set_state(state)
        return out

    def _repair(self, goal_id: int, seed: int, history: list[dict], state) -> list[dict]:
        act = repair_actor(history[-1])
        if act is None:
            return []
        self.env.set_state(state)
        obs, info = self.env.observe()
        run = run_attempt(self.env, obs, info, act)
        if [a for _, a in run.steps] == history[-1]["actions"]:
            return []  # no wanted option on the page: a pure repeat teaches nothing
        return [candidate(goal_id, seed, history, "repair", _steps(run), run.record["reward"])]

    def _from_tree(self, goal_id: int, seed: int, history: list[dict]) -> list[dict]:
        from webgrove.search.collect import tree_path
        from webgrove.training.pairs import read_index

        paths = [tree_path(d, goal_id) for d in tree_dirs(self.cfg.trees)]
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            return []
        found = search_candidate(read_index(path), history, seed)
        return [found] if found is not None else []

    def goal(self, goal_id: int, seed: int) -> list[dict]:
        """Every candidate of one goal: the policy's own attempts and the improvements."""
        rng = self.np.random.default_rng([self.cfg.seed, goal_id])
        obs, info = self.env.reset(seed=seed, options={"goal_id": goal_id})
        out: list[dict] = []
        while True:
            history = info["attempts"]
            run = run_attempt(self.env, obs, info, _actor(self.policy, rng))
            out.append(candidate(goal_id, seed, history, "own", _steps(run), run.record["reward"]))
            if run.done:
                return out
            out += self.improvements(goal_id, seed, run.info["attempts"], rng)
            obs, info = self.env.observe()


def collect_candidates(cfg: RiseCollectConfig) -> list[dict]:
    """Candidates of every goal of `cfg.goal_range`, goal by goal."""
    from tqdm import tqdm

    from webgrove.envs.make import parse_goal_range
    from webgrove.search.collect import goal_seed

    collector = _Collector(cfg)
    try:
        out: list[dict] = []
        for goal_id in tqdm(parse_goal_range(cfg.goal_range), desc="rise collect", disable=None if cfg.progress
                            else True, unit="goal", leave=False):
            out += collector.goal(goal_id, goal_seed(cfg.seed, goal_id))
        return out
    finally:
        collector.env.close()


def candidate_stats(candidates: list[dict]) -> dict:
    """Counts by source, success of the own first attempts, how often an improvement beat its baseline."""
    own_first = [c for c in candidates if c["source"] == "own" and c["attempt"] == 1]
    improved = [c for c in candidates if c["source"] != "own"]
    return {"candidates": len(candidates),
            "by_source": {s: sum(c["source"] == s for c in candidates) for s in ("own", *SOURCES)},
            "goals": len({c["goal_id"] for c in candidates}),
            "own_first_success": sum(is_success(c["reward"]) for c in own_first) / max(1, len(own_first)),
            "own_any_success": len({c["goal_id"] for c in candidates
                                    if c["source"] == "own" and is_success(c["reward"])})
            / max(1, len({c["goal_id"] for c in candidates})),
            "improvements_better": sum(c["reward"] > (c["baseline"] or 0.0) for c in improved),
            "improvements_successful": sum(is_success(c["reward"]) for c in improved)}


def run_rise_collect(cfg: RiseCollectConfig) -> int:
    from webgrove.io import write_jsonl_atomic

    out = Path(cfg.out)
    candidates = collect_candidates(cfg)
    write_jsonl_atomic(out / CANDIDATES_FILE, candidates)
    stats = candidate_stats(candidates)
    _write_json(out / "stats.json", {**stats, "config": asdict(cfg)})
    log.info(f"rise collect: {stats['candidates']} candidates from {stats['goals']} goals "
             f"({stats['by_source']}), {stats['improvements_better']} improvements better than their attempt "
             f"-> {out / CANDIDATES_FILE}")
    return 0


@dataclass(kw_only=True)
class RiseRowsConfig:
    """Weighted SFT rows from RISE candidates: filter per state, weight exp(r/tau)."""

    candidates: str = field(metadata={
        "help": "candidates.jsonl written by `webgrove rise collect`; several comma-separated (collections of the "
                "same goals and seed: a candidate found in more than one counts once)"})
    out: str = field(metadata={"help": "output JSONL of prompt/completion/weight rows"})
    filter: str = field(default="best", metadata={"help": "RISE's filter", "choices": list(FILTERS)})
    tau: float = field(default=0.4, metadata={"help": "temperature of the reward weights exp(r/tau)"})
    replay: str | None = field(default=None, metadata={
        "help": "SFT rows (prompt/completion JSONL) the start model was behaviour-cloned on, replayed beside "
                "the RISE rows as successes so one-turn ability is kept (no new labels)"})
    replay_rows: int | None = field(default=None, metadata={
        "help": "how many replayed rows, drawn with a fixed seed (default: as many as the RISE rows)"})
    drop_repeats: bool = field(default=False, metadata={
        "help": "drop candidates whose actions after their last search repeat an earlier failed attempt's "
                "(the same product and options), before the filter"})

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise UsageError(f"--filter must be one of {', '.join(FILTERS)}, got {self.filter!r}")
        if self.tau <= 0:
            raise UsageError(f"--tau must be > 0, got {self.tau}")
        files = candidate_files(self.candidates)
        missing = [str(p) for p in files if not p.is_file()]
        if missing or not files:
            raise UsageError(f"--candidates: no such file {', '.join(missing) or repr(self.candidates)}; "
                             "write one with `webgrove rise collect`")
        if self.replay is not None and not Path(self.replay).is_file():
            raise UsageError(f"--replay {self.replay}: no such file")
        if self.replay_rows is not None and (self.replay is None or self.replay_rows < 1):
            raise UsageError("--replay-rows needs --replay and must be at least 1")


def candidate_files(spec: str | Path) -> list[Path]:
    """The files of a comma-separated `--candidates` value."""
    return [Path(f.strip()) for f in str(spec).split(",") if f.strip()]


def read_candidates(spec: str | Path) -> list[dict]:
    """The candidates of every file of `spec`, in file order, each distinct candidate once (two
    collections of the same goals and seed share their own attempts)."""
    from webgrove.training.pairs import read_jsonl

    seen, out = set(), []
    for path in candidate_files(spec):
        for c in read_jsonl(path):
            key = json.dumps(c, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out


def build_rows_file(candidates: str | Path, out: str | Path, rule: str, tau: float, replay: str | Path | None = None,
                    replay_rows: int | None = None, no_repeats: bool = False) -> dict:
    from webgrove.io import write_jsonl_atomic
    from webgrove.training.pairs import read_jsonl

    rows = rise_rows(read_candidates(candidates), rule, tau, no_repeats)
    if replay is not None and rows:
        rows = with_replay(rows, read_jsonl(replay), tau, replay_rows)
    write_jsonl_atomic(out, rows)
    return {"rows": len(rows), "goals": len({r["goal_id"] for r in rows if r["source"] != "replay"}),
            "by_source": {s: sum(r["source"] == s for r in rows) for s in ("own", *SOURCES, "replay")},
            "mean_reward": sum(r["reward"] for r in rows) / len(rows) if rows else None}


def with_replay(rows: list[dict], sft_rows: list[dict], tau: float, n: int | None = None) -> list[dict]:
    """RISE rows plus `n` (default: as many) rows of the start model's behaviour-cloning data,
    drawn with a fixed seed, as attempt-1 successes: reward 1.0 and the weight such a row gets
    among the RISE rows (`rwr_weight_of`); the whole list shuffled with a fixed seed. Replaying
    the data the start model already learned keeps its one-turn ability (measured: without it
    attempt-1 success fell 4.5 points) and adds no new labels."""
    import random

    from webgrove.training.weighted_sft import rwr_weight_of

    drawn = list(sft_rows)
    random.Random(0).shuffle(drawn)
    weight = rwr_weight_of(1.0, [r["reward"] for r in rows], tau)
    replayed = [{"prompt": r["prompt"], "completion": r["completion"], "weight": weight, "reward": 1.0,
                 "baseline": None, "goal_id": r.get("goal_id"), "attempt": 1, "depth": r.get("depth", 0),
                 "source": "replay"} for r in drawn[:len(rows) if n is None else n]]
    out = rows + replayed
    random.Random(1).shuffle(out)
    return out


def run_rise_rows(cfg: RiseRowsConfig) -> int:
    stats = build_rows_file(cfg.candidates, cfg.out, cfg.filter, cfg.tau, cfg.replay, cfg.replay_rows,
                            cfg.drop_repeats)
    log.info(f"rise rows ({cfg.filter}, tau {cfg.tau}{', repeats dropped' if cfg.drop_repeats else ''}): "
             f"{stats['rows']} rows from {stats['goals']} goals "
             f"{stats['by_source']} -> {cfg.out}")
    return 0


def _write_json(path: Path, data) -> None:
    write_json_atomic(path, data, allow_nan=True)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------------------
# The loop: collect -> rows -> weighted SFT -> evaluate, N times

@dataclass(kw_only=True)
class RiseImproveConfig:
    """Iterate RISE: multi-attempt data on train goals -> weighted SFT -> success by attempt on test goals."""

    model: str = field(metadata={"help": "starting policy: a model directory (e.g. after behaviour cloning)"})
    out: str = field(default="runs/rise", metadata={"help": "output directory (rerun to resume)"})
    iterations: int = field(default=2, metadata={"help": "improvement iterations"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    num_products: int | None = field(default=None, metadata={"help": "synthetic catalog size (default 1000)"})
    first_goal: int = field(default=0, metadata={"help": "first train goal; iteration i uses the i-th block"})
    goals_per_iteration: int = field(default=40, metadata={"help": "train goals per iteration"})
    attempts: int = field(default=5, metadata={"help": "attempts per episode (T), collection and evaluation"})
    max_steps: int | None = field(default=None, metadata={"help": "step limit of one attempt (default: the id's)"})
    feedback: str = field(default="components", metadata={
        "help": "feedback mode", "choices": ["retry", "score", "components", "none"]})
    improve: str = field(default="self", metadata={
        "help": "sources of improved attempts: self, search, teacher, repair"})
    samples: int = field(default=4, metadata={"help": "sampled attempts per failed attempt (self)"})
    sample_temperature: float = field(default=1.0, metadata={"help": "temperature of those samples (self)"})
    sample_history: bool = field(default=True, metadata={
        "help": "the samples see the earlier attempts; --no-sample-history: drawn from the one-attempt prompt (self)"})
    teacher: str | None = field(default=None, metadata={"help": "teacher policy spec (teacher)"})
    trees: str | None = field(default=None, metadata={
        "help": "folder(s) of MCTS trees of the train goals, comma-separated (search)"})
    filter: str = field(default="best", metadata={"help": "RISE's filter", "choices": list(FILTERS)})
    tau: float = field(default=0.4, metadata={"help": "temperature of the reward weights"})
    learning_rate: float = field(default=5e-4, metadata={"help": "weighted SFT learning rate"})
    epochs: float = field(default=2.0, metadata={"help": "weighted SFT epochs per iteration"})
    batch_size: int = field(default=8, metadata={"help": "weighted SFT batch size"})
    eval_goals: int = field(default=50, metadata={"help": "held-out test goals per evaluation (0: none)"})
    later_temperature: float | None = field(default=None, metadata={
        "help": "evaluation: temperature of attempts 2..T (default: greedy like attempt 1)"})
    seed: int = field(default=0, metadata={"help": "seed of collection, training and evaluation"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.goals_per_iteration < 1 or self.eval_goals < 0:
            raise UsageError("--iterations and --goals-per-iteration must be >= 1, --eval-goals >= 0")
        if not (Path(self.model) / "config.json").is_file():
            raise UsageError(f"--model {self.model}: not a model directory (no config.json)")
        self.collect_config(self.model, 1, Path(self.out) / "check")  # validates the collection settings


    def iteration_dir(self, i: int) -> Path:
        return Path(self.out) / f"iter_{i}"

    def model_dir(self, i: int) -> str:
        return self.model if i == 0 else str(self.iteration_dir(i) / "model")

    def collect_config(self, policy: str, i: int, out: Path) -> RiseCollectConfig:
        start = self.first_goal + (i - 1) * self.goals_per_iteration
        return RiseCollectConfig(policy=policy, out=str(out), env=self.env, num_products=self.num_products,
                                 goal_range=f"{start}:{start + self.goals_per_iteration}", attempts=self.attempts,
                                 max_steps=self.max_steps,
                                 feedback=self.feedback, improve=self.improve, samples=self.samples,
                                 sample_temperature=self.sample_temperature, sample_history=self.sample_history,
                                 teacher=self.teacher, trees=self.trees, seed=self.seed + i, progress=self.progress)

    def eval_config(self, model: str, json_path: Path):
        from webgrove.training.rise_eval import RiseEvalConfig

        return RiseEvalConfig(policy=model, env=self.env, num_products=self.num_products, episodes=self.eval_goals,
                              attempts=self.attempts, max_steps=self.max_steps, feedback=self.feedback,
                              later_temperature=self.later_temperature, seed=self.seed, json=str(json_path),
                              progress=self.progress)


def _train(cfg: RiseImproveConfig, policy: str, rows: Path, model: Path) -> dict:
    from webgrove.training.weighted_sft import WeightedSFTConfig, train_weighted_sft

    if (model / "config.json").is_file():
        return _read_json(model / "train_result.json") or {}
    if not rows.is_file() or not rows.read_text().strip():
        log.warning(f"rise improve: no rows in {rows} (filter {cfg.filter}); the policy stays as it was")
        shutil.copytree(policy, model, ignore=shutil.ignore_patterns("checkpoints"))
        return {"note": "no rows: policy unchanged"}
    return train_weighted_sft(WeightedSFTConfig(
        model=policy, out=str(model), data=str(rows), learning_rate=cfg.learning_rate, epochs=cfg.epochs,
        batch_size=cfg.batch_size, seed=cfg.seed, progress=cfg.progress, logging_steps=10))


def _evaluate(cfg: RiseImproveConfig, model: str, path: Path) -> dict | None:
    from webgrove.training.rise_eval import evaluate_rise

    if cfg.eval_goals == 0:
        return None
    return _read_json(path) or evaluate_rise(cfg.eval_config(model, path))


def run_rise_iteration(cfg: RiseImproveConfig, i: int) -> dict:
    """Iteration i (1-based): collect, rows, weighted SFT, evaluate; each step reused when done."""
    d, policy = cfg.iteration_dir(i), cfg.model_dir(i - 1)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    if not (d / CANDIDATES_FILE).is_file():
        run_rise_collect(cfg.collect_config(policy, i, d))
    seconds["collect"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = build_rows_file(d / CANDIDATES_FILE, d / "rows.jsonl", cfg.filter, cfg.tau)
    train = _train(cfg, policy, d / "rows.jsonl", d / "model")
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = _evaluate(cfg, str(d / "model"), d / "eval.json")
    seconds["eval"] = time.perf_counter() - t
    record = {"iteration": i, "model": str(d / "model"), "rows": rows,
              "collect": _read_json(d / "stats.json"),
              "train": {k: train.get(k) for k in ("steps", "train_loss", "seconds", "note")},
              "eval": None if summary is None else summary["by_attempt"], "seconds": seconds}
    _write_json(d / "done.json", record)
    return record


def run_rise_improve(cfg: RiseImproveConfig) -> dict:
    """Run (or resume) the RISE loop; returns what OUT/metrics.json holds."""
    from webgrove.training.plots import plot_attempts

    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    start = _evaluate(cfg, cfg.model, cfg.iteration_dir(0) / "eval.json")
    records = [{"iteration": 0, "model": cfg.model, "eval": None if start is None else start["by_attempt"]}]
    for i in range(1, cfg.iterations + 1):
        done = _read_json(cfg.iteration_dir(i) / "done.json")
        if done is not None:
            log.info(f"rise improve: iteration {i} already finished; skipping")
        records.append(done or run_rise_iteration(cfg, i))
    metrics = {"iterations": records, "config": asdict(cfg), "final_model": cfg.model_dir(cfg.iterations)}
    _write_json(Path(cfg.out) / "metrics.json", metrics)
    curves = {f"iter {r['iteration']}": r["eval"]["sequential_oracle"] for r in records if r["eval"]}
    if curves:
        plot_attempts(curves, Path(cfg.out) / "success_by_attempt.png", title="RISE: success by attempt (with oracle)")
    return metrics


def run_rise_improve_command(cfg: RiseImproveConfig) -> int:
    metrics = run_rise_improve(cfg)
    for r in metrics["iterations"]:
        if r["eval"]:
            sr = r["eval"]["sequential_oracle"]["success_rate"]
            log.info(f"rise improve: iteration {r['iteration']}: success by attempt "
                     + " ".join(f"{100 * s:.1f}" for s in sr))
    log.info(f"rise improve: metrics in {Path(cfg.out) / 'metrics.json'}, final model {metrics['final_model']}")
    return 0
