"""Tree files: round trip, validation naming the first bad line, walking helpers."""
from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import pytest

import toy_env
from webgrove.search.mcts import SearchConfig, search_episode
from webgrove.search.tree import (NodeRecord, TreeFormatError, TreeHeader, TreeIndex, is_complete_tree, make_header,
                                  read_tree, tree_from_dicts, tree_stats, write_tree, TREE_FORMAT)


def _node(i, parent, depth, action="click[x]", visits=1, q=0.5, reward=0.0, terminal=False):
    root = parent is None
    return {"type": "node", "id": i, "parent": parent, "depth": depth,
            "action": None if root else action, "prompt": None if root else "Goal: g\nAction:",
            "logprob": None if root else -1.0, "visits": visits, "q_mcts": q,
            "q_critic": None if root else 0.5, "q": q, "reward": reward, "terminal": terminal}


def _hand_tree():
    """root(0) -> a(1) -> c(3, terminal, reward 1); root -> b(2) -> d(4, terminal, reward 0)."""
    header, nodes = _hand_dicts()
    return tree_from_dicts([header, *nodes])


def _hand_dicts():
    nodes = [_node(0, None, 0, visits=5, q=0.6),
             _node(1, 0, 1, "click[a]", visits=3, q=0.8),
             _node(2, 0, 1, "click[b]", visits=2, q=0.3),
             _node(3, 1, 2, "click[buy now]", visits=3, q=1.0, reward=1.0, terminal=True),
             _node(4, 2, 2, "click[buy now]", visits=2, q=0.0, terminal=True),
             _node(5, 2, 2, "click[c]", visits=0, q=0.5)]
    header = make_header("toy", 3, "buy a", 11, "rule", {"k": 2, "alpha": 0.5}).to_dict()
    return header, nodes


def _json_text(header, nodes):
    """A tree's text in format 2 as json.dumps writes it: a node whose prompt an earlier node
    has names the first such node in `prompt_from`, in the prompt's place."""
    first, records = {}, [header.to_dict()]
    for n in nodes:
        d = n.to_dict()
        if n.prompt is not None and first.setdefault(n.prompt, n.id) != n.id:
            d = {("prompt_from" if k == "prompt" else k): (first[n.prompt] if k == "prompt" else v) for k, v in d.items()}
        records.append(d)
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records)


def test_round_trip(tmp_path):
    header, nodes = _hand_tree()
    path = tmp_path / "sub" / "goal_00003.jsonl"
    write_tree(path, header, nodes)
    assert read_tree(path) == (header, nodes)
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + len(nodes)
    assert path.read_text() == _json_text(header, nodes)
    assert json.loads(lines[0])["type"] == "tree" and all(json.loads(x)["type"] == "node" for x in lines[1:])
    assert json.loads(lines[0])["format"] == TREE_FORMAT == 2
    # every node shares one prompt: node 1 holds it, the others name node 1
    assert path.read_text().count("Goal: g") == 1
    assert [json.loads(x).get("prompt_from") for x in lines[1:]] == [None, None, 1, 1, 1, 1]
    assert list(tmp_path.glob("sub/.*")) == []  # no temp file left behind
    assert is_complete_tree(path)


def test_round_trip_of_a_searched_tree(tmp_path):
    env = gym.make("toy_env:ToyTree-v0")
    env.reset(seed=0, options={"goal_id": 2})
    tree = search_episode(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), SearchConfig(simulations=5, k=3))
    header = make_header("toy_env:ToyTree-v0", 2, "g", 0, "toy", {"k": 3}, best_path=tree.best_path)
    write_tree(tmp_path / "t.jsonl", header, tree.records())
    header2, nodes = read_tree(tmp_path / "t.jsonl")
    assert nodes == tree.records()
    index = TreeIndex.build(header2, nodes)
    assert [n.id for n in index.best_path()] == tree.best_path
    assert index.stats()["success"] == tree.success


def test_index_on_a_hand_built_tree():
    header, nodes = _hand_tree()
    index = TreeIndex.build(header, nodes)
    assert index.children == [[1, 2], [3], [4, 5], [], [], []]
    assert [n.id for n in index.path(4)] == [0, 2, 4] and index.steps_to(4) == [2, 4]
    assert [[n.id for n in t] for t in index.trajectories()] == [[0, 1, 3], [0, 2, 4], [0, 2, 5]]
    assert index.outcome == {3: 1.0, 4: 0.0} and index.best_reward == [1.0, 1.0, 0.0, 1.0, 0.0, float("-inf")]
    # without a stored best path: most visits; node 5 was never visited
    assert [n.id for n in index.best_path()] == [0, 1, 3]
    assert index.stats() == {"nodes": 6, "max_depth": 2, "best_reward": 1.0, "success": True}
    # a stored best path wins
    index = TreeIndex.build(dataclasses.replace(header, best_path=[0, 2, 4]), nodes)
    assert [n.id for n in index.best_path()] == [0, 2, 4]
    assert index.stats()["success"] is False


