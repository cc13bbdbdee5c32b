"""Sequence vs choice-level DPO on the same Agent Q pairs, and how much critics follow list position.

1. Objectives: Agent Q pairs from a folder of trees; for each objective (sequence DPO,
   choice-level DPO, listwise choice cross-entropy, each optionally with an NLL term) one
   DPO run from the same model, then the acting policy's own view of every pair
   (`webgrove.training.choice.choice_report`): mean sequence margin, mean choice margin
   over the pair's candidates, and the share of pairs whose chosen action is the greedy
   pick among them.
2. Critics on states the model meets acting greedily (click states with >= 3 proposals,
   the top-5 proposals as candidates): the raw prompted self-critique listed forwards and
   reversed (its top pick at the same list position both times = position; the same
   action = content; how often the last-listed wins), the order-averaged critique, and a
   learned critic trained on the trees; Spearman correlation of each with the lexical
   baseline.

    python benchmarks/choice_objectives.py --model runs/m/base --trees runs/m/trees --out runs/m/choice
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho with average ranks for ties; None when either side is constant."""
    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def load_pairs(trees: str, theta: float) -> list[dict]:
    from webgrove.training.pairs import agentq_pairs, read_index, tree_files

    return [r for p in tree_files(trees) for r in agentq_pairs(read_index(p), theta=theta)]


def objectives(model: str, rows: list[dict], out: Path, lr: float, epochs: float, beta: float) -> list[dict]:
    from webgrove.agents.hf import HFPolicy
    from webgrove.training.choice import choice_report
    from webgrove.training.dpo import DPORunConfig, train_dpo

    results = [{"objective": "base", **choice_report(HFPolicy(model, device="cpu"), rows)}]
    print(results[-1], flush=True)
    variants = [("sigmoid", 0.0, "sequence"), ("sigmoid", 0.5, "sequence"), ("choice_sigmoid", 0.0, "choice"),
                ("choice_sigmoid", 0.5, "choice"), ("choice_ce", 0.0, "choice")]
    for loss, nll, target in variants:
        name = loss + (f"+nll({target}) {nll}" if nll else "")
        cfg = DPORunConfig(model=model, out=str(out / name.replace(" ", "_")), pairs="-", loss_type=loss,
                           sft_weight=nll, nll_target=target, learning_rate=lr, epochs=epochs, beta=beta,
                           progress=False, logging_steps=50)
        t = time.perf_counter()
        summary = train_dpo(cfg, rows)
        report = choice_report(HFPolicy(cfg.out, device="cpu"), rows)
        results.append({"objective": name, "train_s": time.perf_counter() - t, "steps": summary["steps"], **report})
        print(results[-1], flush=True)
    return results


def click_states(model: str, n_states: int, num_products: int, seed: int) -> list:
    """(ctx, top-5 proposals) at click states with >= 3 proposals, acting greedily on train goals."""
    import gymnasium as gym

    import webgrove.envs  # noqa: F401
    from webgrove.agents.base import context_from
    from webgrove.agents.hf import HFPolicy

    policy = HFPolicy(model, device="cpu", temperature=0.0)
    env = gym.make("webgrove/WebShop-v0", num_products=num_products)
    rng = np.random.default_rng(seed)
    states, goal = [], 0
    while len(states) < n_states and goal < 10 * n_states:
        obs, info = env.reset(seed=seed + goal, options={"goal_id": goal})
        history: list[str] = []
        for _ in range(8):
            ctx = context_from(obs, info, history)
            proposals = policy.propose(ctx, 5, rng)
            if len(proposals) >= 3 and all(p.action.startswith("click[") for p in proposals):
                states.append((ctx, [p.action for p in proposals]))
            obs, _, term, trunc, info = env.step(proposals[0].action)
            history.append(proposals[0].action)
            if term or trunc:
                break
        goal += 1
    env.close()
    return states[:n_states]


def critic_bias(model: str, trees: str, out: Path, n_states: int, num_products: int, seed: int) -> dict:
    from webgrove.agents.critics import LearnedCritic, LexicalCritic, LLMCritic
    from webgrove.agents.hf import HFPolicy
    from webgrove.training.critic_train import CriticRunConfig, train_critic

    states = click_states(model, n_states, num_products, seed)
    policy = HFPolicy(model, device="cpu", temperature=0.0)
    raw, debiased, lexical = LLMCritic(policy, orders=1), LLMCritic(policy, orders=2), LexicalCritic()
    t = time.perf_counter()
    critic_summary = train_critic(CriticRunConfig(trees=trees, model=model, out=str(out / "critic")))
    learned = LearnedCritic(out / "critic")
    counts = {"position": 0, "content": 0, "last_listed_wins": 0}
    rho = {"raw": [], "debiased": [], "learned": []}
    for ctx, cands in states:
        forward = LLMCritic(policy, orders=1).rank(ctx, cands)
        backward = LLMCritic(policy, orders=1).rank(ctx, cands[::-1])
        top_f, top_b = int(np.argmax(forward)), int(np.argmax(backward))
        counts["position"] += top_f == top_b  # same slot in both listings
        counts["content"] += cands[top_f] == cands[::-1][top_b]
        counts["last_listed_wins"] += top_f == len(cands) - 1
        lex = lexical.rank(ctx, cands)
        for name, critic in (("raw", raw), ("debiased", debiased), ("learned", learned)):
            rho[name].append(spearman(critic.rank(ctx, cands), lex))
    mean = {k: (float(np.mean([x for x in v if x is not None])) if any(x is not None for x in v) else None)
            for k, v in rho.items()}
    return {"states": len(states), **counts, "spearman_with_lexical": mean,
            "learned_critic": {k: critic_summary[k] for k in ("train_rows", "steps", "val_before", "val_after")},
            "seconds": time.perf_counter() - t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the starting (behaviour-cloned) model directory")
    parser.add_argument("--trees", required=True, help="folder of trees collected with that model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--theta", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--states", type=int, default=60)
    parser.add_argument("--num-products", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-objectives", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = load_pairs(args.trees, args.theta)
    print(f"{len(rows)} pairs from {args.trees}", flush=True)
    result = {"command": " ".join(["python"] + sys.argv), "pairs": len(rows), "load_average": os.getloadavg()}
    if not args.skip_objectives:
        result["objectives"] = objectives(args.model, rows, out, args.lr, args.epochs, args.beta)
    result["critics"] = critic_bias(args.model, args.trees, out, args.states, args.num_products, args.seed)
    print(json.dumps(result["critics"], indent=1))
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
