"""Search trees on disk: one JSONL file per task, as typed records (docs/DESIGN.md, "Search trees on disk").

Line 1 is the header (`TreeHeader`)::

    {"type": "tree", "format", "env_id", "goal_id", "goal", "seed", "policy", "policy_fingerprint",
     "config", "created", "best_path", "stats"}

(`format` — the tree format, `TREE_FORMAT`; 1 when absent —, `policy_fingerprint`,
`best_path` — the committed node ids from the root — and `stats`, a flat dict of
numbers, are optional when reading.) Then one flat line per node (`NodeRecord`), in id
order (ids are 0, 1, 2, ... and a parent always comes before its children)::

    {"type": "node", "id", "parent", "depth", "action", "prompt", "logprob",
     "visits", "q_mcts", "q_critic", "q", "reward", "terminal"}

Only the root (id 0) has `parent`, `action`, `prompt`, `logprob` and `q_critic`
null. Format 2 (written since issue 12) stores each prompt once: a node whose prompt
is that of an earlier node (siblings share their parent state's prompt) has
`"prompt_from": <that node's id>` in place of `"prompt"` (the earliest node with the
prompt, which holds it as text). Format 1 files hold every prompt in full; both read
as the same records. Files are written atomically (`webgrove.io`), so a tree file that exists is
whole; `read_tree` validates every line and names the file, the first bad line and
its field. `TreeIndex` is the one index over a tree's records (children, paths, the
committed path, trajectory ends and their outcomes) that MCTS, the viewer and the
pair builders share.
"""
from __future__ import annotations

import json
import math
import operator
import os
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence, TypeVar

from webgrove.envs import is_success
from webgrove.io import write_text_atomic

TREE_FORMAT = 2  # what `tree_text` writes; `read_tree` reads READABLE_FORMATS
READABLE_FORMATS = (1, 2)

# A log-probability is <= 0; this much above 0 is float rounding (a single candidate's
# renormalised choice probability can come out as 1 + 1e-7).
LOGPROB_TOLERANCE = 1e-6


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


class RecordError(ValueError):
    """One record, taken alone, is not a valid header or node (`field` None: the whole record)."""

    def __init__(self, field: str | None, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"field {field!r}: {reason}" if field else reason)


# ---------------------------------------------------------------------------
# Field checks.

_NUMBER = (float, int)