def test_best_path_ties_broken_by_q():
    header, nodes = _hand_tree()
    nodes[2] = dataclasses.replace(nodes[2], visits=3, q=0.9)
    assert [n.id for n in TreeIndex.build(header, nodes).best_path()][:2] == [0, 2]


def test_records_round_trip_as_dicts_and_reject_bad_fields():
    header, nodes = _hand_tree()
    assert TreeHeader.from_dict(header.to_dict()) == header
    assert [NodeRecord.from_dict(n.to_dict()) for n in nodes] == nodes
    assert "best_path" not in header.to_dict() and "policy_fingerprint" not in header.to_dict()
    with pytest.raises(ValueError, match="'goal_id'.*expected int"):
        TreeHeader.from_dict({**header.to_dict(), "goal_id": "3"})
    with pytest.raises(ValueError, match="'logprob'.*<= 0"):
        NodeRecord.from_dict({**nodes[1].to_dict(), "logprob": 0.5})
    assert NodeRecord.from_dict({**nodes[1].to_dict(), "logprob": 1e-8}).logprob == 1e-8  # rounding


@pytest.mark.parametrize("line,edit,field", [
    (1, lambda r: r.pop("goal"), "goal"),
    (1, lambda r: r.update(type="node"), "type"),
    (1, lambda r: r.update(best_path=[0, 2, 3]), "best_path"),
    (2, lambda r: r.update(parent=0), "parent"),
    (3, lambda r: r.update(visits="3"), "visits"),
    (4, lambda r: r.update(parent=3), "parent"),           # parent after the child
    (4, lambda r: r.update(depth=2), "depth"),
    (5, lambda r: r.update(id=7), "id"),
    (5, lambda r: r.update(terminal=1), "terminal"),
    (6, lambda r: r.update(q_critic=None), "q_critic"),     # null only at the root
    (6, lambda r: r.update(q=True), "q"),
    (7, lambda r: r.pop("prompt_from"), "prompt"),
    (1, lambda r: r.update(format=3), "format"),            # a newer format
    (1, lambda r: r.update(format="2"), "format"),
    (4, lambda r: r.update(prompt_from=0), "prompt_from"),  # the root has no prompt
    (4, lambda r: r.update(prompt_from=2), "prompt_from"),  # itself
    (4, lambda r: r.update(prompt_from=True), "prompt_from"),
    (4, lambda r: r.update(prompt="Goal: g\nAction:"), "prompt_from"),  # both
    (6, lambda r: r.update(prompt_from=None), "prompt_from"),
    (7, lambda r: r.update(logprob=0.5), "logprob"),        # a probability above 1
])
def test_corrupted_file_names_first_bad_line_and_field(tmp_path, line, edit, field):
    header, nodes = _hand_tree()
    header = dataclasses.replace(header, best_path=[0, 1, 3])
    path = tmp_path / "t.jsonl"
    write_tree(path, header, nodes)
    records = [json.loads(x) for x in path.read_text().splitlines()]
    edit(records[line - 1])
    if 1 < line < 7:  # a second, later problem must not be the one reported
        records[-1]["visits"] = "later problem"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(TreeFormatError) as err:
        read_tree(path)
    assert (err.value.line, err.value.field) == (line, field)
    assert str(path) in str(err.value) and f"line {line}" in str(err.value)
    assert not is_complete_tree(path)


def test_truncated_and_garbled_files(tmp_path):
    header, nodes = _hand_tree()
    path = tmp_path / "t.jsonl"
    write_tree(path, header, nodes)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # a crash mid-write without atomic rename
    with pytest.raises(TreeFormatError, match="line 7.*not JSON"):
        read_tree(path)
    path.write_text(text.replace('"type": "node"', "{", 1))
    with pytest.raises(TreeFormatError) as err:
        read_tree(path)
    assert err.value.line == 2 and err.value.field is None
    path.write_text("")
    with pytest.raises(TreeFormatError, match="empty file"):
        read_tree(path)
    path.write_text(text.splitlines()[0] + "\n")
    with pytest.raises(TreeFormatError, match="at least its root"):
        read_tree(path)
    path.write_text(text + "\n")
    with pytest.raises(TreeFormatError, match="line 8.*empty line"):
        read_tree(path)


