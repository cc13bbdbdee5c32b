"""Training throughput: DPO through our wrapper versus bare TRL, tree collection, the demo's phases.

1. DPO step time and tokens/s on the same pairs and model (LoRA):
   - `webgrove` — `webgrove.training.dpo.train_dpo`, reference log-probs stored in the pairs;
   - `trl (precomputed ref)` — a bare `trl.DPOTrainer` with `precompute_ref_log_probs=True`:
     the same training steps, after TRL's own pass over the data for the reference
     (timed separately as `ref_pass_s`);
   - `trl (ref each step)` — bare TRL's default with PEFT: the reference is the model with
     the adapter disabled, one extra forward per step.
   - `webgrove choice_sigmoid` / `webgrove choice_ce` — the choice-level losses
     (`webgrove.training.choice`) on the same pairs, every available action as the
     candidate set, reference choice log-probs stored too.
   The wrapper's overhead is its step time over the precomputed-reference run's; the
   choice-level cost is its step time over plain DPO's through the wrapper (same run).
2. Collection: seconds per MCTS tree with the model policy and the lexical critic.
3. The demo's wall time by phase, read from runs/demo/results.json when it exists.

Pairs come from oracle demonstrations (chosen: the oracle's action; rejected: another
available action), their reference log-probs from the starting model. Prints tables and
writes benchmarks/results/training.json with the command line and the load average
(timings on a busy machine are slower; compare runs made under the same load).

    python benchmarks/training.py                        # fresh tiny model, 64 pairs, 12 steps
    python benchmarks/training.py --model runs/demo/base --pairs 128 --steps 20
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "training.json"


def make_pairs(model_dir: str, n: int, num_products: int, seed: int) -> list[dict]:
    """n preference pairs from oracle demonstrations, reference log-probs from the model."""
    import numpy as np

    from webgrove.agents.hf import HFPolicy
    from webgrove.agents.prompts import action_completion
    from webgrove.training.dpo import completion_logprobs
    from webgrove.training.sft import demonstration_rows, load_model

    demos = demonstration_rows(split="train", goals=range(max(4, n // 3)), seed=seed, num_products=num_products)
    rng = np.random.default_rng(seed)
    rows = []
    for d in demos[:n]:
        actions = [line for line in d["prompt"].splitlines() if line.startswith("Actions: ")][0][9:].split(" | ")
        others = [a for a in actions if action_completion(a) != d["completion"] and a not in ("search[...]", "...")]
        rejected = action_completion(others[int(rng.integers(len(others)))] if others else "click[back to search]")
        candidates = list(dict.fromkeys([d["completion"], rejected] + [action_completion(a) for a in others]))
        rows.append({"prompt": d["prompt"], "chosen": d["completion"], "rejected": rejected, "candidates": candidates})
    model, tokenizer = load_model(model_dir)
    prompts = [r["prompt"] for r in rows]
    for key, col in (("chosen", "ref_chosen_logps"), ("rejected", "ref_rejected_logps")):
        for r, lp in zip(rows, completion_logprobs(model, tokenizer, prompts, [r[key] for r in rows])):
            r[col] = lp
    policy = HFPolicy(model, tokenizer, device="cpu")
    for r in rows:  # the acting policy's choice log-probs over the candidates: the stored choice reference
        choice = policy.score_choices(r["prompt"], r["candidates"])[1]
        r["ref_chosen_choice_logps"], r["ref_rejected_choice_logps"] = choice[0], choice[1]
    return rows


def dpo_tokens(trainer) -> int:
    ds = trainer.train_dataset
    return sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"]))


def run_wrapper(cfg, rows) -> dict:
    from webgrove.training.dpo import make_dpo_trainer

    start = time.perf_counter()
    trainer = make_dpo_trainer(cfg, rows)
    setup = time.perf_counter() - start
    t = time.perf_counter()
    out = trainer.train()
    return {"setup_s": setup, "train_s": time.perf_counter() - t, "steps": out.global_step,
            "tokens": dpo_tokens(trainer), "ref_pass_s": 0.0}


def run_bare_trl(cfg, rows, precompute: bool) -> dict:
    """The same DPOConfig and LoRA config straight into trl.DPOTrainer."""
    from datasets import Dataset
    from trl import DPOTrainer

    from webgrove.training.sft import load_model, lora_config

    start = time.perf_counter()
    model, tokenizer = load_model(cfg.model)
    args = cfg.to_trl()
    args.precompute_ref_log_probs = precompute
    columns = ("prompt", "chosen", "rejected")
    dataset = Dataset.from_list([{c: r[c] for c in columns} for r in rows])
    t = time.perf_counter()
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(cfg))
    ref_pass = time.perf_counter() - t if precompute else 0.0  # the precompute runs in __init__
    setup = time.perf_counter() - start
    t = time.perf_counter()
    out = trainer.train()
    return {"setup_s": setup, "train_s": time.perf_counter() - t, "steps": out.global_step,
            "tokens": dpo_tokens(trainer), "ref_pass_s": ref_pass}


def bench_dpo(model_dir: str, rows: list[dict], steps: int, batch_size: int, repeats: int, workdir: Path) -> list[dict]:
    from webgrove.training.dpo import DPORunConfig

    variants = {  # name: (run, loss type)
        "webgrove (stored ref)": (lambda cfg: run_wrapper(cfg, rows), "sigmoid"),
        "trl (precomputed ref)": (lambda cfg: run_bare_trl(cfg, rows, precompute=True), "sigmoid"),
        "trl (ref each step)": (lambda cfg: run_bare_trl(cfg, rows, precompute=False), "sigmoid"),
        "webgrove choice_sigmoid": (lambda cfg: run_wrapper(cfg, rows), "choice_sigmoid"),
        "webgrove choice_ce": (lambda cfg: run_wrapper(cfg, rows), "choice_ce"),
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for rep in range(repeats):  # interleaved, so a change in load hits every variant alike
        for i, (name, (run, loss_type)) in enumerate(variants.items()):
            cfg = DPORunConfig(model=model_dir, out=str(workdir / f"dpo_{rep}_{i}"), pairs="-", max_steps=steps,
                               batch_size=batch_size, progress=False, logging_steps=steps, loss_type=loss_type)
            runs[name].append(run(cfg))
            print(f"  {name} run {rep + 1}: {runs[name][-1]['train_s']:.2f}s", flush=True)
    table = []
    for name, rs in runs.items():
        step_s = min(r["train_s"] / r["steps"] for r in rs)  # best of the repeats: least disturbed by load
        tokens_per_step = rs[0]["tokens"] / len(rows) * batch_size
        table.append({"variant": name, "step_s": step_s, "tokens_per_s": tokens_per_step / step_s,
                      "ref_pass_s": statistics.median(r["ref_pass_s"] for r in rs),
                      "setup_s": statistics.median(r["setup_s"] for r in rs), "runs": rs})
    base, plain = table[1]["step_s"], table[0]["step_s"]
    for row in table:
        row["vs_trl_precomputed"] = row["step_s"] / base - 1.0
        row["vs_webgrove_sequence_dpo"] = row["step_s"] / plain
    return table


def bench_collect(model_dir: str, trees: int, simulations: int, k: int, num_products: int,
                  seed: int, workdir: Path) -> dict:
    from webgrove.search.collect import CollectConfig, run_collect

    cfg = CollectConfig(policy=model_dir, critic="lexical", split="train", goal_range=f"0:{trees}",
                        out=str(workdir / "trees"), simulations=simulations, k=k, seed=seed,
                        num_products=num_products, progress=False)
    summary = run_collect(cfg)
    return {"trees": summary["trees"], "seconds": summary["seconds"],
            "seconds_per_tree": summary["seconds"] / max(1, summary["trees"]),
            "nodes_per_tree": summary["nodes"] / max(1, summary["trees"]), "simulations": simulations, "k": k,
            "simulations_per_second": summary["simulations_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: a fresh init-model --size SIZE)")
    parser.add_argument("--size", default="tiny", help="init-model size when --model is not given")
    parser.add_argument("--pairs", type=int, default=64, help="preference pairs")
    parser.add_argument("--steps", type=int, default=12, help="DPO steps per run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (the fastest is reported)")
    parser.add_argument("--trees", type=int, default=6, help="trees to collect (0: skip)")
    parser.add_argument("--simulations", type=int, default=3)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--num-products", type=int, default=1000)
    parser.add_argument("--demo", default="runs/demo/results.json", help="demo results to read phases from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            from webgrove.training.tiny import init_model

            model_dir = str(init_model(workdir / "model", size=args.size, seed=args.seed))
        rows = make_pairs(model_dir, args.pairs, args.num_products, args.seed)
        print(f"DPO: {len(rows)} pairs, {args.steps} steps of batch {args.batch_size}, LoRA, {model_dir}")
        dpo = bench_dpo(model_dir, rows, args.steps, args.batch_size, args.repeats, workdir)
        collect = (bench_collect(model_dir, args.trees, args.simulations, args.k, args.num_products,
                                 args.seed, workdir) if args.trees else None)

    print()
    print("| variant | s/step | tokens/s | vs TRL (precomputed ref) | × webgrove sequence DPO | reference pass s |")
    print("|---|---|---|---|---|---|")
    for r in dpo:
        print(f"| {r['variant']} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | {100 * r['vs_trl_precomputed']:+.1f}% "
              f"| {r['vs_webgrove_sequence_dpo']:.2f} | {r['ref_pass_s']:.2f} |")
    if collect:
        print(f"\ncollection: {collect['trees']} trees, {collect['seconds_per_tree']:.2f} s/tree, "
              f"{collect['nodes_per_tree']:.0f} nodes/tree ({args.simulations} simulations per step, k={args.k})")
    demo = None
    if Path(args.demo).is_file():
        demo = json.loads(Path(args.demo).read_text())
        print(f"\ndemo ({args.demo}): {demo['seconds']:.0f}s in all")
        print("| phase | seconds |\n|---|---|")
        for phase, s in demo.get("phases", {}).items():
            print(f"| {phase} | {s:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join(["python"] + sys.argv), "model": args.model or f"fresh {args.size}",
        "pairs": len(rows), "steps": args.steps, "batch_size": args.batch_size, "repeats": args.repeats,
        "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "dpo": dpo, "collect": collect,
        "demo_phases": demo.get("phases") if demo else None, "demo_seconds": demo.get("seconds") if demo else None,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
