"""RISE on a CPU budget: base vs RISE-trained policy, success by attempt t = 1..5, sequential vs parallel.

1. base: a fresh micro Llama (the demo's size) cloned from oracle demonstrations (`training/demo.py`'s
   `build_base`, with fewer goals and epochs);
2. RISE: `webgrove rise improve` from the base -- multi-attempt rollouts on train goals with
   `components` feedback, improved next attempts by self-distillation and the oracle as teacher,
   RISE's filter, reward-weighted SFT;
3. both evaluated on held-out test goals (`webgrove.training.rise_eval`): sequential attempts with
   feedback (with oracle), without feedback (last / majority), parallel sampling (best of t / majority);
4. the issue's targets checked, and what the RISE policy does across attempts measured: how often
   attempt t+1 repeats attempt t's answer, changes its query, or stops early.

Prints tables and writes benchmarks/results/rise.json with the exact command line and the load
average (the CPU is shared: timings are noisy; success rates are deterministic given the seeds).

    python benchmarks/rise.py                      # ~10 minutes on 2 idle cores
    python benchmarks/rise.py --eval-goals 100 --collect-goals 120 --iterations 2
    # from the demo's full base, on the demo's collection blocks, its trees as a third teacher:
    python benchmarks/rise.py --base runs/demo/base --collect-start 300 --collect-goals 150 \
        --trees runs/demo/agent_q/iter_1/trees,runs/demo/pool/block_2,runs/demo/pool/block_3

`record` files one `webgrove rise eval --json` run under a key of rise.json (other keys kept):
its curves, per-attempt stats, behaviour, and paired differences goal by goal (95% paired
bootstrap, McNemar) -- attempt 5 vs its attempt 1, sequential vs parallel at T, and attempts
1 and T vs a baseline run::

    python benchmarks/rise.py record --key validation_s6 --name rise_bc_later_t0.5 \
        --eval runs/rise_s6/val_bc_lt0.5.json --command "webgrove rise eval ..." \
        --baseline runs/rise_s5/val_best_bc.json --parallel runs/rise_s5/val_best_bc.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "rise.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/bench_rise", help="work folder (rerun to reuse the base and RISE model)")
    p.add_argument("--base", default=None, help="start from this model directory (e.g. runs/demo/base) "
                                                  "instead of cloning a reduced-budget base")
    p.add_argument("--trees", default=None, help="MCTS tree folders of the collection goals, comma-separated: "
                                                   "adds search as a teacher")
    p.add_argument("--collect-start", type=int, default=None, help="first train goal of RISE data "
                                                                    "(default: after the demonstration goals)")
    p.add_argument("--demo-goals", type=int, default=150, help="train goals with full oracle demonstrations")
    p.add_argument("--query-goals", type=int, default=400, help="more train goals with the query step demonstrated")
    p.add_argument("--bc-epochs", type=float, default=3.0, help="behaviour-cloning epochs")
    p.add_argument("--collect-goals", type=int, default=60, help="train goals of RISE data per iteration")
    p.add_argument("--iterations", type=int, default=1, help="RISE iterations")
    p.add_argument("--samples", type=int, default=1, help="self-distillation samples per failed attempt")
    p.add_argument("--improve", default="self,teacher", help="sources of improved attempts")
    p.add_argument("--filter", default="better", help="RISE filter: all | better | best | successful")
    p.add_argument("--eval-goals", type=int, default=30, help="held-out test goals")
    p.add_argument("--eval-split", default="test", choices=["train", "test"],
                   help="split of the evaluation goals (train with --eval-start 1645: the demo's validation goals)")
    p.add_argument("--eval-start", type=int, default=0, help="first evaluation goal")
    p.add_argument("--sample-temperature", type=float, default=1.0, help="temperature of the self samples")
    p.add_argument("--no-sample-history", action="store_true",
                   help="self samples drawn from the one-attempt prompt, their rows given the attempt lines")
    p.add_argument("--tau", type=float, default=0.4, help="temperature of the reward weights exp(r/tau)")
    p.add_argument("--later-temperature", type=float, default=None,
                   help="evaluation: temperature of attempts 2..T (default: greedy like attempt 1)")
    p.add_argument("--rise-out", default=None, help="the RISE loop's folder (default OUT/rise)")
    p.add_argument("--attempts", type=int, default=5, help="attempts T")
    p.add_argument("--max-steps", type=int, default=8, help="step limit of one attempt (the oracle needs 4-6)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def behaviour(outcomes: list[dict]) -> dict:
    """What the sequential (with-oracle) runs do from one attempt to the next."""
    pairs = same_answer = same_query = 0
    for o in outcomes:
        acts = o["sequential_actions"]
        for a, b in zip(acts, acts[1:]):
            pairs += 1
            same_answer += a[-2:] == b[-2:]
            same_query += [x for x in a if x.startswith("search[")][:1] == [x for x in b if x.startswith("search[")][:1]
    feedback = [f for o in outcomes for f in o["sequential_feedback"] if f not in ("succeeded", "")]
    kinds = {k: sum(k in f for f in feedback) for k in ("wrong product type", "missing attributes", "wrong options",
                                                         "over the price limit", "ran out of steps")}
    return {"attempt_pairs": pairs, "repeats_last_two_actions": same_answer, "same_first_query": same_query,
            "feedback_kinds": kinds, "failed_attempts": len(feedback)}


def uses_feedback(outcomes: list[dict]) -> dict:
    """After "wrong options (want a: x, ...)" feedback: how often the next attempt clicks a wanted value;
    after "wrong product type": how often it changes its first query."""
    import re

    options = options_used = product = product_changed = 0
    for o in outcomes:
        acts, fb = o["sequential_actions"], o["sequential_feedback"]
        for a, b, f in zip(acts, acts[1:], fb):
            m = re.search(r"wrong options \(want ([^)]*)\)", f)
            if m:
                wanted = {v.split(": ", 1)[-1].strip() for v in m.group(1).split(", ")}
                options += 1
                options_used += any(x == f"click[{w}]" for x in b for w in wanted)
            if "wrong product type" in f:
                product += 1
                product_changed += [x for x in a if x.startswith("search[")][:1] != \
                    [x for x in b if x.startswith("search[")][:1]
    return {"wrong_options_feedback": options, "next_clicks_a_wanted_option": options_used,
            "wrong_type_feedback": product, "next_changes_first_query": product_changed}


def targets(base: dict, rise: dict) -> dict:
    b, r = base["sequential_oracle"]["success_rate"], rise["sequential_oracle"]["success_rate"]
    rp = rise["parallel_oracle"]["success_rate"]
    return {"rise_t5_minus_t1_ge_10pts": (r[-1] - r[0]) * 100 >= 10, "rise_t5_above_base_t5": r[-1] > b[-1],
            "rise_sequential_beats_parallel_at_T": r[-1] > rp[-1], "rise_t1_not_below_base_t1": r[0] >= b[0]}


def successes(run: dict, t: int, curve: str = "sequential") -> list[float]:
    """Per goal: 1.0 when one of the first t attempts (or parallel samples) succeeded."""
    rewards = [o["sequential"] if curve == "sequential" else o["parallel"]["rewards"] for o in run["outcomes"]]
    return [float(max(r[:t]) >= 1.0) for r in rewards]


def paired(a: list[float], b: list[float]) -> dict:
    """b - a in points with its 95% paired bootstrap interval and McNemar's exact test."""
    from webgrove.stats import mcnemar_exact, paired_bootstrap_interval

    lo, hi = paired_bootstrap_interval(a, b)
    return {"points": round(100 * (sum(b) - sum(a)) / len(a), 2), "ci95": [round(100 * lo, 2), round(100 * hi, 2)],
            "mcnemar": mcnemar_exact([x > 0 for x in a], [x > 0 for x in b])}