def test_write_refuses_bad_records_and_keeps_the_old_file(tmp_path):
    header, nodes = _hand_tree()
    path = tmp_path / "t.jsonl"
    write_tree(path, header, nodes)
    before = path.read_bytes()
    bad = list(nodes)
    bad[3] = dataclasses.replace(bad[3], q=float("nan"))
    with pytest.raises(TreeFormatError, match="line 5, field 'q'.*finite"):
        write_tree(path, header, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    header, nodes = _hand_tree()
    write_tree(tmp_path / "t.jsonl", header, nodes)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "t.jsonl").stat().st_mode) == 0o666 & ~umask


def test_binary_and_deeply_nested_files_name_the_path(tmp_path):
    header, nodes = _hand_tree()
    path = tmp_path / "t.jsonl"
    write_tree(path, header, nodes)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"\x89PNG\r\n\x1a\n\xff\xfe" + b"".join(lines[1:]))
    with pytest.raises(TreeFormatError, match=rf"{path}, line 2: not UTF-8") as err:
        read_tree(path)
    assert err.value.line == 2 and not is_complete_tree(path)
    path.write_bytes(lines[0] + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(TreeFormatError, match=rf"{path}, line 2: JSON nested too deeply"):
        read_tree(path)
    assert not is_complete_tree(path)


@pytest.mark.parametrize("action,prompt", [
    ("click[a]", "Goal: g\nAction:"),
    ('type [e3] [say "hi"\\ now]', "naïve café — 价格 ≤ 40 \u2028 \x00\x1f\x7f \ud800 tab\tend"),
    ("", ""),
])
def test_tree_text_writes_what_json_writes(action, prompt):
    """Plain nodes take a hand-written line (one encoding per distinct prompt); it must be
    byte for byte what json.dumps writes, for any string and float."""
    from webgrove.search.tree import _plain_lines, tree_text

    header, nodes = _hand_tree()
    floats = [-0.0, 1e-300, 123456789.125, -1e-7, 0.1 + 0.2, 5e-324]
    nodes = [nodes[0]] + [dataclasses.replace(n, action=action, prompt=prompt if i % 2 else prompt + "x",
                                              q_mcts=floats[i], q=-floats[i], logprob=-abs(floats[i - 1]),
                                              q_critic=floats[-i], reward=float(i))
                          for i, n in enumerate(nodes[1:], start=1)]
    assert _plain_lines(nodes) and tree_text(header, nodes) == _json_text(header, nodes)
    # not plain (an int where a float goes): the general path writes the same way
    odd = [nodes[0], dataclasses.replace(nodes[1], reward=1), *nodes[2:]]
    assert _plain_lines(odd) is None and tree_text(header, odd) == _json_text(header, odd)
    lines = tree_text(header, nodes).split("\n")[:-1]  # (not splitlines: a prompt may hold U+2028)
    assert tree_from_dicts([json.loads(x) for x in lines]) == (header, nodes)


def test_tree_text_writes_repeated_and_signed_zero_floats_as_json_does():
    """Each distinct float is written once and reused: 0.0 and -0.0 are equal keys with
    different reprs, so a tree holding both (the root too) must still write each as json does."""
    from webgrove.search.tree import _plain_lines, tree_text

    header, nodes = _hand_tree()
    values = [0.0, -0.0, 0.1 + 0.2, -0.0, 0.0, 0.30000000000000004, 1e-300, -1e-300]
    nodes = [dataclasses.replace(nodes[0], q_mcts=-0.0, q=0.0, reward=-0.0)] + [
        dataclasses.replace(n, q_mcts=values[i], q=values[-i], q_critic=values[i - 1], reward=values[i + 1],
                            logprob=-abs(values[i + 2]) if i % 2 else -0.0, action="click[a]" if i % 2 else "click[b]")
        for i, n in enumerate(nodes[1:], start=1)]
    expected = _json_text(header, nodes)
    assert _plain_lines(nodes) and tree_text(header, nodes) == expected
    assert '"q_mcts": -0.0' in expected and '"q": 0.0' in expected  # both signs are in the file


def test_tree_text_of_the_search_nodes_is_that_of_their_records():
    """Collection writes MCTS's own nodes without building a record per node: the same text."""
    from webgrove.search.tree import tree_text

    env = gym.make("toy_env:ToyTree-v0")
    env.reset(seed=0, options={"goal_id": 1})
    tree = search_episode(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), SearchConfig(simulations=8, k=3))
    header = make_header("toy_env:ToyTree-v0", 1, "g", 0, "toy", {"k": 3}, best_path=tree.best_path)
    assert tree_text(header, tree.nodes) == tree_text(header, tree.records())
    assert TreeIndex.build(header, tree.records()).stats() == tree_stats(tree.nodes, [tree.nodes[i] for i in tree.best_path])


