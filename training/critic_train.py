"""The learned self-critic: the policy's own model family trained on earlier trees' Q-values.

Agent Q values each proposal with AI feedback from the acting model. Prompted cold, a
small model answers by list position (issue 10), so here the feedback is learned: every
visited (state, action) node of earlier trees becomes a row whose input is
`webgrove.agents.critics.value_prompt` (the policy prompt, the action, "Verdict:") and
whose target is the node's search value (Q_mcts by default: the mean return of the
simulations through it, in [0, 1]). The model starts from the policy's weights and learns
the soft binary cross-entropy of σ(logit(" good") − logit(" bad")) against the target;
`LearnedCritic` reads the same number at search time.

The pointwise loss is dominated by how good a *state* is (siblings share it), while MCTS
only uses how the critic orders the candidates of one state. `rank_weight` adds a pairwise
logistic loss on sibling pairs whose targets are apart by more than SIBLING_GAP:
−log σ(ℓ_better − ℓ_worse), averaged over a batch of such pairs (Bradley–Terry, as reward
models are trained); the pointwise term keeps the values on the scale of Q_mcts, which
the search mixes them with.

Validation holds out whole goals and reports the loss and the sibling accuracy: the share
of sibling pairs (same state, values apart by more than 0.1) the critic orders as the
search did -- the part of a critic's value that MCTS uses.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from webgrove.agents.critics import LEARNED_CRITIC_FILE, value_prompt, verdict_logits
from webgrove.search.tree import TreeIndex

log = logging.getLogger(__name__)

VALUE_KEYS = ("q_mcts", "q")
SIBLING_GAP = 0.1


@dataclass(kw_only=True)
class CriticRunConfig:
    """Train a learned critic on the values of earlier search trees."""

    trees: str = field(metadata={"help": "folder(s) of tree JSONL files, comma-separated"})
    model: str = field(metadata={"help": "model directory to start from (the policy's: the same model family)"})
    out: str = field(metadata={"help": "output directory: the critic model, its tokenizer and critic.json"})
    value_key: str = field(default="q_mcts", metadata={
        "help": "target: q_mcts (the search's mean return) or q (mixed with the critic that collected)",
        "choices": list(VALUE_KEYS)})
    min_visits: int = field(default=1, metadata={"help": "nodes with fewer visits carry no value and are skipped"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the rows"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (constant)"})
    batch_size: int = field(default=16, metadata={"help": "rows per step (and sibling pairs per step)"})
    rank_weight: float = field(default=1.0, metadata={
        "help": "weight of the pairwise loss on sibling pairs (0: the pointwise loss alone)"})
    val_share: float = field(default=0.1, metadata={"help": "share of goals held out for validation"})
    seed: int = field(default=0, metadata={"help": "seed for the split, the row order and torch"})

    def __post_init__(self) -> None:
        if self.value_key not in VALUE_KEYS:
            raise ValueError(f"value_key must be one of {VALUE_KEYS}, got {self.value_key!r}")
        bad = [k for k, ok in {"epochs": self.epochs > 0, "learning_rate": self.learning_rate > 0,
                               "batch_size": self.batch_size >= 1, "rank_weight": self.rank_weight >= 0,
                               "min_visits": self.min_visits >= 1,
                               "val_share": 0.0 <= self.val_share < 1.0}.items() if not ok]
        if bad:
            raise ValueError(f"invalid value for {', '.join(bad)}")


def critic_rows(tree: TreeIndex, value_key: str = "q_mcts", min_visits: int = 1) -> list[dict]:
    """One row per visited (state, action) node: `prompt`, `target` in [0, 1], `goal_id`, `parent`."""
    rows = []
    for n in tree.nodes:
        if n.parent is None or n.prompt is None or n.action is None or n.visits < min_visits:
            continue
        target = min(1.0, max(0.0, float(getattr(n, value_key))))
        rows.append({"prompt": value_prompt(n.prompt, n.action), "target": target,
                     "goal_id": tree.goal_id, "parent": n.parent})
    return rows


def split_by_goal(rows: list[dict], val_share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation) rows; validation holds whole goals, about `val_share` of them."""
    goals = sorted({r["goal_id"] for r in rows})
    random.Random(seed).shuffle(goals)
    held = set(goals[:round(len(goals) * val_share)])
    return [r for r in rows if r["goal_id"] not in held], [r for r in rows if r["goal_id"] in held]


def sibling_accuracy(predicted: list[float], rows: list[dict], gap: float = SIBLING_GAP) -> float | None:
    """Share of sibling pairs (same goal and parent, targets apart by more than `gap`) that
    `predicted` orders as the targets do; None when there is no such pair."""
    pairs = sibling_pairs(rows, gap)
    return sum(predicted[a] > predicted[b] for a, b in pairs) / len(pairs) if pairs else None


