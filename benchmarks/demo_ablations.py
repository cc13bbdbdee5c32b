"""Ablations of the demo's Agent Q iteration, each a real `webgrove improve` run, scored on the
validation goals (train goals never trained or collected on) with a paired comparison to the base.

Every row starts from a finished demo's base policy and runs ONE improvement iteration on the
demo's block 1 with one setting changed (the loss, the NLL term, the pair filters, the critic,
the number of trees). Rows whose collection settings match the demo reuse its block-1 trees
(copied, then checked by `webgrove collect` against their fingerprint and settings); rows that
change the critic or the block collect their own (`critic_learned`: iteration 1 collects with a
critic trained from the base on the demo's pool blocks 2-3, `--learn-critic --critic-trees`). Prints a table and writes
benchmarks/results/demo_ablations.json with each row's exact command.

    python benchmarks/demo_ablations.py --demo runs/demo --rows sequence,choice,choice_nll
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
WEBGROVE = Path(sys.executable).parent / "webgrove"

ROWS = {  # name -> flags changed from the demo's Agent Q settings
    "sequence": [],
    "sequence_nll": ["--sft-weight", "0.5"],
    "choice": ["--loss-type", "choice_sigmoid"],
    "choice_nll": ["--loss-type", "choice_sigmoid", "--sft-weight", "0.5", "--nll-target", "choice"],
    "choice_ce": ["--loss-type", "choice_ce"],
    "choice_lr2e-3": ["--loss-type", "choice_sigmoid", "--learning-rate", "2e-3"],
    "visits2": ["--min-visits", "2"],
    "no_query_pairs": ["--pair-kinds", "product,option,navigation"],
    "critic_none": ["--critic", "none"],
    "critic_self": ["--critic", "self"],
    # the learned critic: trained from the base on the pool's trees for iteration 1 ({demo}: --demo)
    "critic_learned": ["--learn-critic", "--critic-trees", "{demo}/pool/block_2,{demo}/pool/block_3"],
    "trees100": ["--goals-per-iteration", "100"],
    "simulations6": ["--simulations", "6"],  # a stronger teacher: the search's own success roughly doubles
    "full_weights": ["--no-lora"],
    "lr2e-3": ["--learning-rate", "2e-3"],
    "epochs4": ["--epochs", "4"],
}
# flags that change what the collection does: such rows collect block 1 anew instead of reusing the demo's trees
COLLECTION_FLAGS = ("--critic", "--learn-critic", "--goals-per-iteration", "--simulations", "--k", "--max-depth",
                    "--c", "--rollout-temperature")
KEEP = ("num_products", "first_goal", "goals_per_iteration", "workers", "theta", "min_visits", "pair_kinds", "beta",
        "loss_type", "sft_weight", "nll_target", "learning_rate", "epochs", "batch_size", "val_goals", "seed",
        "critic", "simulations", "k", "max_depth", "c", "alpha", "rollout_temperature", "stop_on_success", "lora",
        "eval_simulations", "eval_k")


def base_flags(config: dict) -> list[str]:
    """The demo's loop settings as `webgrove improve` flags (values that are set)."""
    flags = []
    for key in KEEP:
        value, flag = config.get(key), key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        elif value is not None:
            flags += [f"--{flag}", str(value)]
    return flags


def run_row(demo: Path, name: str, changed: list[str], out_root: Path) -> dict:
    config = json.loads((demo / "agent_q" / "metrics.json").read_text())["config"]
    out = out_root / name
    trees = out / "iter_1" / "trees"
    changed = [flag.replace("{demo}", str(demo)) for flag in changed]
    if not trees.exists() and not any(f in changed for f in COLLECTION_FLAGS):
        shutil.copytree(demo / "agent_q" / "iter_1" / "trees", trees)  # same settings: reuse the demo's trees
    cmd = [str(WEBGROVE), "improve", "--model", config["model"], "--out", str(out), "--iterations", "1",
           *base_flags(config), *changed, "--eval-episodes", "0", "--eval-mcts-episodes", "0", "--no-progress"]
    start, load = time.perf_counter(), os.getloadavg()[0]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"row": name, "command": shlex.join(cmd), "seconds": time.perf_counter() - start, "load": load,
            "record": metrics["iterations"][1], "val_path": str(out / "iter_1" / "eval_val.json")}


def summarize(row: dict, base_val: dict) -> dict:
    from webgrove.stats import paired_comparison

    val = json.loads(Path(row["val_path"]).read_text())
    c = paired_comparison(base_val, val)
    r = row["record"]
    return {"row": row["row"], "val_success": val["success_rate"], "val_ci95": val["success_rate_ci95"],
            "vs_base": c["success_diff"], "vs_base_ci95": c["success_diff_ci95"], "p": c["mcnemar"]["p"],
            "fit_rate": (r.get("fit") or {}).get("fit_rate"), "pairs": r["pairs"]["rows"],
            "collect_success": r["collect"]["success_rate"], "seconds": row["seconds"], "load": row["load"],
            "command": row["command"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="runs/demo", help="a finished demo's folder")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {list(ROWS)}")
    parser.add_argument("--out", default="runs/ablations", help="folder of the rows' runs (a rerun resumes)")
    parser.add_argument("--json", default=str(HERE / "results" / "demo_ablations.json"))
    args = parser.parse_args()
    demo = Path(args.demo)
    base_val = json.loads((demo / "agent_q" / "iter_0" / "eval_val.json").read_text())
    table = []
    for name in args.rows.split(","):
        table.append(summarize(run_row(demo, name, ROWS[name], Path(args.out)), base_val))
        t = table[-1]
        print(f"{t['row']:<16} val {100 * t['val_success']:5.1f}%  vs base {100 * t['vs_base']:+5.1f} "
              f"[{100 * t['vs_base_ci95'][0]:+.1f}, {100 * t['vs_base_ci95'][1]:+.1f}] p {t['p']:.3f}  "
              f"fit {t['fit_rate']}  pairs {t['pairs']}  {t['seconds']:.0f}s (load {t['load']:.1f})", flush=True)
    print(f"base: validation success {100 * base_val['success_rate']:.1f}% on {base_val['episodes']} goals")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": shlex.join([sys.executable, *sys.argv]),
                                           "base_val_success": base_val["success_rate"], "rows": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
