"""Agent Q's MCTS on the shop: search at inference, and where collection time goes.

1. **Inference**: for each scripted policy (random, rule) with the lexical critic, on the
   first N test goals of webgrove/WebShop-v0: success rate and score of the policy acting
   greedily, and of `MCTSAgent` searching before every step; for the search also
   simulations per second and MCTS's own share of the search time (the rest is the env,
   the policy and the critic).
2. **Collection** (`webgrove collect`, one process): trees per second and the exact
   breakdown of each goal's wall time (`webgrove.search.collect.collection_timings`):
   - reset: `env.reset`;
   - env: the env's step, get_state, set_state and observe inside the search (through
     collection's `GuardedEnv`);
   - policy: propose, act/sample, prompt, and building their input (`context_from`);
   - critic: the critic's `rank`;
   - MCTS search: the rest of `search_episode`'s whole span (its random generator, selection,
     dropping repeated proposals, the children, stepping and rollout bookkeeping, backup,
     choosing the child, and the clock reads themselves);
   - tree records: stats, header, checks and the file's text (JSON) of the finished tree;
   - file write: the atomic write (temp file, write, fsync, rename, fsync of the folder);
   - other: the goal's seed, the search's config, the result's dict.
   MCTS's own share of collection time is (MCTS search + tree records) / goal time; it is
   also given without the file write, which is storage, not computation.
3. **Replay** (`--parts replay`): MCTS's own CPU time without the machine's load in it. The
   collection of part 2 is run once more with every answer of the env, the policy and the
   critic recorded; then the same trees are searched again from those answers (each call a
   list lookup) and written to text, timed by this thread's CPU clock, best of `--repeats`:
   the search (MCTS's bookkeeping, plus the replayed calls and `context_from`); MCTS's own
   part of it, that CPU time times the share of the search's span its timings give MCTS (a
   ratio, so the load hardly moves it; the CPU clock is a system call, too slow for the spans
   themselves); and the tree records (stats, header, `tree_text`). Trees must come out as
   collected (checked).

Prints tables and writes benchmarks/results/search.json with the exact command line and
the load average (timings on a busy machine are slower, shares less so).

    python benchmarks/search.py                       # 200 goals, 10 simulations per step
    python benchmarks/search.py --goals 50 --simulations 20 --parts collection
    python benchmarks/search.py --parts collection replay
"""
from __future__ import annotations

import argparse
import json
import math
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


COLLECTION_PARTS = (("reset_s", "reset"), ("env_s", "env"), ("policy_s", "policy"), ("critic_s", "critic"),
                    ("mcts_s", "MCTS search"), ("records_s", "tree records"), ("write_s", "file write"),
                    ("other_s", "other"))


def run_collection(policy_spec: str, goals: int, simulations: int, k: int, num_products: int, seed: int) -> dict:
    """`webgrove collect` of train goals 0..goals-1 in this process; its summary's timings."""
    import tempfile

    from webgrove.search.collect import CollectConfig, run_collect

    with tempfile.TemporaryDirectory() as out:
        s = run_collect(CollectConfig(env=ENV_ID, policy=policy_spec, critic="lexical", num_products=num_products,
                                      simulations=simulations, k=k, seed=seed, goal_range=f"0:{goals}", out=out,
                                      progress=False))
    t = s["timings"]
    return {"policy": policy_spec, "trees": s["collected"], "success_rate": s["success_rate"],
            "nodes": s["nodes"], "seconds": s["seconds"], "trees_per_s": s["collected"] / t["goal_s"],
            "timings": t, "mcts_share": s["mcts_share"],
            "mcts_share_without_write": (t["mcts_s"] + t["records_s"]) / (t["goal_s"] - t["write_s"])}