def sibling_pairs(rows: list[dict], gap: float = SIBLING_GAP) -> list[tuple[int, int]]:
    """(better, worse) row indices of sibling pairs whose targets are apart by more than `gap`."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["goal_id"], r["parent"]), []).append(i)
    return [(a, b) for idx in groups.values() for a in idx for b in idx
            if rows[a]["target"] > rows[b]["target"] + gap]


def evaluate(model, tokenizer, rows: list[dict], batch_size: int) -> dict:
    """Mean soft binary cross-entropy and sibling accuracy of the critic on `rows`."""
    import torch
    import torch.nn.functional as F

    if not rows:
        return {"rows": 0, "loss": None, "sibling_accuracy": None}
    logits: list[float] = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            logits += verdict_logits(model, tokenizer, [r["prompt"] for r in rows[i:i + batch_size]]).float().tolist()
    loss = F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor([r["target"] for r in rows]))
    return {"rows": len(rows), "loss": float(loss), "sibling_accuracy": sibling_accuracy(logits, rows)}


def fit(model, tokenizer, rows: list[dict], cfg: CriticRunConfig) -> list[float]:
    """Train in place on `rows` (pointwise, plus the pairwise term on sibling pairs when
    `cfg.rank_weight` > 0); returns the loss of every step."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(cfg.seed)  # dropout draws: the same run whatever ran before
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    rng = random.Random(cfg.seed)
    pairs = sibling_pairs(rows) if cfg.rank_weight > 0 else []
    steps = max(1, math.ceil(len(rows) * cfg.epochs / cfg.batch_size))
    row_stream, pair_stream = _Stream(rows, rng), _Stream(pairs, rng)
    losses = []
    model.train()
    for _ in range(steps):
        batch = row_stream.take(cfg.batch_size)
        ranked = pair_stream.take(cfg.batch_size) if pairs else []
        prompts = [r["prompt"] for r in batch] + [rows[i]["prompt"] for pair in ranked for i in pair]
        logit = verdict_logits(model, tokenizer, prompts).float()
        target = torch.tensor([r["target"] for r in batch], device=logit.device)
        loss = F.binary_cross_entropy_with_logits(logit[:len(batch)], target)
        if ranked:
            better, worse = logit[len(batch)::2], logit[len(batch) + 1::2]
            loss = loss + cfg.rank_weight * -F.logsigmoid(better - worse).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


class _Stream:
    """Items in shuffled passes, taken a batch at a time."""

    def __init__(self, items: list, rng: random.Random):
        self.items, self.rng, self.queue = items, rng, []

    def take(self, n: int) -> list:
        while len(self.queue) < n:
            self.queue += self.rng.sample(self.items, len(self.items))
        batch, self.queue = self.queue[:n], self.queue[n:]
        return batch


def train_critic(cfg: CriticRunConfig) -> dict:
    """Build rows from the trees, train, validate, save to `cfg.out` (with critic.json); the summary."""
    from webgrove.training.pairs import read_index, tree_files
    from webgrove.training.sft import load_model, save_trained

    paths = [p for folder in cfg.trees.split(",") if folder.strip() for p in tree_files(folder.strip())]
    rows = [r for p in paths for r in critic_rows(read_index(p), cfg.value_key, cfg.min_visits)]
    if not rows:
        raise ValueError(f"no visited (state, action) nodes in {cfg.trees}")
    train, val = split_by_goal(rows, cfg.val_share, cfg.seed)
    model, tokenizer = load_model(cfg.model)
    before = evaluate(model, tokenizer, val, cfg.batch_size)
    start = time.perf_counter()
    losses = fit(model, tokenizer, train, cfg)
    seconds = time.perf_counter() - start
    summary = {"trees": len(paths), "train_rows": len(train), "train_pairs": len(sibling_pairs(train)),
               "steps": len(losses), "seconds": seconds,
               "first_loss": losses[0], "last_loss": losses[-1], "val_before": before,
               "val_after": evaluate(model, tokenizer, val, cfg.batch_size), "config": asdict(cfg)}
    save_trained(model, tokenizer, cfg.out)
    (Path(cfg.out) / LEARNED_CRITIC_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def run_critic(cfg: CriticRunConfig) -> int:
    s = train_critic(cfg)
    v0, v1 = s["val_before"], s["val_after"]
    log.info(f"critic: {s['train_rows']} rows ({s['train_pairs']} sibling pairs) from {s['trees']} trees, {s['steps']} steps in {s['seconds']:.1f}s, "
             f"loss {s['first_loss']:.3f} -> {s['last_loss']:.3f}; validation ({v1['rows']} rows): "
             f"loss {v0['loss']} -> {v1['loss']}, sibling accuracy {v0['sibling_accuracy']} -> "
             f"{v1['sibling_accuracy']} -> {cfg.out}")
    return 0