def _check(record: dict, name: str, types: tuple[type, ...], nullable: bool = False) -> Any:
    """The value of `record[name]`, checked against `types`; raises RecordError."""
    if name not in record:
        raise RecordError(name, "missing")
    value = record[name]
    if value is None:
        if nullable:
            return None
        raise RecordError(name, "is null")
    # bool is an int in Python; it is only valid where bool is expected
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise RecordError(name, f"expected {names}, got {type(value).__name__} {value!r:.60}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _is_finite(value):
        raise RecordError(name, f"must be finite, got {value!r:.60}")
    return float(value) if types == _NUMBER else value


# Exact types that pass `_check` without its full look (a float still needs the finiteness
# test, an int a size test); anything else — None, a subclass, a wrong type — takes `_check`.
_PLAIN = {(int,): int, (str,): str, (bool,): bool, (dict,): dict, (list,): list, _NUMBER: float}
_SMALL_INT = 2 ** 62  # far below the 1.8e308 where an int stops fitting a float


def _check_fields(record: dict, types: dict[str, tuple[type, ...]], nullable: Iterable[str] = ()) -> dict:
    """`{name: _check(record, name, types[name], name in nullable)}`, with a fast path for
    plain values (the records MCTS writes and most files hold); the same verdicts."""
    values = {}
    for name, allowed in types.items():
        value = record.get(name)
        kind = type(value)
        if kind is _PLAIN[allowed] and (
                (kind is float and value - value == 0.0)  # finite: inf - inf and nan - nan are nan
                or (kind is int and -_SMALL_INT < value < _SMALL_INT) or kind in (str, bool, dict, list)):
            values[name] = value
        else:
            values[name] = _check(record, name, allowed, nullable=name in nullable)
    return values


def _is_finite(value: int | float) -> bool:
    """Whether a number fits a finite float (an integer of 400 digits does not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _check_type_tag(record: Any, expected: str) -> None:
    if not isinstance(record, dict):
        raise RecordError(None, f"expected a JSON object, got {type(record).__name__}")
    if record.get("type") != expected:
        raise RecordError("type", f"expected type {expected!r}, got {record.get('type')!r}")


# ---------------------------------------------------------------------------
# The records.


@dataclass(frozen=True)
class TreeHeader:
    """Line 1 of a tree file: which task, which policy, which settings."""

    env_id: str
    goal_id: int
    goal: str  # the instruction
    seed: int  # the env reset's and the search's seed
    policy: str  # the policy spec as given
    config: dict  # the collection's full configuration (see `webgrove.search.collect`)
    created: str  # UTC, ISO 8601
    policy_fingerprint: str | None = None  # `webgrove.agents.fingerprint`; None in files from before it
    best_path: list[int] | None = None  # committed node ids from the root
    stats: dict | None = None  # flat numbers about the tree and its collection

    _TYPES = {"env_id": (str,), "goal_id": (int,), "goal": (str,), "seed": (int,), "policy": (str,),
              "config": (dict,), "created": (str,)}
    _OPTIONAL = {"policy_fingerprint": (str,), "best_path": (list,), "stats": (dict,)}

    def to_dict(self) -> dict:
        """The JSON object of line 1 as written now (`TREE_FORMAT`; optional fields left out
        when None)."""
        out: dict[str, Any] = {"type": "tree", "format": TREE_FORMAT}
        for name in _HEADER_FIELDS:
            value = getattr(self, name)
            if value is not None or name not in self._OPTIONAL:
                out[name] = list(value) if name == "best_path" else value
        return out

    @classmethod
    def from_dict(cls, record: Any) -> "TreeHeader":
        """Check and type a header object (its `format` is `tree_format`'s). Raises RecordError
        naming the field."""
        _check_type_tag(record, "tree")
        values = _check_fields(record, cls._TYPES)
        for name, types in cls._OPTIONAL.items():
            values[name] = _check(record, name, types, nullable=True) if name in record else None
        path = values["best_path"]
        if path is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in path):
            raise RecordError("best_path", "must be a list of node ids")
        return cls(**values)


_HEADER_FIELDS = tuple(f.name for f in fields(TreeHeader))  # line 1's keys after "type" and "format"


def tree_format(header: Any) -> int:
    """The format of a tree file, from its header object (1 when it has no `format`).
    Raises RecordError when it is not one this code reads."""
    fmt = header.get("format", 1) if isinstance(header, dict) else 1
    if type(fmt) is not int or fmt not in READABLE_FORMATS:
        raise RecordError("format", f"unknown tree format {fmt!r:.60} (this webgrove reads formats "
                                    f"{', '.join(map(str, READABLE_FORMATS))}; a newer one wrote it?)")
    return fmt


def node_from_line(record: Any, earlier: Sequence["NodeRecord"], fmt: int) -> "NodeRecord":
    """The node of one line of a file of format `fmt`, after the nodes `earlier` (ids 0 ..
    len-1): a format-2 `prompt_from` takes that node's prompt. Raises RecordError naming the
    field (its place among the others is `node_position_problem`'s)."""
    if fmt >= 2 and isinstance(record, dict) and "prompt_from" in record:
        record = _with_shared_prompt(record, earlier)
    return NodeRecord.from_dict(record)


def _with_shared_prompt(record: dict, earlier: Sequence["NodeRecord"]) -> dict:
    """`record` with its `prompt_from` replaced by the prompt of the node it names."""
    if "prompt" in record:
        raise RecordError("prompt_from", "a node has prompt or prompt_from, not both")
    ref = record["prompt_from"]
    if type(ref) is not int or not 1 <= ref < len(earlier):
        raise RecordError("prompt_from", f"expected the id of an earlier node other than the root, got {ref!r:.60}")
    shared = dict(record)
    del shared["prompt_from"]
    shared["prompt"] = earlier[ref].prompt
    return shared

ROOT_NULL_FIELDS = ("parent", "action", "prompt", "logprob", "q_critic")  # null at the root, only there


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node line: the state reached by taking `action` at the parent state."""

    id: int
    parent: int | None
    depth: int  # actions from the root
    action: str | None
    prompt: str | None  # the exact policy input at the parent state
    logprob: float | None  # the collecting policy's log-prob of `action` there (<= 0)
    visits: int
    q_mcts: float  # mean return of the simulations through the node
    q_critic: float | None  # the critic's value of `action`
    q: float  # the mixed value the search ranks by
    reward: float  # env reward received on taking `action`
    terminal: bool

    def to_dict(self) -> dict:
        """The JSON object of the node's line."""
        return node_dict(self)

    @classmethod
    def from_dict(cls, record: Any) -> "NodeRecord":
        """Check and type one node object on its own (`node_position_problem` checks it
        against the others). Raises RecordError naming the field."""
        return cls(**node_values(record))


def node_values(record: Any) -> dict:
    """The checked field values of one node object (what `NodeRecord.from_dict` types).
    Raises RecordError naming the field."""
    _check_type_tag(record, "node")
    is_root = record.get("parent", 0) is None or record.get("id") == 0  # the position check says which
    values = _check_fields(record, _NODE_TYPES, ROOT_NULL_FIELDS if is_root else ())
    if values["logprob"] is not None and values["logprob"] > LOGPROB_TOLERANCE:
        raise RecordError("logprob", f"a log-probability is <= 0, got {values['logprob']}")
    if values["visits"] < 0:
        raise RecordError("visits", f"must be >= 0, got {values['visits']}")
    return values


_NODE_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,), "parent": (int,), "depth": (int,), "action": (str,), "prompt": (str,),
    "logprob": _NUMBER, "visits": (int,), "q_mcts": _NUMBER, "q_critic": _NUMBER, "q": _NUMBER,
    "reward": _NUMBER, "terminal": (bool,),
}
_NODE_KEYS = ("type", *_NODE_TYPES)
_node_values_of = operator.attrgetter(*_NODE_TYPES)  # a record's values in line order, in one C call


def node_dict(node: Any) -> dict:
    """The JSON object of a node's line, from a `NodeRecord` or any object with its attributes."""
    return dict(zip(_NODE_KEYS, ("node", *_node_values_of(node))))


def make_header(env_id: str, goal_id: int, goal: str, seed: int, policy: str, config: dict,
                best_path: list[int] | None = None, stats: dict | None = None,
                policy_fingerprint: str | None = None) -> TreeHeader:
    """A tree header stamped with the current UTC time."""
    return TreeHeader(env_id=env_id, goal_id=goal_id, goal=goal, seed=seed, policy=policy,
                      config=dict(config), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      policy_fingerprint=policy_fingerprint,
                      best_path=None if best_path is None else list(best_path),
                      stats=None if stats is None else dict(stats))


# ---------------------------------------------------------------------------
# A tree's records together.


def node_position_problem(node: NodeRecord, earlier: Sequence[NodeRecord]) -> RecordError | None:
    """Why `node` cannot come after the nodes `earlier` (ids 0 .. len-1), or None."""
    return _position_problem(node, len(earlier), earlier)


def _position_problem(node: NodeRecord, index: int, nodes: Sequence[NodeRecord]) -> RecordError | None:
    """`node_position_problem` for the node at `index` of `nodes` (no copy of the earlier ones)."""
    if node.id != index:
        return RecordError("id", f"expected id {index} (ids are 0, 1, 2, ... in file order), got {node.id}")
    if index == 0:
        if node.parent is not None:
            return RecordError("parent", "the root (id 0) must have parent null")
        if node.depth != 0:
            return RecordError("depth", f"the root has depth 0, got {node.depth}")
        return None
    if node.parent is None:
        return RecordError("parent", "only the root (id 0) has parent null")
    if not 0 <= node.parent < index:
        return RecordError("parent", f"parent {node.parent} is not an earlier node")
    expected = nodes[node.parent].depth + 1
    if node.depth != expected:
        return RecordError("depth", f"expected depth {expected} (parent's + 1), got {node.depth}")
    return None


def best_path_problem(best_path: Sequence[int], nodes: Sequence[NodeRecord]) -> str | None:
    """Why `best_path` is not a path from the root down `nodes`, or None."""
    if not best_path:
        return None
    if best_path[0] != 0:
        return "must start at the root (0)"
    for a, b in zip(best_path, best_path[1:]):
        if not 0 <= b < len(nodes) or nodes[b].parent != a:
            return f"node {b} is not a child of node {a}"
    return None


def validate_tree(header: TreeHeader, nodes: Sequence[NodeRecord], path: str | os.PathLike = "<records>") -> None:
    """Raise TreeFormatError at the first record that does not fit (line numbers as in the file)."""
    if not nodes:
        raise TreeFormatError(path, 2, None, "a tree has at least its root node")
    for i, node in enumerate(nodes):
        problem = _position_problem(node, i, nodes)
        if problem:
            raise TreeFormatError(path, i + 2, problem.field, problem.reason)
    reason = best_path_problem(header.best_path or [], nodes)
    if reason:
        raise TreeFormatError(path, 1, "best_path", reason)


def tree_from_dicts(records: Sequence[Any], path: str | os.PathLike = "<records>") -> tuple[TreeHeader, list[NodeRecord]]:
    """Type and validate JSON-like records (the header first, then the nodes), as read from a
    file of any readable format."""
    if not records:
        raise TreeFormatError(path, 1, None, "no records")
    (header, fmt), nodes = _typed_header(records[0], path), []
    for line, record in enumerate(records[1:], start=2):
        try:
            nodes.append(node_from_line(record, nodes, fmt))
        except RecordError as exc:
            raise TreeFormatError(path, line, exc.field, exc.reason) from None
    validate_tree(header, nodes, path)
    return header, nodes


def _typed_header(record: Any, path: str | os.PathLike) -> tuple[TreeHeader, int]:
    """Line 1 typed, and the file's format (`tree_format`); raises TreeFormatError."""
    try:
        return TreeHeader.from_dict(record), tree_format(record)
    except RecordError as exc:
        raise TreeFormatError(path, 1, exc.field, exc.reason) from None


# ---------------------------------------------------------------------------
# Files.


# json.dumps builds a new encoder per call when given options; one encoder serves every line.
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def tree_text(header: TreeHeader, nodes: Sequence[Any], path: str | os.PathLike = "<records>") -> str:
    """A tree file's text in format `TREE_FORMAT`, validated as a reader will validate it (a
    typed record can still hold a bad value, say a NaN critic value): raises TreeFormatError
    naming `path`.

    Args:
        nodes: in id order, `NodeRecord`s or any objects with their attributes (MCTS's own
            nodes are written as they are, without a record built for each).
    """
    nodes = nodes if isinstance(nodes, list) else list(nodes)
    head = header.to_dict()
    _check_lines([head], path)
    lines = _plain_lines(nodes)
    if lines is None:  # the full check names the bad line and field
        dicts = [node_dict(n) for n in nodes]
        _check_lines([head, *dicts], path)
        validate_tree(header, nodes, path)
        return "".join([_ENCODE(r) + "\n" for r in (head, *_share_prompts(dicts))])
    reason = best_path_problem(header.best_path or [], nodes)  # the nodes' places are checked
    if reason:
        raise TreeFormatError(path, 1, "best_path", reason)
    lines[0] = _ENCODE(head) + "\n"
    return "".join(lines)


def _share_prompts(dicts: list[dict]) -> list[dict]:
    """Format 2's node objects of valid node dicts: a prompt that an earlier node has is
    `prompt_from` that node's id, in the same place of the line."""
    first: dict[str, int] = {}
    out = []
    for d in dicts:
        prompt, node_id = d["prompt"], d["id"]
        ref = node_id if prompt is None else first.setdefault(prompt, node_id)
        out.append(d if ref == node_id else
                   {("prompt_from" if k == "prompt" else k): (ref if k == "prompt" else v) for k, v in d.items()})
    return out


def _check_lines(records: Sequence[Any], path: str | os.PathLike) -> None:
    """Each record checked as `tree_from_dicts` checks it (header first), without typing it anew."""
    for line, record in enumerate(records, start=1):
        try:
            TreeHeader.from_dict(record) if line == 1 else node_values(record)
        except RecordError as exc:
            raise TreeFormatError(path, line, exc.field, exc.reason) from None


# The exact value types of the nodes MCTS writes (the root: its nulls). A node of these
# types with finite numbers, visits in range and a log-prob <= 0 passes `node_values`.
_PLAIN_NODE = tuple(_PLAIN[types] for types in _NODE_TYPES.values())
_PLAIN_ROOT = tuple(type(None) if name in ROOT_NULL_FIELDS else kind for name, kind in zip(_NODE_TYPES, _PLAIN_NODE))

# A plain node's line is written here exactly as `_ENCODE` writes its object (`node.to_dict()`, its
# prompt shared as `_share_prompts` shares it): json writes a plain int as str() does, a float as its
# repr, a string with `encode_basestring`, and separates with ", " and ": ". Each distinct prompt is
# encoded and written once (siblings share theirs), and each distinct action and float is encoded
# once: a tree holds few distinct values (~30 of ~300 floats), while encoding them is most of the
# cost of a tree's text. tests/search/test_search_tree.py checks the equality.
_ROOT_LINE = ('{"type": "node", "id": 0, "parent": null, "depth": 0, "action": null, "prompt": null, "logprob": null, '
              '"visits": %d, "q_mcts": %r, "q_critic": null, "q": %r, "reward": %r, "terminal": %s}\n')


class _Encoded(dict):
    """JSON of each string looked up, encoded on first use."""

    def __missing__(self, text: str) -> str:
        encoded = self[text] = encode_basestring(text)
        return encoded


class _Reprs(dict):
    """JSON (repr) of each finite float looked up, written on first use. Zeros are written
    every time: 0.0 and -0.0 are equal keys with different reprs (`_plain_lines` writes its
    zeros itself, without this Python-level call: a tree holds about two a node)."""

    def __missing__(self, x: float) -> str:
        text = repr(x)
        if x != 0.0:
            self[x] = text
        return text


def _plain_lines(nodes: Sequence[Any]) -> list[str] | None:
    """The nodes' lines, after a slot for the header's line, when every node holds values of
    exactly its fields' plain types, finite numbers, visits in range, a log-prob <= 0 and its
    place in the tree (id, parent, depth) right; None otherwise, for the full check."""
    if not nodes or tuple(map(type, _node_values_of(nodes[0]))) != _PLAIN_ROOT:
        return None
    root = nodes[0]
    if not (root.id == 0 and root.depth == 0 and math.isfinite(root.q_mcts + root.q + root.reward)
            and 0 <= root.visits < _SMALL_INT):
        return None
    out = ["", _ROOT_LINE % (root.visits, root.q_mcts, root.q, root.reward, "true" if root.terminal else "false")]
    depths, append, text, num, first = [0], out.append, _Encoded(), _Reprs(), {}
    isfinite, values_of, plain = math.isfinite, _node_values_of, _PLAIN_NODE
    for i in range(1, len(nodes)):
        values = values_of(nodes[i])
        if tuple(map(type, values)) != plain:
            return None
        node_id, parent, depth, action, prompt, logprob, visits, q_mcts, q_critic, q, reward, terminal = values
        # a sum of floats is finite only if each one is (or it overflowed: then the full check decides)
        if not (node_id == i and 0 <= parent < i and depth == depths[parent] + 1
                and isfinite(logprob + q_mcts + q_critic + q + reward) and logprob <= LOGPROB_TOLERANCE
                and 0 <= visits < _SMALL_INT):
            return None
        depths.append(depth)
        ref = first.setdefault(prompt, i)
        shared = f'"prompt_from": {ref}' if ref != i else '"prompt": ' + encode_basestring(prompt)
        append(f'{{"type": "node", "id": {i}, "parent": {parent}, "depth": {depth}, "action": {text[action]}, '
               f'{shared}, "logprob": {num[logprob] if logprob else repr(logprob)}, "visits": {visits}, '
               f'"q_mcts": {num[q_mcts] if q_mcts else repr(q_mcts)}, '
               f'"q_critic": {num[q_critic] if q_critic else repr(q_critic)}, "q": {num[q] if q else repr(q)}, '
               f'"reward": {num[reward] if reward else repr(reward)}, "terminal": {"true" if terminal else "false"}}}\n')
    return out


def write_tree(path: str | os.PathLike, header: TreeHeader, nodes: Sequence[Any]) -> None:
    """Validate and write a tree file atomically (temp file in the same folder + rename)."""
    write_text_atomic(path, tree_text(header, nodes, path))


def _parse_line(path: Path, lineno: int, raw: bytes) -> Any:
    """The JSON value of one raw line; raises TreeFormatError saying why it is not one."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TreeFormatError(path, lineno, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                                  f"{exc.start + 1}); is this a tree file?") from None
    if not line.strip():
        raise TreeFormatError(path, lineno, None, "empty line")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise TreeFormatError(path, lineno, None, f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise TreeFormatError(path, lineno, None, "JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise TreeFormatError(path, lineno, None, f"not readable JSON ({exc})") from None


def read_tree(path: str | os.PathLike) -> tuple[TreeHeader, list[NodeRecord]]:
    """Read and validate a tree file.

    Returns:
        (header, nodes), nodes in id order.

    Raises:
        TreeFormatError: naming the file, the first bad line and its field (the
            header's `best_path` is checked last, once the nodes are known).
        OSError: the file cannot be opened.
    """
    path = Path(path)
    header: TreeHeader | None = None
    nodes: list[NodeRecord] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            record = _parse_line(path, lineno, raw)
            if lineno == 1:
                header, fmt = _typed_header(record, path)
                continue
            try:
                node = node_from_line(record, nodes, fmt)
                problem = node_position_problem(node, nodes)
                if problem:
                    raise problem
            except RecordError as exc:
                raise TreeFormatError(path, lineno, exc.field, exc.reason) from None
            nodes.append(node)
    if header is None:
        raise TreeFormatError(path, 1, None, "empty file")
    validate_tree(header, nodes, path)
    return header, nodes


def is_complete_tree(path: str | os.PathLike) -> bool:
    """The file exists and validates (what collection treats as finished)."""
    try:
        read_tree(path)
    except (OSError, TreeFormatError):
        return False
    return True


# ---------------------------------------------------------------------------
# Walking the records: shared by MCTS (its live nodes), the viewer and the pair builders.


class _HasParent(Protocol):
    @property
    def parent(self) -> int | None: ...


class _Committable(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def visits(self) -> int: ...
    @property
    def q(self) -> float: ...


N = TypeVar("N", bound=_HasParent)
C = TypeVar("C", bound=_Committable)


def path_to(nodes: Sequence[N], node_id: int) -> list[N]:
    """The nodes from the root down to `node_id`, root first (`nodes[i]` has id i)."""
    path = [nodes[node_id]]
    while path[-1].parent is not None:
        path.append(nodes[path[-1].parent])
    return path[::-1]


def best_child_key(visits: int, q: float, node_id: int) -> tuple[int, float, int]:
    """Sort key of the action to commit to: most visits, then highest Q, then the
    earliest proposal (lowest id)."""
    return (visits, q, -node_id)


def committed_child(children: Iterable[C]) -> C | None:
    """The child a search commits to: the visited one with most visits (ties by Q,
    then lowest id); None when none was visited."""
    best, best_key = None, None
    for c in children:  # max() by `best_child_key` over the visited ones, in one pass
        if c.visits > 0:
            key = best_child_key(c.visits, c.q, c.id)
            if best is None or key > best_key:
                best, best_key = c, key
    return best


@dataclass(frozen=True)
class TreeIndex:
    """One tree's records with its children lists, trajectory ends and their outcomes.

    A trajectory end is a terminal node (outcome: the return along its path) or a visited
    non-root leaf the search rolled out from (outcome: its Q_mcts, the mean return of
    those rollouts; a rollout's own steps are not stored in the tree).
    """

    header: TreeHeader
    nodes: list[NodeRecord]  # nodes[i].id == i
    children: list[list[int]] = field(repr=False)  # child ids of each node, in id order
    outcome: dict[int, float] = field(repr=False)  # trajectory end -> its return, in id order
    best_reward: list[float] = field(repr=False)  # best outcome in each node's subtree (-inf: none)

    @classmethod
    def build(cls, header: TreeHeader, nodes: Sequence[NodeRecord]) -> "TreeIndex":
        """Index validated records (as `read_tree` or `tree_from_dicts` return them)."""
        nodes = list(nodes)
        children: list[list[int]] = [[] for _ in nodes]
        path_return: list[float] = []
        for n in nodes:  # parents come before their children
            path_return.append((0.0 if n.parent is None else path_return[n.parent]) + n.reward)
            if n.parent is not None:
                children[n.parent].append(n.id)
        outcome = {}
        for n in nodes:
            if n.terminal:
                outcome[n.id] = path_return[n.id]
            elif n.parent is not None and n.visits >= 1 and not any(nodes[c].visits >= 1 for c in children[n.id]):
                outcome[n.id] = n.q_mcts
        best = [outcome.get(n.id, -math.inf) for n in nodes]
        for n in reversed(nodes):  # children before parents
            if n.parent is not None:
                best[n.parent] = max(best[n.parent], best[n.id])
        return cls(header, nodes, children, outcome, best)

    @classmethod
    def from_records(cls, records: "TreeIndex | Sequence[Any]") -> "TreeIndex":
        """An index of records: the header first, then the nodes, as typed records or as
        JSON-like dicts (validated); an index is returned as it is."""
        if isinstance(records, TreeIndex):
            return records
        if records and isinstance(records[0], TreeHeader):
            validate_tree(records[0], records[1:])
            return cls.build(records[0], records[1:])
        return cls.build(*tree_from_dicts(records))

    @property
    def goal_id(self) -> int:
        return self.header.goal_id

    def path(self, node_id: int) -> list[NodeRecord]:
        """The nodes from the root down to `node_id`, root first."""
        return path_to(self.nodes, node_id)

    def steps_to(self, node_id: int) -> list[int]:
        """Ids of the nodes below the root down to `node_id`: the steps that reach it."""
        return [n.id for n in self.path(node_id)[1:]]

    def best_path(self) -> list[NodeRecord]:
        """The committed path, root first: the header's `best_path` when it has one,
        otherwise from the root `committed_child` until no child was visited."""
        if self.header.best_path:
            return [self.nodes[i] for i in self.header.best_path]
        path = [self.nodes[0]]
        while (child := committed_child(self.nodes[i] for i in self.children[path[-1].id])) is not None:
            path.append(child)
        return path

    def trajectories(self) -> list[list[NodeRecord]]:
        """Every root-to-leaf path (root first), one per leaf, in leaf id order."""
        return [self.path(n.id) for n in self.nodes if not self.children[n.id]]

    def stats(self) -> dict:
        """`tree_stats` of the tree and its committed path (`best_path`)."""
        return tree_stats(self.nodes, self.best_path())


def tree_stats(nodes: Sequence[Any], path: Sequence[Any]) -> dict:
    """Flat numbers of a tree (`NodeRecord`s or MCTS's nodes) and its committed path (its
    nodes, root first): nodes, deepest depth, the path's return and whether it ends the
    episode with a success (`webgrove.envs.is_success`)."""
    reward = math.fsum(n.reward for n in path)
    return {"nodes": len(nodes), "max_depth": max(n.depth for n in nodes), "best_reward": reward,
            "success": bool(path[-1].terminal and is_success(reward))}


def with_stats(header: TreeHeader, nodes: Sequence[NodeRecord], extra: dict | None = None) -> TreeHeader:
    """`header` with `stats` set to the tree's own numbers plus `extra`."""
    return replace(header, stats={**TreeIndex.build(header, nodes).stats(), **(extra or {})})
