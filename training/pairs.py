"""From search trees to training data: preference pairs, RFT rows and revision trajectories.

Every builder is a pure function from one tree (a `webgrove.search.tree.TreeIndex`, or its
records — the header, then the flat nodes of docs/DESIGN.md — typed or as dicts) to a list
of rows. Trajectory ends and their outcomes are `TreeIndex`'s:

- `agentq_pairs`: step-level preference pairs between explored siblings whose values
  differ by more than θ (Agent Q, Putta et al. 2024, Sec. 4.3), with the collecting
  policy's log-probs as the off-policy reference.
- `outcome_pairs`: a successful and a failed trajectory of the same goal, compared where
  they part (the outcome-supervised, trajectory-level DPO baseline).
- `rft_rows`: every step of the successful trajectories as SFT rows (rejection-sampling
  fine-tuning).
- `agent_r_rows`: revision trajectories (Agent-R, Yuan et al. 2025): a failed path cut at
  its first error and joined by a short revision thought to a good sibling's continuation.

Text always comes from `webgrove.agents.prompts`: a row's `prompt` is the node's recorded policy
input and its completions are `action_completion(action)`, so training sees exactly what
acting sees.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webgrove.agents.prompts import ACTION_CUE, action_completion
from webgrove.envs.errors import UsageError
from webgrove.envs.shop.actions import (RESERVED_LABELS, SEARCH, click_label, is_product_id, is_shop_action,
                                        parse_action)
from webgrove.training.choice import sibling_candidates
from webgrove.io import write_jsonl_atomic
from webgrove.search.tree import NodeRecord, TreeIndex, read_tree

# What a revision says between the erroneous action and the good one (Agent-R's "revision
# signal"), ending on the policy prompt's action cue, so a revision reads
#   Action: click[bad]
#   Thought: my last action was a mistake; I take a better one.
#   Action: click[good]
# It is trained on; the erroneous action before it never is.
REVISION_THOUGHT = f"\nThought: my last action was a mistake; I take a better one.\n{ACTION_CUE}"


TreeRecords = TreeIndex | Sequence[Any]  # what a builder takes (see `TreeIndex.from_records`)


def _value(node: NodeRecord, key: str) -> float:
    v = getattr(node, key)
    if v is None:
        raise ValueError(f"node {node.id} has no {key!r} value")
    return float(v)


def _sibling_prompt(tree: TreeIndex, sibling_ids: list[int]) -> str:
    """The prompt shared by siblings (each records the policy input at their parent state)."""
    prompts = {tree.nodes[i].prompt for i in sibling_ids}
    if len(prompts) != 1:
        raise ValueError(f"siblings {sibling_ids} disagree on their prompt")
    return prompts.pop()


def _pair_row(tree: TreeIndex, prompt: str, chosen: NodeRecord, rejected: NodeRecord,
              q_chosen: float, q_rejected: float, depth: int) -> dict:
    return {
        "prompt": prompt,
        "chosen": action_completion(chosen.action),
        "rejected": action_completion(rejected.action),
        "ref_chosen_logps": chosen.logprob,
        "ref_rejected_logps": rejected.logprob,
        "q_chosen": q_chosen,
        "q_rejected": q_rejected,
        "goal_id": tree.goal_id,
        "depth": depth,
    }


def value_gap_pairs(values: list[float], theta: float) -> list[tuple[int, int]]:
    """(better, worse) index pairs of all value pairs that differ by more than `theta`."""
    out = []
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            if abs(values[i] - values[j]) > theta:
                out.append((i, j) if values[i] > values[j] else (j, i))
    return out


ACTION_KINDS = ("query", "product", "option", "navigation", "other")


def action_kind(action: str) -> str:
    """What a shop action decides: "query" (search[...]), "product" (a result's id),
    "navigation" (pages, sub-pages, Buy Now) or "option" (any other click); "other" outside
    the shop's grammar."""
    if not is_shop_action(action):
        return "other"
    if parse_action(action)[0] == SEARCH:
        return "query"
    label = click_label(action)
    if is_product_id(label):
        return "product"
    return "navigation" if label in RESERVED_LABELS else "option"


def pair_kind(chosen: str, rejected: str) -> str:
    """The kind of a pair: its actions' kind, or both kinds joined by "/" when they differ."""
    return "/".join(sorted({action_kind(chosen), action_kind(rejected)}))


def mixed_value(node: NodeRecord, value_key: str = "q", alpha: float | None = None) -> float:
    """A node's value: `value_key`, or with `alpha` Agent Q's mix recomputed,
    α·Q_mcts + (1−α)·Q_critic (Agent Q, Eq. 10; Q_mcts alone where there is no critic value)."""
    if alpha is None:
        return _value(node, value_key)
    q_critic = node.q_critic if node.q_critic is not None else node.q_mcts
    return alpha * _value(node, "q_mcts") + (1 - alpha) * float(q_critic)


def agentq_pairs(records: TreeRecords, theta: float = 0.1, min_visits: int = 1,
                 value_key: str = "q", alpha: float | None = None,
                 kinds: Sequence[str] | None = None) -> list[dict]:
    """Agent Q's step-level preference pairs from one tree.

    At every node, each pair of explored children (visits >= `min_visits`, so that both
    values rest on that many rollouts) whose values (`mixed_value`: by default the stored mixed
    Q = α·Q_mcts + (1−α)·Q_critic, or the mix recomputed with `alpha`) differ by more than
    `theta` gives one row: the higher-valued action is `chosen`. `depth` is the step at
    which the choice was made (0 = the first action of the episode); `pair_kind` says what
    the choice decides (`pair_kind`), and `kinds` keeps only pairs whose both actions are of
    those kinds (None: all).
    """
    tree = TreeIndex.from_records(records)
    rows = []
    for parent_id, kids in enumerate(tree.children):
        kids = [k for k in kids if tree.nodes[k].visits >= min_visits]
        if len(kids) < 2:
            continue
        prompt = _sibling_prompt(tree, kids)
        values = [mixed_value(tree.nodes[k], value_key, alpha) for k in kids]
        siblings = [tree.nodes[k] for k in tree.children[parent_id]]  # the choice set, for choice-level losses
        choice_set = sibling_candidates([n.action for n in siblings], [
            mixed_value(n, value_key, alpha) if n.visits >= min_visits else None for n in siblings])
        for a, b in value_gap_pairs(values, theta):
            chosen, rejected = tree.nodes[kids[a]], tree.nodes[kids[b]]
            if chosen.action == rejected.action:
                continue
            if kinds is not None and not {action_kind(chosen.action), action_kind(rejected.action)} <= set(kinds):
                continue
            rows.append({**_pair_row(tree, prompt, chosen, rejected, values[a], values[b],
                                     tree.nodes[parent_id].depth), **choice_set,
                         "pair_kind": pair_kind(chosen.action, rejected.action),
                         "visits_chosen": chosen.visits, "visits_rejected": rejected.visits})
    return rows


def split_ends(tree: TreeIndex, success_reward: float) -> tuple[list[int], list[int]]:
    """(successful, failed) trajectory ends, each in file order."""
    wins = [i for i, r in tree.outcome.items() if r >= success_reward]
    return wins, [i for i, r in tree.outcome.items() if r < success_reward]


def _divergence(path_a: list[int], path_b: list[int]) -> int:
    """Index of the first step where two root paths differ (paths of distinct leaves always do)."""
    for t, (a, b) in enumerate(zip(path_a, path_b)):
        if a != b:
            return t
    return min(len(path_a), len(path_b))


def outcome_pairs(records: TreeRecords, success_reward: float = 1.0,
                  max_pairs: int | None = None) -> list[dict]:
    """Outcome-supervised pairs: each successful trajectory against each failed one of the goal.

    Trajectories end at terminal nodes or at rolled-out leaves (see `TreeIndex`). Two of them
    share their steps up to the state where they part; there both recorded actions have the
    same prompt, and the successful one is `chosen`. `q_chosen` / `q_rejected` are the
    trajectories' returns (the outcome), not the search's per-node values: that is what makes
    this the outcome-supervised baseline, and why its pairs can contradict each other when one
    first step led to both a success and a failure. At most `max_pairs` rows per tree (None:
    all), successes and failures taken in file order.
    """
    tree = TreeIndex.from_records(records)
    wins, losses = split_ends(tree, success_reward)
    rows, seen = [], set()
    for w in wins:
        for l in losses:
            pw, pl = tree.steps_to(w), tree.steps_to(l)
            t = _divergence(pw, pl)
            if t >= min(len(pw), len(pl)):
                continue
            key = (pw[t], pl[t])
            if key in seen:  # another trajectory pair parting at the same two actions
                continue
            seen.add(key)
            chosen, rejected = tree.nodes[pw[t]], tree.nodes[pl[t]]
            if chosen.action == rejected.action:
                continue
            prompt = _sibling_prompt(tree, [pw[t], pl[t]])
            rows.append(_pair_row(tree, prompt, chosen, rejected, tree.outcome[w], tree.outcome[l], t))
            if max_pairs is not None and len(rows) >= max_pairs:
                return rows
    return rows


def _sft_row(tree: TreeIndex, node: NodeRecord, prompt: str | None = None, completion: str | None = None) -> dict:
    return {
        "prompt": node.prompt if prompt is None else prompt,
        "completion": action_completion(node.action) if completion is None else completion,
        "goal_id": tree.goal_id,
        "depth": node.depth - 1,
    }


def complete_successes(tree: TreeIndex, success_reward: float) -> list[int]:
    """Terminal nodes whose path's return is a success: trajectories stored step by step to
    the end of the episode (a rolled-out leaf's outcome is known, but its rollout's steps are
    not in the tree), in file order."""
    return [i for i in split_ends(tree, success_reward)[0] if tree.nodes[i].terminal]


def rft_rows(records: TreeRecords, success_reward: float = 1.0) -> list[dict]:
    """Every step of every complete successful trajectory as an SFT row, each node at most once.

    Only trajectories that end the episode in the tree count (`complete_successes`): a leaf
    whose rollout succeeded would give its first steps without the rest, teaching the policy
    to start a success it was never shown how to finish.
    """
    tree = TreeIndex.from_records(records)
    rows, seen = [], set()
    for leaf in complete_successes(tree, success_reward):
        for i in tree.steps_to(leaf):
            if i not in seen:
                seen.add(i)
                rows.append(_sft_row(tree, tree.nodes[i]))
    return rows


def first_error(tree: TreeIndex, path: list[int], theta: float, value_key: str = "q",
                success_reward: float = 1.0) -> tuple[int, int] | None:
    """(erroneous node, better sibling) at the first step where a failed path goes wrong.

    The first error is the first node of `path` with an explored sibling whose value is more
    than `theta` higher and whose subtree holds a successful trajectory. With
    `value_key="q_critic"` the critic's judgement decides instead of the search's values.
    None when no step qualifies.
    """
    for node_id in path:
        node = tree.nodes[node_id]
        v = _value(node, value_key)
        better = [
            s for s in tree.children[node.parent]
            if s != node_id and tree.nodes[s].visits >= 1
            and _value(tree.nodes[s], value_key) - v > theta
            and tree.best_reward[s] >= success_reward
        ]
        if better:
            # the best sibling: highest value, then file order
            return node_id, max(better, key=lambda s: (_value(tree.nodes[s], value_key), -s))
    return None


def good_continuation(tree: TreeIndex, start: int, success_reward: float = 1.0) -> list[int]:
    """From `start`, the stored path down to a successful trajectory end: at each node the
    child whose subtree holds the best outcome (ties: higher q, then file order)."""
    if tree.best_reward[start] < success_reward:
        raise ValueError(f"node {start} has no successful trajectory below it")
    path = [start]
    node_id = start
    while tree.outcome.get(node_id, -math.inf) < success_reward:
        kids = [c for c in tree.children[node_id] if tree.best_reward[c] >= success_reward]
        node_id = max(kids, key=lambda c: (tree.best_reward[c], tree.nodes[c].q, -c))
        path.append(node_id)
    return path


def agent_r_rows(records: TreeRecords, theta: float = 0.1, value_key: str = "q",
                 success_reward: float = 1.0) -> list[dict]:
    """Agent-R revision trajectories from one tree, as SFT rows whose loss skips the bad prefix.

    For each failed trajectory, find its first error (see `first_error`): the erroneous action
    `a_bad` at prompt `p` and a better sibling `a_good`. The revision trajectory is

        p + completion(a_bad)          -> `prompt`: context only, never trained on
        REVISION_THOUGHT + completion(a_good)   -> `completion`: trained
        then each later step of the good continuation as its own (prompt, completion) row,

    so the loss covers the revision and the good continuation, never the erroneous prefix.
    Our policies read one step's prompt (goal, page, action history) at a time, so the good
    continuation is stored step by step rather than as one long transcript; the sum of the
    per-step losses equals the transcript's loss under that prompt format. Failed paths that
    share their first error give one revision trajectory. Rows carry `kind` ("revision" or
    "continuation") and `trajectory` (the erroneous node's id).
    """
    tree = TreeIndex.from_records(records)
    rows, seen = [], set()
    for leaf in split_ends(tree, success_reward)[1]:
        found = first_error(tree, tree.steps_to(leaf), theta, value_key, success_reward)
        if found is None or found[0] in seen:
            continue
        bad_id, good_id = found
        seen.add(bad_id)
        bad, good = tree.nodes[bad_id], tree.nodes[good_id]
        revision = _sft_row(tree, good,
                            prompt=bad.prompt + action_completion(bad.action),
                            completion=REVISION_THOUGHT + action_completion(good.action))
        rows.append({**revision, "kind": "revision", "trajectory": bad_id})
        for i in good_continuation(tree, good_id, success_reward)[1:]:
            rows.append({**_sft_row(tree, tree.nodes[i]), "kind": "continuation", "trajectory": bad_id})
    return rows


# ---------------------------------------------------------------------------------------
# Files and the `webgrove pairs` command

def _agentq(records, cfg):
    return agentq_pairs(records, cfg.theta, cfg.min_visits, cfg.value_key, cfg.alpha, cfg.kind_list)


def _outcome(records, cfg):
    return outcome_pairs(records, cfg.success_reward, cfg.max_pairs_per_tree)


def _rft(records, cfg):
    return rft_rows(records, cfg.success_reward)


def _agent_r(records, cfg):
    return agent_r_rows(records, cfg.theta, cfg.value_key, cfg.success_reward)


BUILDERS: dict[str, Callable[[TreeIndex, "PairsConfig"], list[dict]]] = {
    "agentq": _agentq,
    "outcome": _outcome,
    "rft": _rft,
    "agent_r": _agent_r,
}
PREFERENCE_KINDS = ("agentq", "outcome")


@dataclass
class PairsConfig:
    """Build DPO pairs or SFT rows from a folder of search trees (one JSONL per task)."""

    trees: str = field(metadata={"help": "folder of tree JSONL files written by `webgrove collect`"})
    out: str = field(metadata={"help": "output JSONL file (HF datasets-compatible)"})
    kind: str = field(default="agentq", metadata={
        "help": "agentq: step-level sibling pairs; outcome: success-vs-failure pairs; "
                "rft: successful steps as SFT rows; agent_r: revision trajectories",
        "choices": list(BUILDERS)})
    theta: float = field(default=0.1, metadata={
        "help": "minimum value gap between chosen and rejected (agentq, agent_r)"})
    min_visits: int = field(default=1, metadata={
        "help": "both siblings need this many visits (rollouts under them) to be paired (agentq)"})
    alpha: float | None = field(default=None, metadata={
        "help": "recompute the value as alpha*q_mcts + (1-alpha)*q_critic (agentq); default: the stored q"})
    pair_kinds: str = field(default="all", metadata={
        "help": "comma-separated action kinds a pair's actions must be of: query, product, option, "
                "navigation, other; or all (agentq)"})
    value_key: str = field(default="q", metadata={
        "help": "node value that ranks siblings: q (mixed), q_mcts (search) or q_critic (critic)",
        "choices": ["q", "q_mcts", "q_critic"]})
    success_reward: float = field(default=1.0, metadata={"help": "a return at least this counts as success"})
    max_pairs_per_tree: int | None = field(default=None, metadata={
        "help": "cap on outcome pairs per tree (default: all)"})

    def __post_init__(self) -> None:
        if self.kind not in BUILDERS:
            raise ValueError(f"kind must be one of {list(BUILDERS)}, got {self.kind!r}")
        if self.theta < 0:
            raise ValueError(f"theta must be >= 0, got {self.theta}")
        if self.min_visits < 0:
            raise ValueError(f"min_visits must be >= 0, got {self.min_visits}")
        if self.value_key not in ("q", "q_mcts", "q_critic"):
            raise ValueError(f"value_key must be q, q_mcts or q_critic, got {self.value_key!r}")
        if self.max_pairs_per_tree is not None and self.max_pairs_per_tree < 1:
            raise ValueError("max_pairs_per_tree must be >= 1 when given")
        if self.alpha is not None and not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        unknown = set(self.kind_list or ()) - set(ACTION_KINDS)
        if unknown:
            raise ValueError(f"pair_kinds: unknown kind(s) {sorted(unknown)}; choose from {list(ACTION_KINDS)} or all")

    @property
    def kind_list(self) -> list[str] | None:
        """The selected action kinds (None: all)."""
        return None if self.pair_kinds == "all" else [k.strip() for k in self.pair_kinds.split(",") if k.strip()]


def tree_files(folder: str | Path) -> list[Path]:
    """The tree JSONL files of a folder, sorted by name. Raises FileNotFoundError if none."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no tree files (*.jsonl) in {folder}")
    return files


def read_index(path: str | Path) -> TreeIndex:
    """One tree file, read and validated by `webgrove.search.tree.read_tree`, indexed."""
    return TreeIndex.build(*read_tree(path))


def iter_rows(paths: Iterable[str | Path], cfg: PairsConfig) -> Iterator[dict]:
    """Rows of `cfg.kind` from each tree file in turn."""
    build = BUILDERS[cfg.kind]
    for p in paths:
        yield from build(read_index(p), cfg)


class RowsFileError(UsageError):
    """A JSONL rows file (pairs, SFT rows, RISE candidates) is unreadable or malformed.

    The message names the file, and the line and field at fault when there is one.
    """

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = Path(path), line, field
        where = [str(path)] + ([f"line {line}"] if line is not None else [])
        where += [f"field {field!r}"] if field is not None else []
        super().__init__(": ".join(where) + f": {problem}")


TEXT_COLUMNS = ("prompt", "completion", "chosen", "rejected")  # strings; any other checked column is a number


def _parse_row(path: Path, lineno: int, raw: bytes, columns: Sequence[str]) -> dict:
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RowsFileError(path, f"not UTF-8 text (byte at column {exc.start + 1})", line=lineno) from None
    except RecursionError:
        raise RowsFileError(path, "JSON nested too deeply to read", line=lineno) from None
    except ValueError as exc:  # JSONDecodeError, or an integer with thousands of digits
        raise RowsFileError(path, f"not JSON ({exc})", line=lineno) from None
    if not isinstance(row, dict):
        raise RowsFileError(path, f"a row must be a JSON object, got {type(row).__name__}", line=lineno)
    for column in columns:
        value = row.get(column, None)
        if column not in row:
            raise RowsFileError(path, f"missing (has {sorted(row)})", line=lineno, field=column)
        if column in TEXT_COLUMNS and not isinstance(value, str):
            raise RowsFileError(path, f"must be a string, got {type(value).__name__}", line=lineno, field=column)
        if column not in TEXT_COLUMNS and (isinstance(value, bool) or not isinstance(value, (int, float))
                                           or not math.isfinite(value)):
            raise RowsFileError(path, f"must be a finite number, got {value!r:.40}", line=lineno, field=column)
    return row


def read_jsonl(path: str | Path, columns: Sequence[str] = ()) -> list[dict]:
    """The rows of a JSONL file, each a JSON object holding `columns` (text columns strings,
    others finite numbers).

    Raises:
        RowsFileError: naming the file, the first bad line and its field.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with path.open("rb") as f:
        return [_parse_row(path, lineno, raw, columns) for lineno, raw in enumerate(f, start=1) if raw.strip()]


def pair_stats(rows: list[dict], kind: str) -> dict:
    """Counts and value-gap statistics of built rows (for logs and the `pairs` command);
    preference pairs also per pair kind (`pair_kind`): rows, mean gap, mean visits of both sides."""
    stats: dict = {"kind": kind, "rows": len(rows), "goals": len({r.get("goal_id") for r in rows})}
    depths: dict[int, int] = {}
    for r in rows:
        depths[r["depth"]] = depths.get(r["depth"], 0) + 1
    stats["rows_by_depth"] = dict(sorted(depths.items()))
    if kind in PREFERENCE_KINDS and rows:
        gaps = [r["q_chosen"] - r["q_rejected"] for r in rows]
        stats.update({"gap_mean": statistics.fmean(gaps), "gap_min": min(gaps),
                      "gap_median": statistics.median(gaps), "gap_max": max(gaps),
                      "with_ref_logps": sum(r["ref_chosen_logps"] is not None
                                            and r["ref_rejected_logps"] is not None for r in rows)})
        stats["by_pair_kind"] = pair_kind_stats(rows)
    if kind == "agent_r":
        stats["revisions"] = sum(r["kind"] == "revision" for r in rows)
    return stats


def pair_kind_stats(rows: list[dict]) -> dict[str, dict]:
    """Per pair kind: rows, mean value gap, and mean visits of the chosen and rejected sides."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r.get("pair_kind") or pair_kind(_action_of(r["chosen"]), _action_of(r["rejected"])),
                          []).append(r)
    out = {}
    for k, rs in sorted(groups.items()):
        out[k] = {"rows": len(rs), "gap_mean": statistics.fmean(r["q_chosen"] - r["q_rejected"] for r in rs)}
        if all("visits_chosen" in r for r in rs):
            out[k]["visits_chosen_mean"] = statistics.fmean(r["visits_chosen"] for r in rs)
            out[k]["visits_rejected_mean"] = statistics.fmean(r["visits_rejected"] for r in rs)
    return out


def _action_of(completion: str) -> str:
    """The action of a completion written by `action_completion` (its first line, stripped)."""
    return completion.strip().splitlines()[0].strip() if completion.strip() else ""


def build_pairs_file(cfg: PairsConfig) -> dict:
    """Build rows from every tree in `cfg.trees`, write them to `cfg.out`, return their stats."""
    files = tree_files(cfg.trees)
    rows = list(iter_rows(files, cfg))
    write_jsonl_atomic(cfg.out, rows)
    return {**pair_stats(rows, cfg.kind), "trees": len(files), "out": cfg.out}


def run_pairs(cfg: PairsConfig) -> int:
    stats = build_pairs_file(cfg)
    for k, v in stats.items():
        print(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}", file=sys.stdout)
    return 0
