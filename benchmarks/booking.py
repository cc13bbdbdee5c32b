"""webgrove/Booking-v0: oracle and random success, fork vs replay restore, 8 envs in parallel,
and the random policy greedily vs with MCTS (lexical critic) on the same goals, paired.

    python benchmarks/booking.py --oracle-goals 200 --random-goals 50 --depth 10 --parallel 8
    python benchmarks/booking.py --oracle-goals 0 --random-goals 0 --depth 0 --parallel 0 \
        --mcts-goals 50 --simulations 5 --max-depth 1 --shaping progress

MCTS runs `MCTSAgent` over the random policy with a fresh tree at every real step
(`reuse_tree=False`: a reused tree's depth limit counts from the first step's root, so
after `max_depth` steps the search has nothing left and the agent falls back to the
policy); k covers every action of a page (the critic orders them, UCB1 tries the best
first). Episode outcomes are the evaluator's: the reward of the step that ends the
episode, 0 when the step limit comes first (with `--shaping progress` the other steps
pay progress, which is never counted as an outcome).

Prints a table and writes benchmarks/results/booking.json with the exact command.
Timings are taken while other work may share the CPU: compare the ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import webgrove.envs  # noqa: F401  (registers the ids)
from webgrove.agents.base import context_from
from webgrove.agents.booking_scripted import BookingOraclePolicy, BookingRandomPolicy
from webgrove.agents.critics import LexicalCritic

RESULTS = Path(__file__).parent / "results" / "booking.json"


def episodes(env, policy, goal_ids, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    rewards, steps, t0 = [], 0, time.perf_counter()
    for goal_id in goal_ids:
        obs, info = env.reset(seed=seed + goal_id, options={"goal_id": goal_id})
        history, reward = [], 0.0
        while True:
            action = policy.act(context_from(obs, info, history), rng)
            obs, reward, term, trunc, info = env.step(action)
            history.append(action)
            steps += 1
            if term or trunc:
                break
        rewards.append(float(reward))
    seconds = time.perf_counter() - t0
    return {"episodes": len(rewards), "success_rate": sum(r >= 1.0 for r in rewards) / len(rewards),
            "score": 100 * statistics.mean(rewards), "steps": steps, "steps_per_second": steps / seconds,
            "failed_goals": [g for g, r in zip(goal_ids, rewards) if r < 1.0][:20]}


def paired_episodes(env, actors: dict, goal_ids, seed=0) -> dict:
    """Each actor (name -> factory of `act(ctx)`) on the same goals and seeds; outcomes are
    the evaluator's (see the module docstring), per goal, so the two compare goal by goal."""
    from webgrove.stats import outcome_summary, paired_comparison

    out = {}
    for name, make_act in actors.items():
        rewards, steps, errors, t0 = [], [], {}, time.perf_counter()
        for goal_id in goal_ids:
            try:
                outcome, n = _episode(env, make_act(goal_id), goal_id, seed)
            except RuntimeError as e:  # a restore that diverged or a crash: the episode failed
                outcome, n, errors[goal_id] = 0.0, 0, f"{type(e).__name__}: {str(e)[:300]}"
            rewards.append(outcome)
            steps.append(n)
            print(f"{name} goal {goal_id}: reward {outcome:.3f} in {n} steps "
                  f"({time.perf_counter() - t0:.0f} s so far){' ' + errors[goal_id] if goal_id in errors else ''}",
                  file=sys.stderr, flush=True)
        successes = [r >= 1.0 for r in rewards]
        out[name] = {**outcome_summary(rewards, successes, seed=seed), "goal_ids": list(goal_ids),
                     "rewards": rewards, "successes": successes, "mean_steps": statistics.mean(steps),
                     "seconds": time.perf_counter() - t0, "errors": errors}
    base, method = list(out)
    out["paired"] = paired_comparison(out[base], out[method], seed=seed)
    return out


def _episode(env, act, goal_id: int, seed: int) -> tuple[float, int]:
    """(the evaluator's reward, steps) of one episode: 0 when the step limit ends it."""
    obs, info = env.reset(seed=seed + goal_id, options={"goal_id": goal_id})
    history = []
    while True:
        action = act(context_from(obs, info, history))
        obs, reward, term, trunc, info = env.step(action)
        history.append(action)
        if term or trunc:
            return (float(reward) if term else 0.0), len(history)


def mcts_vs_greedy(env, goal_ids, simulations: int, max_depth: int, alpha: float, seed=0) -> dict:
    """The random policy greedily and with MCTS + the lexical critic, on the same goals."""
    from webgrove.search.inference import MCTSAgent
    from webgrove.search.mcts import SearchConfig

    policy = BookingRandomPolicy(env)

    def greedy(goal_id):
        rng = np.random.default_rng([seed, goal_id])
        return lambda ctx: policy.act(ctx, rng)

    def mcts(goal_id):
        critic = LexicalCritic(env)

        def act(ctx):  # a fresh tree and seed per step: the same seed would propose in the same order again
            config = SearchConfig(simulations=simulations, k=1000, max_depth=max_depth, alpha=alpha,
                                  seed=seed + 1000 * goal_id + len(ctx.history))
            return MCTSAgent(env, policy, critic, config, reuse_tree=False).act(ctx)

        return act

    return paired_episodes(env, {"random": greedy, "random + MCTS": mcts}, goal_ids, seed)