def collection_table(rows: list[dict]) -> str:
    head = " | ".join(name for _, name in COLLECTION_PARTS)
    lines = [f"| policy | trees/s | ms/tree | {head} | MCTS's own share | without the write |",
             "|---" * (len(COLLECTION_PARTS) + 5) + "|"]
    for r in rows:
        t, n = r["timings"], r["trees"]
        parts = " | ".join(f"{1000 * t[key] / n:.2f} ({100 * t[key] / t['goal_s']:.1f}%)" for key, _ in COLLECTION_PARTS)
        lines.append(f"| {r['policy']} | {r['trees_per_s']:.1f} | {1000 * t['goal_s'] / n:.2f} | {parts} | "
                     f"{100 * r['mcts_share']:.1f}% | {100 * r['mcts_share_without_write']:.1f}% |")
    return "\n".join(lines)


class _Recorder:
    """`obj`'s methods `names`, each answer appended to `log` (env states as None: the replay
    hands them back to a replayed env only)."""

    def __init__(self, obj, log: list, names: tuple[str, ...], **attributes):
        for name in names:
            setattr(self, name, self._recording(getattr(obj, name), log, name == "get_state"))
        self.__dict__.update(attributes)

    @staticmethod
    def _recording(method, log, opaque):
        def call(*args):
            answer = method(*args)
            log.append(None if opaque else answer)
            return answer
        return call

    @property
    def unwrapped(self):
        return self


class _Replay(_Recorder):
    """The env, the policy and the critic in one: every call returns the next recorded answer."""

    def __init__(self, log: list, **attributes):
        answer = iter(log).__next__
        for name in REPLAYED:
            setattr(self, name, lambda *args: answer())
        self.__dict__.update(attributes)


REPLAYED = ("step", "get_state", "set_state", "observe", "propose", "act", "prompt", "rank")


def record_collection(policy_spec: str, goals: int, simulations: int, k: int, num_products: int, seed: int) -> list[dict]:
    """Collection's searches of train goals 0..goals-1 (as `goal_tree` runs them), with every
    answer of the env, the policy and the critic recorded in call order."""
    from webgrove.agents.base import policy_input, rolls_out_by_act
    from webgrove.search.collect import CollectConfig, GuardedEnv, build_parties, goal_seed
    from webgrove.search.mcts import search_episode

    cfg = CollectConfig(env=ENV_ID, policy=policy_spec, critic="lexical", num_products=num_products,
                        simulations=simulations, k=k, seed=seed, goal_range=f"0:{goals}", out="unused", progress=False)
    parties = build_parties(cfg)
    runs = []
    try:
        for goal_id in range(goals):
            seed_i = goal_seed(cfg.seed, goal_id)
            _, info = parties.env.reset(seed=seed_i, options={"goal_id": goal_id})
            log, env = [], GuardedEnv(parties.env)
            policy = parties.policy
            prompt_of = type("Prompt", (), {"prompt": staticmethod(lambda ctx: policy_input(policy, ctx))})()
            scripted = rolls_out_by_act(policy)
            tree = search_episode(_Recorder(env, log, REPLAYED[:4], spec=env.spec),
                                  _Recorder(policy, log, ("propose", "act"), rollout_by_act=scripted,
                                            prompt=_Recorder(prompt_of, log, ("prompt",)).prompt),
                                  _Recorder(parties.critic, log, ("rank",)), cfg.search_config(seed=seed_i))
            runs.append({"log": log, "spec": env.spec, "scripted": scripted, "config": cfg.search_config(seed=seed_i),
                         "goal": info["goal"], "goal_id": goal_id, "records": tree.records()})
    finally:
        parties.env.close()
    return runs


