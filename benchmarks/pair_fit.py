"""Does preference training fit its pairs, and does the fit carry to other goals' pairs?

For each model and each pairs file (the pairs it was trained on, and pairs of other goals that
it never saw), by pair kind (`webgrove.training.pairs.pair_kind`):

- `top1`: the share of the file's distinct states (prompts) where the model's choice among the
  state's search candidates -- scored as `HFPolicy` acts, by choice log-probs -- is one of the
  candidates with the highest Q (the search's best);
- `pair acc`: the share of pairs with log p(chosen) > log p(rejected) (sequence log-probs, what
  sequence DPO moves), and the mean margin between them.

With `--rename-ids`, each file is also scored with every product id in its prompts and actions
replaced by a fresh one (the same fresh id for the same id within a state; page text, titles and
prices untouched): a policy that chose by what the page says about a product keeps its choices, one
that learnt which ids to click loses them (file names get a `_renamed` suffix).

Search steps count like the others (their candidates are the sampled queries). The demo's
Agent Q trains on one iteration's pairs (50 goals); this measures the gap between the fit on
those and on the next iteration's (other goals), which bounds what held-out success can gain.

    python benchmarks/pair_fit.py --pairs runs/demo/agent_q/iter_1/pairs.jsonl \\
        --heldout runs/demo/agent_q/iter_2/pairs.jsonl --model runs/demo/base \\
        --model runs/demo/agent_q/iter_1/model --out benchmarks/results/pair_fit.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import time
from pathlib import Path


def read_pairs(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


_ID = re.compile(r"\bb0[0-9a-z]{8}\b", re.IGNORECASE)  # a product id, as the page (upper) or an action (lower) has it


def renamed(pairs: list[dict], seed: int = 0) -> list[dict]:
    """The pairs with every product id replaced by a fresh random one, consistently within a state
    (its prompt, candidates, chosen and rejected); the case of each occurrence is kept."""
    rng = random.Random(seed)
    fresh: dict[tuple[str, str], str] = {}

    def swap(prompt: str, text: str) -> str:
        def one(m: re.Match) -> str:
            key = (prompt, m.group(0).lower())
            if key not in fresh:
                fresh[key] = "b0" + "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(8))
            new = fresh[key]
            return new.upper() if m.group(0).isupper() else new
        return _ID.sub(one, text)

    out = []
    for p in pairs:
        q = dict(p, prompt=swap(p["prompt"], p["prompt"]), chosen=swap(p["prompt"], p["chosen"]),
                 rejected=swap(p["prompt"], p["rejected"]))
        if p.get("candidates"):
            q["candidates"] = [swap(p["prompt"], c) for c in p["candidates"]]
        out.append(q)
    return out


def fit(policy, pairs: list[dict]) -> dict:
    """top1 per distinct state, pair accuracy and mean margin per pair; by kind and "all"."""
    import numpy as np

    top1, acc, margin = (collections.defaultdict(list) for _ in range(3))
    seen: set[str] = set()
    for p in pairs:
        kinds = ("all", p.get("pair_kind") or "unknown")
        if p["prompt"] not in seen and p.get("candidates"):
            seen.add(p["prompt"])
            q = [-np.inf if v is None else v for v in p["candidate_q"]]
            _, choice = policy.score_choices(p["prompt"], p["candidates"])
            for k in kinds:
                top1[k].append(q[int(np.argmax(choice))] == max(q))
        chosen, rejected = policy.score_completions(p["prompt"], [p["chosen"], p["rejected"]])
        for k in kinds:
            acc[k].append(chosen > rejected)
            margin[k].append(chosen - rejected)
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    return {k: {"states": len(top1[k]), "top1": mean(top1[k]), "pairs": len(acc[k]), "pair_acc": mean(acc[k]),
                "margin": mean(margin[k])} for k in sorted(acc, key=lambda k: (k != "all", k))}


def _fmt(x: float | None) -> str:
    return "    -" if x is None else f"{100 * x:5.1f}"


def main() -> None:
    from webgrove.agents.hf import HFPolicy
    from webgrove.provenance import provenance
    from webgrove.training.loop import fingerprint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="the pairs the models were trained on (JSONL)")
    parser.add_argument("--heldout", action="append", default=[], help="pairs of goals never trained on (repeat)")
    parser.add_argument("--model", action="append", required=True, help="model directory (repeat to compare)")
    parser.add_argument("--rename-ids", action="store_true", help="also score each file with fresh product ids")
    parser.add_argument("--out", default="benchmarks/results/pair_fit.json")
    args = parser.parse_args()
    files = {"trained": args.pairs, **{f"heldout_{i + 1}" if len(args.heldout) > 1 else "heldout": h
                                       for i, h in enumerate(args.heldout)}}
    pairs = {name: read_pairs(path) for name, path in files.items()}
    if args.rename_ids:
        pairs.update({f"{name}_renamed": renamed(rows) for name, rows in list(pairs.items())})
    t0, results = time.perf_counter(), []
    print(f"{'model':44s} {'pairs':16s} {'kind':18s} {'states':>6s} {'top1 %':>7s} {'pairs':>6s} {'acc %':>6s} {'margin':>7s}")
    for model in args.model:
        policy = HFPolicy(model, device="cpu", temperature=0.0, cache_size=0)
        entry = {"model": model, "fingerprint": fingerprint(model), "files": {}}
        for name, rows in pairs.items():
            entry["files"][name] = by_kind = fit(policy, rows)
            for kind, r in by_kind.items():
                print(f"{model[-44:]:44s} {name:16s} {kind:18s} {r['states']:6d} {_fmt(r['top1']):>7s} "
                      f"{r['pairs']:6d} {_fmt(r['pair_acc']):>6s} {r['margin']:7.2f}")
        results.append(entry)
    out = {"command": "python " + " ".join(sys.argv), "files": files, "results": results,
           "seconds": time.perf_counter() - t0, "load_average": os.getloadavg(), "provenance": provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