def merge_mcts(paths: list[str], seed: int = 0) -> dict:
    """One MCTS comparison from the `--out` files of runs on disjoint goal ranges (e.g. two
    processes): per-goal outcomes joined in goal order, summaries and the paired test recomputed."""
    from webgrove.stats import outcome_summary, paired_comparison

    parts = [json.loads(Path(p).read_text()) for p in paths]
    mcts = [part["mcts"] for part in parts]
    out: dict = {k: mcts[0][k] for k in ("simulations", "max_depth", "alpha", "shaping", "critic")}
    for name in ("random", "random + MCTS"):
        rows = sorted(t for m in mcts for t in zip(m[name]["goal_ids"], m[name]["rewards"], m[name]["successes"]))
        rewards, successes = [r for _, r, _ in rows], [s for _, _, s in rows]
        steps = sum(m[name]["mean_steps"] * len(m[name]["rewards"]) for m in mcts)
        out[name] = {**outcome_summary(rewards, successes, seed=seed), "goal_ids": [g for g, _, _ in rows],
                     "rewards": rewards, "successes": successes, "mean_steps": steps / len(rows),
                     "seconds": sum(m[name]["seconds"] for m in mcts),
                     "errors": {k: v for m in mcts for k, v in m[name]["errors"].items()}}
    out["paired"] = paired_comparison(out["random"], out["random + MCTS"], seed=seed)
    return {"commands": [part["command"] for part in parts], "merged_from": paths, "mcts": out}


def restore_timing(env, depth: int, goal_ids, repeats: int = 3) -> dict:
    """Median seconds to restore the state at `depth` by fork and by replay; observations compared."""
    u = env.unwrapped
    oracle = BookingOraclePolicy(env)
    fork_s, replay_s, identical = [], [], True
    for goal_id in goal_ids:
        obs, info = env.reset(options={"goal_id": goal_id})
        history = []
        for _ in range(depth):
            action = oracle.act(context_from(obs, info, history))
            history.append(action)
            obs, _, term, _, info = env.step(action)
        state = u.get_state()
        replay_state = type(state)(state.seed, state.options, state.actions, state.axtree)
        for _ in range(repeats):
            for s, out in ((state, fork_s), (replay_state, replay_s)):
                t0 = time.perf_counter()
                u.set_state(s)
                out.append(time.perf_counter() - t0)
                identical &= u.observe()[0] == obs
    fork, replay = statistics.median(fork_s), statistics.median(replay_s)
    return {"depth": depth, "fork_median_s": fork, "replay_median_s": replay, "speedup": replay / fork,
            "identical_observations": identical, "restores": len(fork_s)}


def _worker(index: int, steps: int, barrier, queue) -> None:
    import gymnasium as gym

    env = gym.make("webgrove/Booking-v0", split="test")
    policy = BookingRandomPolicy(env)
    rng = np.random.default_rng(index)
    obs, info = env.reset(options={"goal_id": index})
    barrier.wait()
    t0, history = time.perf_counter(), []
    for i in range(steps):
        action = policy.act(context_from(obs, info, history), rng)
        obs, _, term, trunc, info = env.step(action)
        history.append(action)
        if i == steps // 2:
            queue.put(("mid", index, os.getpid()))
        if term or trunc:
            obs, info = env.reset(options={"goal_id": index})
            history = []
    seconds = time.perf_counter() - t0
    env.close()
    queue.put(("done", index, steps / seconds))


