"""Scale-out figures: collection backends, a policy server, multi-process DPO.

1. Trees per second on the same goals (the scripted `rule` and `random` policies, and the
   tiny model from `init-model`; lexical critic): the local backend with 1 and 2 worker
   processes, and the Ray backend with 2 CPUs (a local Ray instance), each cold and warm.
   Cold: nothing started before the clock (Ray: ray.init and the actors' start-up, which
   builds env, policy and critic; local: the fork server and its workers). Warm: the same
   settings run again in the same driver (Ray reuses its warm actors; local keeps only its
   fork server: its workers start and build per run, local's normal per-call start).
   Ray's overhead is local's rate over Ray's at the same parallelism, minus 1.
2. Policy calls per second (`propose(ctx, k)` on the same shop states): the tiny model
   in-process (`HFPolicy`, scoring mode) against the same model behind `transformers serve`
   (`OpenAIPolicy`; that server gives no log-probabilities, so every call samples
   `--num-samples` completions), with 1 and 4 concurrent clients.
3. DPO seconds per step, 1 process against 2 processes over gloo (`--num-processes 2`),
   the same pairs and per-process batch (so 2 processes train on twice the rows a step).

The CPU is shared with whatever else runs on the machine: compare ratios within one run,
and read the load average recorded with the results. Prints a table and writes
benchmarks/results/scale.json with the exact command.

    python benchmarks/scale.py                          # 40 goals, 5 simulations
    python benchmarks/scale.py --goals 12 --skip dpo    # quicker
    python benchmarks/scale.py --skip policy dpo --model-goals 0 --json /tmp/scale.json  # collection only
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.json"
PARTS = ("collect", "policy", "dpo")


# -- 1. collection -------------------------------------------------------------------------

BACKENDS = (("local_1", dict(workers=1)), ("local_2", dict(workers=2)), ("ray_2", dict(workers=2, backend="ray")))
RAY_INIT = dict(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024 * 1024)


def _cold_start(backend: str) -> None:
    """Take away what a previous run left warm: Ray's actors and Ray itself (the cold Ray run
    starts it on the clock), local's fork server (which holds the preloaded modules)."""
    import multiprocessing.forkserver

    import ray

    from webgrove.search.backends import release_actors

    release_actors()
    if ray.is_initialized():
        ray.shutdown()
    if backend.startswith("local"):
        multiprocessing.forkserver._forkserver._stop()  # no public way; the next worker starts it again


def bench_collect(policy: str, goals: int, simulations: int, num_products: int, repeats: int = 1) -> dict:
    """Wall trees/s of each backend on the same `goals` goals, cold and warm: cold from
    nothing started (Ray: ray.init, actors building env, policy and critic; local: its fork
    server, workers building theirs), warm right after a run of the same settings (Ray: the
    driver's warm actors; local: the fork server is up, but its workers, started per run,
    build their env, policy and critic again, which is local's normal per-call start).
    Each figure is the best of `repeats` runs, the backends taking turns."""
    import ray

    from webgrove.search.backends import BATCH_S, release_actors, worker_context
    from webgrove.search.collect import CollectConfig, run_collect

    common = dict(env="webgrove/WebShop-v0", policy=policy, critic="lexical", num_products=num_products,
                  simulations=simulations, k=3, progress=False, goal_range=f"100:{100 + goals}")
    out: dict = {"policy": Path(policy).name, "goals": goals, "simulations": simulations,
                 "num_products": num_products, "repeats": repeats, "ray_batch_s": BATCH_S,
                 "local_start_method": worker_context().get_start_method()}
    walls: dict = {name: {"cold": [], "warm": []} for name, _ in BACKENDS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):  # in turns, so a change of the machine's load reaches every backend
            for name, extra in BACKENDS:
                _cold_start(name)
                for state in ("cold", "warm"):
                    start = time.perf_counter()
                    if extra.get("backend") == "ray" and not ray.is_initialized():
                        ray.init(**RAY_INIT)
                        out.setdefault("ray_init_s", []).append(time.perf_counter() - start)
                    summary = run_collect(CollectConfig(**common, **extra, out=f"{tmp}/{name}_{state}_{rep}"))
                    timings = summary["timings"]  # the trees' writes left out: Ray's driver writes them, not its actors
                    walls[name][state].append((time.perf_counter() - start, timings["goal_s"] - timings["write_s"]))
                    assert summary["collected"] == goals, summary
                    out.setdefault(name, {})["success_rate"] = summary["success_rate"]
        release_actors()
        if ray.is_initialized():
            ray.shutdown()
    for name, _ in BACKENDS:
        for state in ("cold", "warm"):
            best, goal_s = min(walls[name][state])
            workers = dict(BACKENDS)[name]["workers"]
            # the share of the workers' wall seconds spent searching (env, policy, critic, MCTS, the
            # tree's records; not its write): the rest is start-up, dispatch, writes and idle workers
            out[name][state] = {"seconds": best, "trees_per_s": goals / best, "goal_s": goal_s,
                                "in_goals": goal_s / (workers * best), "runs_s": [w for w, _ in walls[name][state]]}
    for state in ("cold", "warm"):
        local, ray_ = out["local_2"][state]["trees_per_s"], out["ray_2"][state]["trees_per_s"]
        out[f"ray_overhead_{state}"] = local / ray_ - 1.0
    return out


# -- 2. policy calls ------------------------------------------------------------------------

def _calls_per_s(make_policy, states: list, clients: int, k: int) -> float:
    import numpy as np

    def client(i: int) -> None:
        policy, rng = make_policy(), np.random.default_rng(i)
        for ctx in states[i::clients]:
            policy.propose(ctx, k, rng)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(states) / (time.perf_counter() - start)


