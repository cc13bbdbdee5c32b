"""Search trees on disk: one JSONL file per task (DESIGN.md, "Search trees on disk").

Line 1 is the header::

    {"type": "tree", "env_id", "goal_id", "goal", "seed", "policy", "config", "created",
     "best_path", "stats"}

(`best_path`, the committed node ids from the root, and `stats`, a flat dict of
numbers, are optional.) Then one flat line per node, in id order (ids are
0, 1, 2, ... and a parent always comes before its children)::

    {"type": "node", "id", "parent", "depth", "action", "prompt", "logprob",
     "visits", "q_mcts", "q_critic", "q", "reward", "terminal"}

Only the root (id 0) has `parent`, `action`, `prompt`, `logprob` and `q_critic`
null. Files are written atomically, so a tree file that exists is whole;
`read_tree` validates every line and names the first bad one.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from webgrove.search.mcts import SUCCESS_REWARD, best_child_key

HEADER_FIELDS: dict[str, tuple[type, ...]] = {
    "type": (str,), "env_id": (str,), "goal_id": (int,), "goal": (str,), "seed": (int,),
    "policy": (str,), "config": (dict,), "created": (str,),
}
OPTIONAL_HEADER_FIELDS: dict[str, tuple[type, ...]] = {"best_path": (list,), "stats": (dict,)}
NODE_FIELDS: dict[str, tuple[type, ...]] = {
    "type": (str,), "id": (int,), "parent": (int,), "depth": (int,), "action": (str,),
    "prompt": (str,), "logprob": (float, int), "visits": (int,), "q_mcts": (float, int),
    "q_critic": (float, int), "q": (float, int), "reward": (float, int), "terminal": (bool,),
}
ROOT_NULL_FIELDS = ("parent", "action", "prompt", "logprob", "q_critic")  # null at the root, only there


class TreeFormatError(ValueError):
    """A tree file (or the records about to be written) breaks the format.

    Attributes:
        path: the file.
        line: 1-based line number of the first bad line.
        field: the offending field, or None when the whole line is bad.
    """

    def __init__(self, path: str | os.PathLike, line: int, field: str | None, reason: str):
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        where = f"{self.path}, line {line}" + (f", field {field!r}" if field else "")
        super().__init__(f"bad tree file {where}: {reason}")


# ---------------------------------------------------------------------------
# Validation: returns the problem as (field, reason), or None.


def _type_problem(record: dict, name: str, types: tuple[type, ...], nullable: bool) -> tuple[str, str] | None:
    if name not in record:
        return name, "missing"
    value = record[name]
    if value is None:
        return None if nullable else (name, "is null")
    # bool is an int in Python; it is only valid where bool is expected
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        return name, f"expected {names}, got {type(value).__name__} {value!r:.60}"
    if isinstance(value, float) and not math.isfinite(value):
        return name, f"must be finite, got {value}"
    return None


def header_problem(header: Any) -> tuple[str | None, str] | None:
    """Why `header` is not a valid tree header, or None."""
    if not isinstance(header, dict):
        return None, f"expected a JSON object, got {type(header).__name__}"
    if header.get("type") != "tree":
        return "type", f"the first line must have type 'tree', got {header.get('type')!r}"
    for name, types in HEADER_FIELDS.items():
        problem = _type_problem(header, name, types, nullable=False)
        if problem:
            return problem
    for name, types in OPTIONAL_HEADER_FIELDS.items():
        if name in header:
            problem = _type_problem(header, name, types, nullable=True)
            if problem:
                return problem
    path = header.get("best_path") or []
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in path):
        return "best_path", "must be a list of node ids"
    return None


def node_problem(record: Any, index: int, depths: list[int]) -> tuple[str | None, str] | None:
    """Why `record` cannot be node number `index` (0-based) after nodes of `depths`, or None."""
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    if record.get("type") != "node":
        return "type", f"expected type 'node', got {record.get('type')!r}"
    is_root = index == 0
    for name, types in NODE_FIELDS.items():
        problem = _type_problem(record, name, types, nullable=is_root and name in ROOT_NULL_FIELDS)
        if problem:
            return problem
    if record["id"] != index:
        return "id", f"expected id {index} (ids are 0, 1, 2, ... in file order), got {record['id']}"
    if is_root:
        if record["parent"] is not None:
            return "parent", "the root (id 0) must have parent null"
        if record["depth"] != 0:
            return "depth", f"the root has depth 0, got {record['depth']}"
        return None
    if not 0 <= record["parent"] < index:
        return "parent", f"parent {record['parent']} is not an earlier node"
    if record["depth"] != depths[record["parent"]] + 1:
        return "depth", f"expected depth {depths[record['parent']] + 1} (parent's + 1), got {record['depth']}"
    if record["visits"] < 0:
        return "visits", f"must be >= 0, got {record['visits']}"
    return None


def _best_path_problem(best_path: list[int], nodes: list[dict]) -> str | None:
    if not best_path:
        return None
    if best_path[0] != 0:
        return "must start at the root (0)"
    for a, b in zip(best_path, best_path[1:]):
        if not 0 <= b < len(nodes) or nodes[b]["parent"] != a:
            return f"node {b} is not a child of node {a}"
    return None


def validate_tree(header: Any, nodes: list[Any], path: str | os.PathLike = "<records>") -> None:
    """Raise TreeFormatError at the first bad record (line numbers as in the file)."""
    problem = header_problem(header)
    if problem:
        raise TreeFormatError(path, 1, *problem)
    if not nodes:
        raise TreeFormatError(path, 2, None, "a tree has at least its root node")
    depths: list[int] = []
    for i, record in enumerate(nodes):
        problem = node_problem(record, i, depths)
        if problem:
            raise TreeFormatError(path, i + 2, *problem)
        depths.append(record["depth"])
    reason = _best_path_problem(header.get("best_path") or [], nodes)
    if reason:
        raise TreeFormatError(path, 1, "best_path", reason)


# ---------------------------------------------------------------------------
# Files.


def make_header(env_id: str, goal_id: int, goal: str, seed: int, policy: str, config: dict,
                best_path: list[int] | None = None, stats: dict | None = None) -> dict:
    """A tree header stamped with the current UTC time."""
    header = {"type": "tree", "env_id": env_id, "goal_id": goal_id, "goal": goal, "seed": seed,
              "policy": policy, "config": dict(config),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if best_path is not None:
        header["best_path"] = list(best_path)
    if stats is not None:
        header["stats"] = dict(stats)
    return header


def write_tree(path: str | os.PathLike, header: dict, nodes: Iterable[dict]) -> None:
    """Validate and write a tree file atomically (temp file in the same dir + os.replace)."""
    path = Path(path)
    nodes = list(nodes)
    validate_tree(header, nodes, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name in the same directory (so os.replace is atomic); plain open keeps the umask's mode
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(json.dumps(header, ensure_ascii=False, allow_nan=False) + "\n")
            for record in nodes:
                f.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_tree(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """Read and validate a tree file.

    Returns:
        (header, nodes), nodes in id order.

    Raises:
        TreeFormatError: naming the file, the first bad line and its field (the
            header's `best_path` is checked last, once the nodes are known).
    """
    path = Path(path)
    header: Any = None
    nodes: list[dict] = []
    depths: list[int] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                raise TreeFormatError(path, lineno, None, "empty line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TreeFormatError(path, lineno, None, f"not JSON ({exc.msg} at column {exc.colno})") from None
            if lineno == 1:
                problem = header_problem(record)
                if problem:
                    raise TreeFormatError(path, 1, *problem)
                header = record
                continue
            problem = node_problem(record, lineno - 2, depths)
            if problem:
                raise TreeFormatError(path, lineno, *problem)
            nodes.append(record)
            depths.append(record["depth"])
    if header is None:
        raise TreeFormatError(path, 1, None, "empty file")
    if not nodes:
        raise TreeFormatError(path, 2, None, "a tree has at least its root node")
    reason = _best_path_problem(header.get("best_path") or [], nodes)
    if reason:
        raise TreeFormatError(path, 1, "best_path", reason)
    return header, nodes


def is_complete_tree(path: str | os.PathLike) -> bool:
    """The file exists and validates (what collection treats as finished)."""
    try:
        read_tree(path)
    except (OSError, UnicodeDecodeError, TreeFormatError):
        return False
    return True


# ---------------------------------------------------------------------------
# Walking the flat records.


def children_by_parent(nodes: list[dict]) -> dict[int, list[dict]]:
    """Every node's children, in id (proposal) order; leaves map to []."""
    children: dict[int, list[dict]] = {n["id"]: [] for n in nodes}
    for n in nodes:
        if n["parent"] is not None:
            children[n["parent"]].append(n)
    return children


def path_to(nodes: list[dict], node_id: int) -> list[dict]:
    """The nodes from the root down to `node_id`, root first."""
    path = [nodes[node_id]]
    while path[-1]["parent"] is not None:
        path.append(nodes[path[-1]["parent"]])
    return path[::-1]


def best_path(header: dict, nodes: list[dict]) -> list[dict]:
    """The committed path, root first: the header's `best_path` when it has one,
    otherwise from the root the visited child with most visits (ties by Q, then
    lowest id) until no child was visited."""
    if header.get("best_path"):
        return [nodes[i] for i in header["best_path"]]
    children = children_by_parent(nodes)
    path = [nodes[0]]
    while True:
        visited = [c for c in children[path[-1]["id"]] if c["visits"] > 0]
        if not visited:
            return path
        path.append(max(visited, key=lambda c: best_child_key(c["visits"], c["q"], c["id"])))


def trajectories(nodes: list[dict]) -> list[list[dict]]:
    """Every root-to-leaf path (root first), one per leaf, in leaf id order."""
    children = children_by_parent(nodes)
    return [path_to(nodes, n["id"]) for n in nodes if not children[n["id"]]]


def tree_stats(header: dict, nodes: list[dict]) -> dict:
    """Flat numbers about a tree: nodes, deepest depth, the best path's reward and
    whether it ends the episode with reward 1."""
    path = best_path(header, nodes)
    reward = float(sum(n["reward"] for n in path))
    return {"nodes": len(nodes), "max_depth": max(n["depth"] for n in nodes), "best_reward": reward,
            "success": bool(path[-1]["terminal"] and reward >= SUCCESS_REWARD - 1e-9)}
