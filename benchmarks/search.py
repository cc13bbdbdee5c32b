"""Search at inference on the shop: greedy acting versus Agent Q's MCTS.

For each scripted policy (random, rule) with the lexical critic, on the first N
test goals of webgrove/WebShop-v0: success rate and score of the policy acting
greedily, and of `MCTSAgent` searching before every step; for the search also
simulations per second and MCTS's own share of the search time (the rest is the
env, the policy and the critic). Prints a table and writes
benchmarks/results/search.json with the exact command line and the load average
(timings on a busy machine are slower, shares less so).

    python benchmarks/search.py                       # 200 goals, 10 simulations per step
    python benchmarks/search.py --goals 50 --simulations 20
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

RESULTS = HERE / "results" / "search.json"
ENV_ID = "webgrove/WebShop-v0"


def run_mode(env, policy_spec: str, mcts: bool, goals: int, simulations: int, k: int, seed: int) -> dict:
    """Episodes on goals 0..goals-1 of the test split; returns WebShop's metrics plus search timings."""
    import numpy as np

    from webgrove.agents.specs import make_critic, make_policy
    from webgrove.search.inference import MCTSAgent
    from webgrove.search.mcts import SearchConfig
    from webgrove.agents.episode import run_episode, summarize

    policy = make_policy(policy_spec, env=env)
    rng = np.random.default_rng(seed)
    agent = None
    if mcts:
        critic = make_critic("lexical", policy=policy)
        agent = MCTSAgent(env, policy, critic, SearchConfig(simulations=simulations, k=k, seed=seed))
        act = agent.act
    else:
        def act(ctx):
            return policy.act(ctx, rng)
    results = []
    start = time.perf_counter()
    for i in range(goals):
        results.append(run_episode(env, act, goal_id=i, seed=seed + i))
    row = summarize(results, time.perf_counter() - start)
    row.update(policy=policy_spec, mode=f"mcts({simulations})" if mcts else "greedy", critic="lexical" if mcts else None)
    if agent is not None:
        t = agent.timings.as_dict()
        row.update(simulations=t["simulations"], search_s=t["total_s"], env_s=t["env_s"], policy_s=t["policy_s"],
                   critic_s=t["critic_s"], mcts_s=t["mcts_s"], mcts_share=t["mcts_share"],
                   simulations_per_second=t["simulations"] / t["total_s"] if t["total_s"] > 0 else 0.0)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=200, help="test goals 0..N-1")
    parser.add_argument("--simulations", type=int, default=10, help="MCTS simulations per step")
    parser.add_argument("--k", type=int, default=5, help="proposals per expansion")
    parser.add_argument("--policies", nargs="+", default=["random", "rule"])
    parser.add_argument("--num-products", type=int, default=1000, help="synthetic catalog size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from webgrove.envs.make import make_env

    env = make_env(ENV_ID, split="test", num_products=args.num_products)
    rows = []
    try:
        for spec in args.policies:
            for mcts in (False, True):
                row = run_mode(env, spec, mcts, args.goals, args.simulations, args.k, args.seed)
                rows.append(row)
                print(f"{spec:>7} {row['mode']:>10}: success {row['success_rate']:.3f} score {row['score']:.1f}"
                      f" ({row['seconds']:.1f}s)", flush=True)
    finally:
        env.close()

    print()
    print(f"{ENV_ID}, test goals 0..{args.goals - 1}, lexical critic, k={args.k}")
    print("| policy | mode | success rate | score | mean steps | simulations/s | MCTS share | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sims = f"{r['simulations_per_second']:.0f}" if "simulations" in r else "–"
        share = f"{100 * r['mcts_share']:.1f}%" if "simulations" in r else "–"
        print(f"| {r['policy']} | {r['mode']} | {r['success_rate']:.3f} | {r['score']:.1f} | {r['mean_steps']:.1f}"
              f" | {sims} | {share} | {r['seconds']:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join(["python"] + sys.argv), "env": ENV_ID, "goals": args.goals,
        "simulations": args.simulations, "k": args.k, "seed": args.seed, "num_products": args.num_products,
        "load_average": os.getloadavg(), "cpus": os.cpu_count(), "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