def _serve(model_dir: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("transformers")), "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--device", "cpu", "--log-level", "error", model_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("transformers serve did not start")


def bench_policy(model_dir: str, calls: int, num_samples: int, num_products: int) -> dict:
    from webgrove.agents.hf import HFPolicy
    from webgrove.agents.openai_api import OpenAIPolicy

    from policy_batching import shop_steps  # benchmarks/policy_batching.py: real shop pages with clicks

    states = shop_steps(calls, num_products)
    hf = HFPolicy(model_dir, device="cpu", temperature=1.0)
    out = {"calls": calls, "k": 3, "num_samples": num_samples,
           "hf_in_process_1": _calls_per_s(lambda: hf, states, 1, 3)}
    proc, url = _serve(model_dir)
    try:
        for clients in (1, 4):
            out[f"transformers_serve_{clients}"] = _calls_per_s(
                lambda: OpenAIPolicy(url, model_dir, num_samples=num_samples, max_tokens=12, max_concurrency=4),
                states, clients, 3)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return out


# -- 3. DPO ---------------------------------------------------------------------------------

def bench_dpo(model_dir: str, pairs: int, steps: int, num_products: int) -> dict:
    sys.path.insert(0, str(HERE))
    from training import make_pairs  # benchmarks/training.py: oracle pairs, reference from the model

    out: dict = {"pairs": pairs, "steps": steps, "batch_size_per_process": 4}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        rows = make_pairs(model_dir, pairs, num_products, seed=0)
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "candidates"}) + "\n" for r in rows))
        for n in (1, 2):
            cmd = [sys.executable, "-m", "webgrove", "train", "dpo", "--model", model_dir, "--pairs", str(path),
                   "--out", f"{tmp}/dpo{n}", "--max-steps", str(steps), "--batch-size", "4", "--no-progress",
                   "--num-processes", str(n)]
            env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            result = json.loads((Path(tmp) / f"dpo{n}" / "train_result.json").read_text())
            out[f"processes_{n}"] = {"seconds_per_step": result["seconds_per_step"],
                                     "pairs_per_s": 4 * n / result["seconds_per_step"]}
    return out


# -- main -----------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _table(results: dict) -> str:
    lines = ["| measure | value |", "|---|---|"]
    for key in sorted(k for k in results if k.startswith("collect")):
        c = results[key]
        for name, _ in BACKENDS:
            r = c[name]
            lines.append(f"| trees/s, {c['policy']} policy, {name.replace('_', ' ')} ({c['goals']} goals) | "
                         f"{r['cold']['trees_per_s']:.2f} cold ({r['cold']['seconds']:.2f}s), "
                         f"{r['warm']['trees_per_s']:.2f} warm ({r['warm']['seconds']:.2f}s, "
                         f"{r['warm']['in_goals']:.0%} of worker time searching) |")
        lines.append(f"| Ray overhead vs local 2 workers, {c['policy']} policy | "
                     f"{c['ray_overhead_cold']:+.0%} cold (ray.init in), {c['ray_overhead_warm']:+.0%} warm "
                     f"(local: {c['local_start_method']}, workers started per run; Ray: warm actors, "
                     f"batches of ~{c['ray_batch_s']} s; best of {c['repeats']}) |")
        lines.append(f"| of which ray.init in Ray's cold runs, {c['policy']} policy | "
                     f"{min(c['ray_init_s']):.1f}s best, {max(c['ray_init_s']):.1f}s worst |")
    p = results.get("policy")
    if p:
        lines.append(f"| policy calls/s, HFPolicy in-process | {p['hf_in_process_1']:.1f} |")
        for clients in (1, 4):
            lines.append(f"| policy calls/s, transformers serve, {clients} client(s) "
                         f"({p['num_samples']} samples/call) | {p[f'transformers_serve_{clients}']:.2f} |")
    d = results.get("dpo")
    if d:
        for n in (1, 2):
            r = d[f"processes_{n}"]
            lines.append(f"| DPO s/step, {n} process(es) | {r['seconds_per_step']:.3f} "
                         f"({r['pairs_per_s']:.1f} pairs/s) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=40)
    parser.add_argument("--policies", nargs="*", default=["rule", "random"], help="scripted policies collected with")
    parser.add_argument("--simulations", type=int, default=5)
    parser.add_argument("--model-goals", type=int, default=12, help="goals collected with the tiny model (0: none)")
    parser.add_argument("--model-simulations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1, help="collection runs per figure (the best is kept)")
    parser.add_argument("--num-products", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=24, help="policy calls per measurement")
    parser.add_argument("--num-samples", type=int, default=4, help="samples per call through the server")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--skip", nargs="*", default=[], choices=PARTS)
    parser.add_argument("--out", "--json", default=str(RESULTS), help="where the results go (JSON)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    results: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = f"{tmp}/tiny"
        subprocess.run([sys.executable, "-m", "webgrove", "init-model", "--out", model_dir], check=True,
                       capture_output=True)
        if "collect" not in args.skip:
            for policy in args.policies:
                results[f"collect_{policy}"] = bench_collect(policy, args.goals, args.simulations,
                                                             args.num_products, args.repeats)
            if args.model_goals:
                results["collect_model"] = bench_collect(model_dir, args.model_goals, args.model_simulations,
                                                         args.num_products, args.repeats)
        if "policy" not in args.skip:
            results["policy"] = bench_policy(model_dir, args.calls, args.num_samples, args.num_products)
        if "dpo" not in args.skip:
            results["dpo"] = bench_dpo(model_dir, args.pairs, args.steps, args.num_products)
    results["loadavg_after"] = os.getloadavg()
    print(_table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
