"""The tree viewer: `webgrove view TREE.jsonl -o tree.html`.

Writes one self-contained HTML page (inline CSS and JS from `viewer.html`, no
network) that draws the tree as a collapsible outline: each node with its action,
visits, Q, Q_mcts, Q_critic and reward, the best path highlighted, and the record
and prompt of a clicked node in a side panel.
"""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from webgrove.io import write_text_atomic
from webgrove.search.tree import NodeRecord, TreeHeader, TreeIndex, read_tree

log = logging.getLogger(__name__)


def _script_json(data: dict) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' that could end it."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_html(header: TreeHeader, nodes: list[NodeRecord]) -> str:
    """The viewer page for a tree (records as `read_tree` returns them)."""
    template = resources.files("webgrove.search").joinpath("viewer.html").read_text(encoding="utf-8")
    best = TreeIndex.build(header, nodes).best_path()
    data = {"header": header.to_dict(), "nodes": [n.to_dict() for n in nodes], "best_path": [n.id for n in best]}
    title = html.escape(f"webgrove tree · goal {header.goal_id}")
    return template.replace("__TITLE__", title).replace("__TREE_DATA__", _script_json(data))


@dataclass
class ViewConfig:
    """Draws a tree file as an HTML page that works offline."""

    tree: str = field(metadata={"help": "tree file (JSONL) written by `webgrove collect`", "positional": True})
    out: str | None = field(default=None, metadata={
        "help": "HTML file to write (default: the tree file with .html)", "aliases": ["-o"]})

    def __post_init__(self) -> None:
        if not self.tree.endswith(".jsonl"):
            raise ValueError(f"expected a .jsonl tree file, got {self.tree!r}")


def run_view(cfg: ViewConfig) -> str:
    """Write the page; returns its path."""
    header, nodes = read_tree(cfg.tree)
    out = Path(cfg.out) if cfg.out else Path(cfg.tree).with_suffix(".html")
    write_text_atomic(out, render_html(header, nodes))
    log.info(f"view: {len(nodes)} nodes -> {out}")
    return str(out)