def _tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (MB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total / 2**20


def _chromium_descendants(root: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"chrom" in (entry / "cmdline").read_bytes().lower() and _descends(int(entry.name), root):
                    count += 1
            except OSError:
                continue
    return count


def _descends(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            pid = int((Path(f"/proc/{pid}/stat")).read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def parallel(n: int, steps: int) -> dict:
    """n processes, each one env with its own Chromium, stepping a random agent at once."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, steps, barrier, queue)) for i in range(n)]
    for p in procs:
        p.start()
    mids, rates, memory = [], [], []
    t0 = time.perf_counter()
    while len(rates) < n:
        kind, index, value = queue.get(timeout=600)
        if kind == "mid":
            mids.append(value)
            if len(mids) == n:
                memory = [_tree_rss_mb(pid) for pid in mids]
        else:
            rates.append(value)
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=30)
    left = _chromium_descendants(os.getpid())
    return {"envs": n, "steps_per_env": steps, "total_steps_per_second": n * steps / wall,
            "mean_env_steps_per_second": statistics.mean(rates),
            "memory_per_env_mb": statistics.mean(memory) if memory else None,
            "chromium_left_after_close": left}


def print_table(results: dict) -> None:
    rows = []
    for name in ("oracle", "random"):
        if name in results:
            r = results[name]
            rows.append((f"{name} success (test goals 0..{r['episodes'] - 1})", f"{100 * r['success_rate']:.1f}%",
                         f"score {r['score']:.1f}, {r['steps_per_second']:.1f} steps/s"))
    if "restore" in results:
        r = results["restore"]
        rows.append((f"restore at depth {r['depth']}: fork vs replay", f"{r['speedup']:.1f}x",
                     f"{1000 * r['fork_median_s']:.0f} ms vs {1000 * r['replay_median_s']:.0f} ms median, "
                     f"identical observations: {r['identical_observations']}"))
    if "mcts" in results:
        m = results["mcts"]
        for name in ("random", "random + MCTS"):
            r = m[name]
            rows.append((f"{name} (test goals {r['goal_ids'][0]}..{r['goal_ids'][-1]})",
                         f"{100 * r['success_rate']:.1f}%", f"score {r['score']:.1f}, {r['mean_steps']:.1f} steps, "
                         f"{r['seconds']:.0f} s"))
        p = m["paired"]
        rows.append(("MCTS minus greedy (paired)", f"{100 * p['success_diff']:+.1f} pts",
                     f"95% CI [{100 * p['success_diff_ci95'][0]:+.1f}, {100 * p['success_diff_ci95'][1]:+.1f}], "
                     f"McNemar p {p['mcnemar']['p']:.2g}"))
    if "parallel" in results:
        r = results["parallel"]
        rows.append((f"{r['envs']} envs in parallel", f"{r['total_steps_per_second']:.1f} steps/s",
                     f"{r['memory_per_env_mb']:.0f} MB per env, Chromium left after close: "
                     f"{r['chromium_left_after_close']}"))
    width = max(len(r[0]) for r in rows)
    for label, value, detail in rows:
        print(f"{label:<{width}}  {value:>12}  {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle-goals", type=int, default=200, help="test goals for the oracle (0 skips)")
    parser.add_argument("--random-goals", type=int, default=50, help="test goals for the random agent (0 skips)")
    parser.add_argument("--depth", type=int, default=10, help="restore depth for fork vs replay (0 skips)")
    parser.add_argument("--restore-goals", type=int, default=5, help="goals to time restores on")
    parser.add_argument("--parallel", type=int, default=8, help="envs in parallel (0 skips)")
    parser.add_argument("--parallel-steps", type=int, default=40, help="random steps per parallel env")
    parser.add_argument("--mcts-goals", type=int, default=0, help="test goals for random vs random + MCTS (0 skips)")
    parser.add_argument("--mcts-start", type=int, default=0, help="first test goal of the MCTS comparison")
    parser.add_argument("--simulations", type=int, default=5, help="MCTS simulations per real step")
    parser.add_argument("--max-depth", type=int, default=1, help="MCTS actions from the root (rollout length + 1)")
    parser.add_argument("--alpha", type=float, default=0.98,
                        help="weight of Q_mcts against the critic's value once a child is visited (near 1: "
                             "the critic orders the unvisited and breaks ties)")
    parser.add_argument("--shaping", default="none", choices=["none", "progress"],
                        help="the env's reward shaping during the MCTS comparison (outcomes are unshaped)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON output")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="only join the MCTS comparisons of these --out files (disjoint goal ranges) into --out")
    args = parser.parse_args()
    if args.merge:
        results = merge_mcts(args.merge)
        print_table(results)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        return 0
    import gymnasium as gym

    results: dict = {"command": "python " + " ".join(sys.argv), "note": "timings on a shared CPU: compare ratios"}
    env = gym.make("webgrove/Booking-v0", split="test")
    try:
        if args.oracle_goals:
            results["oracle"] = episodes(env, BookingOraclePolicy(env), range(args.oracle_goals))
        if args.random_goals:
            results["random"] = episodes(env, BookingRandomPolicy(env), range(args.random_goals))
        if args.depth:
            results["restore"] = restore_timing(env, args.depth, range(args.restore_goals))
    finally:
        env.close()
    if args.mcts_goals:
        env = gym.make("webgrove/Booking-v0", split="test", reward_shaping=args.shaping)
        try:
            goals = range(args.mcts_start, args.mcts_start + args.mcts_goals)
            results["mcts"] = {**mcts_vs_greedy(env, goals, args.simulations, args.max_depth, args.alpha),
                               "simulations": args.simulations, "max_depth": args.max_depth,
                               "alpha": args.alpha, "shaping": args.shaping, "critic": "lexical"}
        finally:
            env.close()
    if args.parallel:
        results["parallel"] = parallel(args.parallel, args.parallel_steps)
    print_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