def replay_collection(runs: list[dict], repeats: int) -> dict:
    """CPU seconds (this thread, best of `repeats`) of searching `runs` again from their
    recorded answers, of MCTS's own part of it, and of the trees' records."""
    from webgrove.search.mcts import search_episode
    from webgrove.search.tree import make_header, tree_stats, tree_text

    best = {"search_s": math.inf, "mcts_share": 0.0, "records_s": math.inf}
    for _ in range(repeats):
        trees, t0 = [], time.thread_time()
        for run in runs:
            replay = _Replay(run["log"], spec=run["spec"], rollout_by_act=run["scripted"])
            trees.append(search_episode(replay, replay, replay, run["config"]))
        t1 = time.thread_time()
        if t1 - t0 < best["search_s"]:
            mcts_s = sum(t.timings.mcts_s for t in trees)
            best.update(search_s=t1 - t0, mcts_share=mcts_s / sum(t.timings.total_s for t in trees))
        for run, tree in zip(runs, trees):
            stats = tree_stats(tree.nodes, [tree.nodes[i] for i in tree.best_path])
            header = make_header(ENV_ID, run["goal_id"], run["goal"], run["config"].seed, "replay",
                                 {"simulations": run["config"].simulations}, best_path=tree.best_path, stats=stats)
            tree_text(header, tree.nodes)
        best["records_s"] = min(best["records_s"], time.thread_time() - t1)
    best["mcts_s"] = best["search_s"] * best["mcts_share"]
    if any(tree.records() != run["records"] for run, tree in zip(runs, trees)):
        raise AssertionError("a replayed search made another tree than the collected one")
    simulations = sum(t.timings.simulations for t in trees)
    return {**best, "trees": len(runs), "simulations": simulations, "nodes": sum(len(t.nodes) for t in trees)}


def replay_table(rows: list[dict]) -> str:
    lines = ["| policy | simulations/tree | nodes/tree | search CPU ms/tree | MCTS's share of it "
             "| MCTS's own ms/tree (µs/simulation) | tree records ms/tree (µs/node) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        n = r["trees"]
        lines.append(f"| {r['policy']} | {r['simulations'] / n:.1f} | {r['nodes'] / n:.1f} | {1000 * r['search_s'] / n:.3f} | "
                     f"{100 * r['mcts_share']:.1f}% | {1000 * r['mcts_s'] / n:.3f} ({1e6 * r['mcts_s'] / r['simulations']:.2f}) | "
                     f"{1000 * r['records_s'] / n:.3f} ({1e6 * r['records_s'] / r['nodes']:.2f}) |")
    return "\n".join(lines)


def run_inference(args) -> list[dict]:
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
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=200, help="test goals 0..N-1 (inference)")
    parser.add_argument("--collect-goals", type=int, default=100, help="train goals 0..N-1 (collection)")
    parser.add_argument("--simulations", type=int, default=10, help="MCTS simulations per step")
    parser.add_argument("--k", type=int, default=5, help="proposals per expansion")
    parser.add_argument("--policies", nargs="+", default=["random", "rule"])
    parser.add_argument("--parts", nargs="+", default=["inference", "collection"],
                        choices=["inference", "collection", "replay"])
    parser.add_argument("--repeats", type=int, default=7, help="replays of the recorded searches (best is kept)")
    parser.add_argument("--num-products", type=int, default=1000, help="synthetic catalog size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = run_inference(args) if "inference" in args.parts else []
    collection = []
    if "collection" in args.parts:
        collection = [run_collection(spec, args.collect_goals, args.simulations, args.k, args.num_products, args.seed)
                      for spec in args.policies]
        print()
        print(f"Collection: {ENV_ID}, train goals 0..{args.collect_goals - 1}, lexical critic, "
              f"{args.simulations} simulations, k={args.k}, one process; ms per tree (share of goal time)")
        print(collection_table(collection))
    replayed = []
    if "replay" in args.parts:
        for spec in args.policies:
            runs = record_collection(spec, args.collect_goals, args.simulations, args.k, args.num_products, args.seed)
            replayed.append({"policy": spec, **replay_collection(runs, args.repeats)})
        print()
        print(f"Replay: the same collection's searches from recorded answers, this thread's CPU time, "
              f"best of {args.repeats}")
        print(replay_table(replayed))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join(["python"] + sys.argv), "env": ENV_ID, "goals": args.goals,
        "collect_goals": args.collect_goals, "simulations": args.simulations, "k": args.k, "seed": args.seed,
        "num_products": args.num_products, "load_average_before": load_before, "load_average": os.getloadavg(),
        "cpus": os.cpu_count(), "rows": rows, "collection": collection, "replay": replayed,
    }, indent=2) + "\n")
    print(f"load average before {load_before}, after {os.getloadavg()}; wrote {out}")


if __name__ == "__main__":
    main()
