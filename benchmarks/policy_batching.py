"""Policy calls per second of a tiny transformers policy, batched scoring versus one pass per action.

Builds a fresh tiny model (`webgrove.training.tiny.init_model`, tokenizer trained on shop text),
collects real shop steps that offer clicks (the oracle and the random agent playing
`webgrove/WebShop-v0`), then times `HFPolicy.propose(ctx, k)` over those steps with
`batching=True` (the prompt once, all candidates in one right-padded batch on its
key/value cache) and `batching=False` (prompt + candidate per forward pass). Both must
give the same log-probabilities; the script checks it. Prints a table and writes
benchmarks/results/policy_batching.json.

    python benchmarks/policy_batching.py
    python benchmarks/policy_batching.py --size small --arch llama --steps 30
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "policy_batching.json"


def shop_steps(num_steps: int, num_products: int = 300, seed: int = 0) -> list:
    """`num_steps` StepContexts from real shop pages that offer clicks (no search bar)."""
    import gymnasium as gym
    import numpy as np

    import webgrove.envs  # noqa: F401
    from webgrove.agents.base import context_from
    from webgrove.agents.scripted import OraclePolicy, RandomPolicy

    env = gym.make("webgrove/WebShop-v0", split="test", num_products=num_products)
    policies = [OraclePolicy(env), RandomPolicy()]
    rng = np.random.default_rng(seed)
    steps, episode = [], 0
    while len(steps) < num_steps:
        obs, info = env.reset(seed=seed + episode)
        policy, history, done = policies[episode % 2], [], False
        while not done and len(steps) < num_steps:
            ctx = context_from(obs, info, history)
            if "search[...]" not in ctx.available_actions:
                steps.append(ctx)
            action = policy.act(ctx, rng)
            obs, _, terminated, truncated, info = env.step(action)
            history.append(action)
            done = terminated or truncated
        episode += 1
    env.close()
    return steps


def benchmark_policy_batching(size: str = "tiny", arch: str = "gpt2", steps: int = 40, k: int = 5,
                              repeats: int = 2, model_dir: str | None = None, device: str | None = None,
                              threads: int | None = None) -> dict:
    """Time `propose` with batching on and off over real shop steps; returns the summary dict.

    Args:
        size, arch: the model `init_model` builds (ignored when `model_dir` is given).
        steps: shop steps to score (each scores all its click actions).
        k: proposals asked per call.
        repeats: timed passes over the steps (after one warm-up pass).
        model_dir: an existing model directory instead of a fresh tiny model.
        device: "cpu" / "cuda"; the policy's default when None.
        threads: torch CPU threads (None: leave torch's default).
    """
    import numpy as np
    import torch

    from webgrove.agents.hf import HFPolicy
    from webgrove.training.tiny import count_parameters, init_model

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(model_dir) if model_dir else init_model(Path(tmp) / "model", size=size, arch=arch)
        contexts = shop_steps(steps)
        rows, scores = [], {}
        for batching in (True, False):
            policy = HFPolicy(path, device=device, batching=batching, cache_size=0)  # time scoring itself
            scores[batching] = [policy.logprobs(c, c.available_actions) for c in contexts]  # warm-up
            policy.forward_calls = 0
            start = time.perf_counter()
            for r in range(repeats):
                rng = np.random.default_rng(r)
                for c in contexts:
                    policy.propose(c, k, rng)
            seconds = time.perf_counter() - start
            calls = repeats * len(contexts)
            candidates = repeats * sum(len(c.available_actions) for c in contexts)
            rows.append({"batching": batching, "calls": calls, "seconds": round(seconds, 4),
                         "calls_per_s": round(calls / seconds, 2),
                         "candidates_per_s": round(candidates / seconds, 1),
                         "forward_calls_per_call": round(policy.forward_calls / calls, 2)})
        params = count_parameters(policy.model)
        device_name = str(policy.device)
    diff = max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(scores[True], scores[False]))
    return {
        "benchmark": "policy_batching",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "",
        "model": {"size": size, "arch": arch, "parameters": params, "dir": model_dir},
        "steps": len(contexts), "k": k, "repeats": repeats,
        "mean_candidates": round(float(np.mean([len(c.available_actions) for c in contexts])), 2),
        "device": device_name, "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "max_abs_logprob_difference": diff,
        "rows": rows,
        "speedup": round(rows[0]["calls_per_s"] / rows[1]["calls_per_s"], 2),
    }


def print_table(result: dict) -> None:
    m = result["model"]
    print(f"{m['arch']} {m['size']} ({m['parameters'] / 1e6:.2f} M params) on {result['device']}, "
          f"{result['torch_threads']} threads; {result['steps']} shop steps, "
          f"{result['mean_candidates']} candidates each, k={result['k']}")
    print(f"{'batching':>9} {'calls/s':>9} {'cands/s':>9} {'fwd/call':>9} {'seconds':>8}")
    for r in result["rows"]:
        print(f"{str(r['batching']):>9} {r['calls_per_s']:>9.2f} {r['candidates_per_s']:>9.1f} "
              f"{r['forward_calls_per_call']:>9.2f} {r['seconds']:>8.2f}")
    print(f"speedup {result['speedup']}x; max |logprob difference| {result['max_abs_logprob_difference']:.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"])
    parser.add_argument("--steps", type=int, default=20, help="shop steps to score")
    parser.add_argument("--k", type=int, default=5, help="proposals per call")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the steps")
    parser.add_argument("--model-dir", default=None, help="use this model directory instead of a fresh one")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=str(RESULTS), help="JSON output path")
    args = parser.parse_args(argv)
    result = benchmark_policy_batching(args.size, args.arch, args.steps, args.k, args.repeats,
                                       args.model_dir, args.device, args.threads)
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if result["max_abs_logprob_difference"] < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
