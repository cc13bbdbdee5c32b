"""The tree viewer: a self-contained page that draws every node, collapses, and highlights the best path."""
from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import toy_env
from webgrove.search.mcts import SearchConfig, search_episode
from webgrove.search.tree import make_header, read_tree, write_tree
from webgrove.search.viewer import ViewConfig, render_html, run_view

@pytest.fixture
def tree_file(tmp_path):
    env = gym.make("toy_env:ToyTree-v0")
    env.reset(seed=0, options={"goal_id": 0})
    tree = search_episode(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(),
                          SearchConfig(simulations=12, k=4, seed=0))
    records = tree.records()
    records[1] = dataclasses.replace(records[1], prompt=records[1].prompt + "\n</script><b>not markup</b> & more")
    header = make_header("toy_env:ToyTree-v0", 0, env.unwrapped.observe()[1]["goal"], 0, "toy-random",
                         {"critic": "constant", "simulations": 12, "k": 4, "c": 1.0, "alpha": 0.5},
                         best_path=tree.best_path)
    path = tmp_path / "goal_00000.jsonl"
    write_tree(path, header, records)
    return path


def test_render_is_self_contained(tree_file):
    header, nodes = read_tree(tree_file)
    page = render_html(header, nodes)
    assert page.startswith("<!doctype html>") and "__TREE_DATA__" not in page
    assert "</script><b>" not in page  # the prompt cannot close the data element
    for marker in ("http://", "https://", "<link", "src="):
        assert marker not in page


def test_view_command_writes_next_to_the_tree(tree_file, capsys):
    from webgrove.cli import main

    assert main(["view", str(tree_file)]) == 0
    assert tree_file.with_suffix(".html").exists()
    with pytest.raises(ValueError, match="jsonl"):
        ViewConfig(tree="tree.json")


def test_view_of_a_binary_file_names_it(tmp_path):
    from webgrove.search.tree import TreeFormatError

    path = tmp_path / "goal_00000.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(TreeFormatError, match=rf"{path}, line 1: not UTF-8"):
        run_view(ViewConfig(tree=str(path)))
    assert not path.with_suffix(".html").exists()


@pytest.mark.browser
def test_page_draws_every_node_and_collapses(tree_file, tmp_path):
    from playwright import sync_api

    from webgrove.envs.browser.chromium import LAUNCH_ARGS, chromium_executable

    executable = chromium_executable()  # `make test` installs one; none is a failure with the install hint
    header, nodes = read_tree(tree_file)
    out = run_view(ViewConfig(tree=str(tree_file), out=str(tmp_path / "tree.html")))
    root_children = [n.id for n in nodes if n.parent == 0]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=list(LAUNCH_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors, requests = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"file://{out}")
            assert page.locator("li.node").count() == len(nodes)
            assert page.locator("li.best").count() == len(header.best_path)
            assert page.locator("#goal").inner_text() == header.goal
            best_leaf = page.locator(f'li.node[data-id="{header.best_path[-1]}"] > .row')
            assert best_leaf.is_visible()  # the best path starts expanded
            leaf = nodes[header.best_path[-1]]
            shown = best_leaf.inner_text().split()
            assert [leaf.action, str(leaf.visits), f"{leaf.q:.2f}", f"{leaf.q_mcts:.2f}",
                    f"{leaf.q_critic:.2f}", f"{leaf.reward:.2f}"] == shown[:6]
            page.screenshot(path=str(tmp_path / "tree.png"), full_page=True)

            child = page.locator(f'li.node[data-id="{root_children[0]}"] > .row')
            assert child.is_visible()
            page.locator('li.node[data-id="0"] > .row .toggle').click()  # collapse the root
            assert not child.is_visible()
            assert page.locator('li.node[data-id="0"] > .row').is_visible()
            page.locator('li.node[data-id="0"] > .row .toggle').click()
            assert child.is_visible()

            page.click("#collapse-all")
            assert page.locator("li.node > .row:visible").count() == 1
            page.click("#expand-all")
            assert page.locator("li.node > .row:visible").count() == len(nodes)

            page.locator('li.node[data-id="1"] > .row').click()  # details show the prompt as text
            details = page.locator("#details").inner_text()
            assert "</script><b>not markup</b> & more" in details and nodes[1].action in details
            assert errors == []
            assert all(url.startswith("file://") for url in requests)
        finally:
            browser.close()
    assert (tmp_path / "tree.png").stat().st_size > 10_000
