"""Reliability: a generated corpus of corrupted data, tree and rows files.

Every case either loads or raises the project's error for that kind of file
(`WebShopDataError`, `TreeFormatError`, `RowsFileError`), whose message names the file
and, when one record is at fault, its record or line and field. Never a bare KeyError,
TypeError, RecursionError or UnicodeDecodeError.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from webgrove.envs.shop.webshop_data import WebShopDataError, load_webshop
from webgrove.search.tree import TreeFormatError, make_header, read_tree
from webgrove.training.pairs import RowsFileError
from webgrove.training.sft import load_rows

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webshop"
PRODUCTS, ATTRIBUTES, HUMAN = "items_shuffle_fixture.json", "items_ins_v2_fixture.json", "items_human_ins.json"
HUGE = "9" * 400  # a number literal no float holds
# Values written in place of a field: wrong types, non-finite and huge numbers, extra nesting.
WRONG_VALUES: dict[str, Any] = {"null": None, "int": 7, "negative": -5.0, "text": "x", "list": [], "dict": {},
                                "nested": [[[["x"]]]], "bool": True, "nan": float("nan"), "inf": float("inf"),
                                "huge": "<HUGE>"}
FEW_WRONG = ("null", "int", "list", "nested", "nan", "huge")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "webshop" | "tree" | "rows"
    file: str  # the file the corruption is in
    data: bytes  # its corrupted content
    field: str | None = None  # the field corrupted, when one is


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, allow_nan=True).replace('"<HUGE>"', HUGE)


def _byte_cases(kind: str, file: str, data: bytes, n: int = 10) -> list[Case]:
    """Truncation at n offsets, one flipped byte at n offsets, and whole-file damage."""
    cases = []
    for i in range(1, n + 1):
        cut = len(data) * i // (n + 1)
        cases.append(Case(f"{file}-truncated-at-{cut}", kind, file, data[:cut]))
        flipped = bytearray(data)
        flipped[cut] ^= 0xA5
        cases.append(Case(f"{file}-byte-{cut}-flipped", kind, file, bytes(flipped)))
    cases += [Case(f"{file}-empty", kind, file, b""),
              Case(f"{file}-not-utf8", kind, file, b"\xff\xfe" + data[:40] + b"\x80\x81"),
              Case(f"{file}-deep-nesting", kind, file, b"[" * 100_000 + b"]" * 100_000),
              Case(f"{file}-binary", kind, file, bytes(range(256)) * 4)]
    return cases


def _field_cases(kind: str, file: str, where: str, doc: Any, record: Callable[[Any], dict],
                 dump: Callable[[Any], str], wrong: tuple[str, ...] = tuple(WRONG_VALUES)) -> list[Case]:
    """For each field of the record `record(doc)`: each wrong value, and the field missing."""
    cases = []
    for field in list(record(doc)):
        for label in wrong + ("missing",):
            copy = json.loads(json.dumps(doc))
            if label == "missing":
                del record(copy)[field]
            else:
                record(copy)[field] = WRONG_VALUES[label]
            cases.append(Case(f"{file}-{where}-{field}-{label}", kind, file, dump(copy).encode(), field))
    return cases


# -- the original WebShop files -------------------------------------------------------

def _webshop_cases() -> list[Case]:
    products = json.loads((FIXTURE / PRODUCTS).read_text())
    attributes = json.loads((FIXTURE / ATTRIBUTES).read_text())
    human = json.loads((FIXTURE / HUMAN).read_text())
    first_asin, first_human = next(iter(attributes)), next(iter(human))
    dump = lambda d: _dumps(d, indent=1)  # noqa: E731
    cases = []
    for file in (PRODUCTS, ATTRIBUTES, HUMAN):
        cases += _byte_cases("webshop", file, (FIXTURE / file).read_bytes())
    cases += _field_cases("webshop", PRODUCTS, "record-0", products, lambda d: d[0], dump)
    cases += _field_cases("webshop", ATTRIBUTES, first_asin, attributes, lambda d: d[first_asin], dump, FEW_WRONG)
    cases += _field_cases("webshop", HUMAN, first_human, human, lambda d: d[first_human][0], dump, FEW_WRONG)
    for label, pricing in {"negative-price": "$-5.00", "reversed-range": "$20.00 to $3.00",
                           "huge-price": f"${HUGE}.00", "nan-price": "$nan", "inf-price": "$inf",
                           "no-digits": "$", "three-part-range": "$1 to $2 to $3"}.items():
        copy = json.loads(json.dumps(products))
        copy[0]["pricing"] = pricing
        cases.append(Case(f"{PRODUCTS}-{label}", "webshop", PRODUCTS, dump(copy).encode(), "pricing"))
    cases.append(Case(f"{PRODUCTS}-record-nested-in-a-list", "webshop", PRODUCTS,
                      dump([[products[0]], *products[1:]]).encode()))
    cases.append(Case(f"{PRODUCTS}-an-object-not-a-list", "webshop", PRODUCTS, dump({"items": products}).encode()))
    return cases


def _load_webshop(folder: Path) -> None:
    load_webshop(folder, goals="human")


# -- tree files -------------------------------------------------------------------------

def _tree_records() -> list[dict]:
    def node(i, parent, depth, q=0.5, reward=0.0, terminal=False):
        root = parent is None
        return {"type": "node", "id": i, "parent": parent, "depth": depth,
                "action": None if root else f"click[{i}]", "prompt": None if root else "Goal: g\nAction:",
                "logprob": None if root else -1.0, "visits": 2, "q_mcts": q,
                "q_critic": None if root else 0.5, "q": q, "reward": reward, "terminal": terminal}
    header = make_header("webgrove/WebShop-v0", 3, "buy a", 11, "rule", {"k": 2},
                         best_path=[0, 1, 2], stats={"nodes": 3}).to_dict()
    return [header, node(0, None, 0), node(1, 0, 1, q=0.8), node(2, 1, 2, q=1.0, reward=1.0, terminal=True)]


def _tree_cases() -> list[Case]:
    records = _tree_records()
    dump = lambda rs: "".join(_dumps(r) + "\n" for r in rs)  # noqa: E731
    cases = _byte_cases("tree", "tree.jsonl", dump(records).encode())
    cases += _field_cases("tree", "tree.jsonl", "header", records, lambda rs: rs[0], dump, FEW_WRONG)
    cases += _field_cases("tree", "tree.jsonl", "node-2", records, lambda rs: rs[2], dump, FEW_WRONG)
    positive_logprob = json.loads(json.dumps(records))
    positive_logprob[2]["logprob"] = 0.5
    cases.append(Case("tree.jsonl-positive-logprob", "tree", "tree.jsonl", dump(positive_logprob).encode(), "logprob"))
    cases.append(Case("tree.jsonl-node-nested-in-a-list", "tree", "tree.jsonl",
                      dump([records[0], [records[1]], *records[2:]]).encode()))
    return cases


# -- rows files (SFT rows and preference pairs) -------------------------------------------

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def _rows_cases() -> list[Case]:
    rows = [{"prompt": f"Goal: g{i}\nAction:", "chosen": " click[a]", "rejected": " click[b]", "goal_id": i}
            for i in range(3)]
    dump = lambda rs: "".join(_dumps(r) + "\n" for r in rs)  # noqa: E731
    cases = _byte_cases("rows", "pairs.jsonl", dump(rows).encode(), n=6)
    cases += _field_cases("rows", "pairs.jsonl", "line-2", rows, lambda rs: rs[1], dump, FEW_WRONG)
    cases.append(Case("pairs.jsonl-row-is-a-list", "rows", "pairs.jsonl", dump([rows[0], [rows[1]]]).encode()))
    return cases


CASES = _webshop_cases() + _tree_cases() + _rows_cases()


def test_corpus_size():
    counts = {kind: sum(c.kind == kind for c in CASES) for kind in ("webshop", "tree", "rows")}
    print(f"corrupted-file corpus: {len(CASES)} cases {counts}")
    assert len(CASES) >= 100 and min(counts.values()) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


def _load(case: Case, tmp_path: Path) -> tuple[Path, type[Exception], Callable[[], Any]]:
    if case.kind == "webshop":
        folder = tmp_path / "webshop"
        shutil.copytree(FIXTURE, folder)
        (folder / case.file).write_bytes(case.data)
        return folder / case.file, WebShopDataError, lambda: _load_webshop(folder)
    path = tmp_path / case.file
    path.write_bytes(case.data)
    if case.kind == "tree":
        return path, TreeFormatError, lambda: read_tree(path)
    return path, RowsFileError, lambda: load_rows(path, PAIR_COLUMNS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corrupted_file_loads_or_names_file_record_and_field(case, tmp_path):
    path, error, load = _load(case, tmp_path)
    try:
        load()
    except error as exc:
        message = str(exc)
        assert str(path) in message or path.name in message, message
        if case.field is not None:  # one record is at fault: the message names it and the field
            assert case.field in message and ("record" in message or "line" in message), message
    except Exception as exc:  # noqa: BLE001  (anything else is the failure under test)
        pytest.fail(f"{case.name}: {type(exc).__name__} instead of {error.__name__}: {str(exc)[:200]}")