@pytest.mark.parametrize("field,value,match", [("q_critic", float("inf"), "line 4, field 'q_critic'.*finite"),
                                               ("logprob", 0.5, "line 4, field 'logprob'"),
                                               ("visits", -1, "line 4, field 'visits'"),
                                               ("depth", 7, "line 4, field 'depth'"),
                                               ("action", 3, "line 4, field 'action'")])
def test_tree_text_refuses_what_a_reader_refuses(field, value, match):
    from webgrove.search.tree import tree_text

    header, nodes = _hand_tree()
    nodes[2] = dataclasses.replace(nodes[2], **{field: value})
    with pytest.raises(TreeFormatError, match=match):
        tree_text(header, nodes)
    with pytest.raises(TreeFormatError, match=match):
        tree_from_dicts([header.to_dict(), *(n.to_dict() for n in nodes)])


# A tree file as webgrove wrote it before format 2 (no "format" in the header, every prompt in
# full), by the code of commit 87a8adc: it must read as the records it was written from.
FORMAT_1_TREE = r"""{"type": "tree", "env_id": "webgrove/WebShop-v0", "goal_id": 7, "goal": "buy a red mug", "seed": 11, "policy": "rule", "config": {"k": 2}, "created": "2026-11-30T12:00:00+00:00", "best_path": [0, 1, 3]}
{"type": "node", "id": 0, "parent": null, "depth": 0, "action": null, "prompt": null, "logprob": null, "visits": 3, "q_mcts": 0.5, "q_critic": null, "q": 0.5, "reward": 0.0, "terminal": false}
{"type": "node", "id": 1, "parent": 0, "depth": 1, "action": "click[a]", "prompt": "Goal: buy a \"red\" mug\nPage: [x] café\nAction:", "logprob": -0.5, "visits": 2, "q_mcts": 0.75, "q_critic": 0.25, "q": 0.5, "reward": 0.0, "terminal": false}
{"type": "node", "id": 2, "parent": 0, "depth": 1, "action": "click[b]", "prompt": "Goal: buy a \"red\" mug\nPage: [x] café\nAction:", "logprob": -1.5, "visits": 1, "q_mcts": 0.0, "q_critic": 0.5, "q": 0.25, "reward": 0.0, "terminal": true}
{"type": "node", "id": 3, "parent": 1, "depth": 2, "action": "click[buy]", "prompt": "Goal: buy a \"red\" mug\nPage: item a\nAction:", "logprob": -0.1, "visits": 2, "q_mcts": 1.0, "q_critic": 0.5, "q": 0.75, "reward": 1.0, "terminal": true}
"""
FORMAT_1_PROMPTS = ['Goal: buy a "red" mug\nPage: [x] café\nAction:'] * 2 + ['Goal: buy a "red" mug\nPage: item a\nAction:']


def test_a_format_1_file_reads_as_the_same_records_as_its_format_2_rewrite(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(FORMAT_1_TREE, encoding="utf-8")
    header, nodes = read_tree(old)
    assert [n.prompt for n in nodes] == [None, *FORMAT_1_PROMPTS]
    assert [(n.action, n.logprob, n.visits, n.q) for n in nodes[1:]] == [
        ("click[a]", -0.5, 2, 0.5), ("click[b]", -1.5, 1, 0.25), ("click[buy]", -0.1, 2, 0.75)]
    assert header.best_path == [0, 1, 3] and header.created == "2026-11-30T12:00:00+00:00"
    records = [json.loads(x) for x in FORMAT_1_TREE.splitlines()]
    assert tree_from_dicts(records) == (header, nodes)
    new = tmp_path / "new.jsonl"
    write_tree(new, header, nodes)
    text = new.read_text(encoding="utf-8")
    assert text.count("café") == 1 and '"prompt_from": 1' in text and len(text) < len(FORMAT_1_TREE)
    assert read_tree(new) == (header, nodes)
    # prompt_from means nothing in a format 1 file: that node has no prompt
    records[3] = {("prompt_from" if k == "prompt" else k): (1 if k == "prompt" else v) for k, v in records[3].items()}
    old.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(TreeFormatError, match="line 4, field 'prompt'"):
        read_tree(old)
