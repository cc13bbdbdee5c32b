"""Does a policy make the oracle's decisions? Greedy choice accuracy by decision kind.

For each model, on the oracle's demonstrations of a goal range (validation goals by
default: the demo's last 200 train goals, never trained on), every click state is scored
the way `HFPolicy` acts (choice log-probs over the state's available actions) and the
argmax is compared with the oracle's action. Decision kinds: `product` (which result to
open: the oracle knows the hidden target, so this is partly luck), `option` (an option or
navigation button on an item page or elsewhere) and `buy` ("buy now"). Search steps are
left out (free text). The confusion counts say what the policy does instead.

This is how the behaviour-cloning recipe of the demo was chosen: with whole demonstrations
on 300 goals and search steps only on the rest, the base chose the goal's option in 2% of
item-page states (it bought at once); see the README's "Self-improvement" section.

    python benchmarks/bc_choices.py --model runs/demo/base --goals 1645:1745 --out benchmarks/results/bc_choices.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path


def kind(action: str) -> str:
    if action == "click[buy now]":
        return "buy"
    if action.startswith("click[b0"):
        return "product"
    return "option"


def state_actions(prompt: str) -> list[str]:
    """The available actions as the policy prompt lists them (`agents/prompts.py`)."""
    return prompt.split("\nActions: ", 1)[1].split("\nHistory:", 1)[0].split(" | ")


def choice_accuracy(model: str, rows: list[dict]) -> dict:
    import numpy as np

    from webgrove.agents.hf import HFPolicy
    from webgrove.agents.prompts import action_completion

    policy = HFPolicy(model, device="cpu", temperature=0.0)
    right, total, confusion = collections.Counter(), collections.Counter(), collections.Counter()
    for row in rows:
        gold = row["completion"].strip()
        if gold.startswith("search["):
            continue
        actions = state_actions(row["prompt"])
        _, choice = policy.score_choices(row["prompt"], [action_completion(a) for a in actions])
        picked = actions[int(np.argmax(choice))]
        total[kind(gold)] += 1
        if picked == gold:
            right[kind(gold)] += 1
        else:
            confusion[f"{kind(gold)}->{kind(picked)}"] += 1
    return {"accuracy": {k: right[k] / n for k, n in sorted(total.items())}, "states": dict(sorted(total.items())),
            "confusion": dict(confusion.most_common())}


def main() -> None:
    from webgrove.provenance import provenance
    from webgrove.training.sft import demonstration_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model directory (repeat to compare)")
    parser.add_argument("--goals", default="1645:1745", help="train goals A:B whose oracle demonstrations are scored")
    parser.add_argument("--num-products", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/bc_choices.json")
    args = parser.parse_args()
    a, b = (int(x) for x in args.goals.split(":"))
    rows = demonstration_rows(split="train", goals=range(a, b), seed=args.seed, num_products=args.num_products,
                              paginated=False)
    results = []
    print(f"{'model':40s} {'product':>8s} {'option':>8s} {'buy':>8s}  confusion")
    for model in args.model:
        t0 = time.perf_counter()
        r = {"model": model, **choice_accuracy(model, rows), "seconds": time.perf_counter() - t0}
        results.append(r)
        acc = r["accuracy"]
        print(f"{model:40s} {acc.get('product', 0):8.2f} {acc.get('option', 0):8.2f} {acc.get('buy', 0):8.2f}  "
              f"{r['confusion']}", flush=True)
    out = {"command": "python " + " ".join(sys.argv), "goals": [a, b], "load_average": os.getloadavg(),
           "results": results, "provenance": provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