def attempt_index(outcomes: list[dict], attempts: int) -> list[dict]:
    """Per attempt index, over the goals still running: how many, mean reward, successes."""
    out = []
    for t in range(attempts):
        at = [o["sequential"][t] for o in outcomes if len(o["sequential"]) > t]
        out.append({"running": len(at), "mean_reward": round(sum(at) / max(1, len(at)), 4),
                    "successes": sum(r >= 1 for r in at)})
    return out


def record(argv) -> int:
    p = argparse.ArgumentParser(description="file a `rise eval --json` run under a key of rise.json")
    p.add_argument("--key", default="validation_s6", help="top-level key of rise.json")
    p.add_argument("--name", required=True, help="name of the run under the key")
    p.add_argument("--eval", required=True, help="the JSON `webgrove rise eval --json` wrote")
    p.add_argument("--command", required=True, help="the exact command line of that run")
    p.add_argument("--baseline", default=None, help="another eval JSON on the same goals: attempts 1 and T compared")
    p.add_argument("--parallel", default=None, help="eval JSON whose parallel samples to compare with (default: --eval's)")
    p.add_argument("--note", default=None, help="note of the key (kept when omitted)")
    args = p.parse_args(argv)
    run = json.loads(Path(args.eval).read_text())
    T = run["attempts"]
    compare = {f"t{T}_vs_own_t1": paired(successes(run, 1), successes(run, T))}
    par = json.loads(Path(args.parallel).read_text()) if args.parallel else run
    if "parallel" in par["outcomes"][0]:
        compare["sequential_vs_parallel_at_T"] = paired(successes(par, T, "parallel"), successes(run, T))
    if args.baseline:
        base = json.loads(Path(args.baseline).read_text())
        compare.update({f"t{t}_vs_baseline_t{t}": paired(successes(base, t), successes(run, t)) for t in (1, T)})
    entry = {"command": args.command, "policy": run["policy"], "later_temperature": run["later_temperature"],
             "baseline": args.baseline, "parallel_from": args.parallel,
             "by_attempt": {k: {m: v[m] for m in ("success_rate", "success_rate_ci95", "score")}
                            for k, v in run["by_attempt"].items()},
             "attempt_index": attempt_index(run["outcomes"], T),
             "behaviour": {**behaviour(run["outcomes"]), **uses_feedback(run["outcomes"])}, "paired": compare}
    results = json.loads(RESULTS.read_text())
    section = results.setdefault(args.key, {"note": "", "runs": {}})
    section["note"] = args.note or section["note"]
    section["runs"][args.name] = entry
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    seq = run["by_attempt"]["sequential_oracle"]["success_rate"]
    print(f"{args.name}: " + " / ".join(f"{100 * s:.1f}" for s in seq) + "; " + json.dumps(
        {k: [v["points"], v["ci95"], v["mcnemar"]["p"]] for k, v in compare.items()}))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["record"]:
        return record(argv[1:])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from webgrove.training.demo import DemoConfig, PhaseTimer, build_base, demo_splits
    from webgrove.training.rise import RiseImproveConfig, run_rise_improve
    from webgrove.training.rise_eval import RiseEvalConfig, evaluate_rise, format_curves
    from webgrove.training.plots import plot_attempts

    args = parse_args(argv)
    out, load_start = Path(args.out), os.getloadavg()
    timer, start = PhaseTimer(), time.perf_counter()
    if args.base:
        base = args.base
    else:
        demo = DemoConfig(out=str(out), demo_goals=args.demo_goals, query_goals=args.query_goals,
                          bc_epochs=args.bc_epochs, goals_per_iteration=args.collect_goals, seed=args.seed,
                          progress=False)
        base = build_base(demo, timer, demo_splits(demo))[0]
    improve = args.improve + (",search" if args.trees and "search" not in args.improve else "")
    with timer("rise"):
        metrics = run_rise_improve(RiseImproveConfig(
            model=base, out=args.rise_out or str(out / "rise"), iterations=args.iterations,
            first_goal=args.demo_goals if args.collect_start is None else args.collect_start,
            goals_per_iteration=args.collect_goals, attempts=args.attempts, improve=improve, trees=args.trees,
            samples=args.samples, teacher="oracle", filter=args.filter, eval_goals=0, max_steps=args.max_steps,
            sample_temperature=args.sample_temperature, sample_history=not args.no_sample_history, tau=args.tau,
            seed=args.seed, progress=False))
    evals = {}
    for name, model in (("base", base), ("rise", metrics["final_model"])):
        with timer(f"eval {name}"):
            evals[name] = evaluate_rise(RiseEvalConfig(policy=model, episodes=args.eval_goals, attempts=args.attempts,
                                                       max_steps=args.max_steps, split=args.eval_split,
                                                       start_goal=args.eval_start,
                                                       later_temperature=args.later_temperature,
                                                       seed=args.seed, json=str(out / f"eval_{name}.json"),
                                                       progress=False))
    curves = {f"{n} {k.split('_')[0]}": evals[n]["by_attempt"][k] for n in evals
              for k in ("sequential_oracle", "parallel_oracle")}
    plot = plot_attempts(curves, out / "success_by_attempt.png", title="success by attempt (components, with oracle)")
    result = {
        "command": " ".join([sys.executable, *sys.argv]), "args": vars(args),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "seconds": time.perf_counter() - start, "phases": timer.seconds,
        "rise_iterations": [{k: r.get(k) for k in ("iteration", "rows", "collect", "train")}
                            for r in metrics["iterations"][1:]],
        "by_attempt": {n: e["by_attempt"] for n, e in evals.items()},
        "behaviour": {n: {**behaviour(e["outcomes"]), **uses_feedback(e["outcomes"])} for n, e in evals.items()},
        "targets": targets(evals["base"]["by_attempt"], evals["rise"]["by_attempt"]), "plot": str(plot)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for n, e in evals.items():
        print(f"\n{n} ({e['episodes']} test goals): success rate (%) / score at t = 1..{args.attempts}")
        print(format_curves(e["by_attempt"]))
    print("\nbehaviour across attempts:", json.dumps(result["behaviour"]))
    print("RISE data:", json.dumps(result["rise_iterations"]))
    print("targets:", json.dumps(result["targets"]))
    print(f"phases (s): {json.dumps({k: round(v, 1) for k, v in timer.seconds.items()})}; "
          f"total {result['seconds']:.0f}s; load {result['load_average']}; -> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
