"""Critics at inference: the same policy searching with each critic, on the validation goals.

Agent Q's AI feedback must earn its place: `--critic self` (the prompted self-critique) and
a learned self-critic (`webgrove train critic` on the policy's own trees) against no critic
at all (`none`: the search ranks unvisited proposals by nothing but their order) and the
hand-written `lexical` baseline. Every row is a real `webgrove rollout --mcts` on the same
goals and seeds; each is compared goal by goal with the `none` row (paired bootstrap
interval, McNemar's exact p). With `--train NAME=TREES` a learned critic is trained first
(`webgrove train critic --model POLICY --trees TREES`, default settings, plus `--train-args
NAME=FLAGS`) and used as row NAME.

A rerun reuses a critic whose `<NAME>.train.json` records the same settings, starting policy and
training code, and a rollout whose `.meta.json` records the same command and the same policy and
critic fingerprints.

    T=runs/demo/agent_q/iter_1/trees,runs/demo/pool/block_2,runs/demo/pool/block_3
    python benchmarks/critics.py --policy runs/demo/base --train learned=$T \\
        --train pointwise=$T --train-args "pointwise=--rank-weight 0"

Prints the table and writes benchmarks/results/critics.json with every command.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
WEBGROVE = Path(sys.executable).parent / "webgrove"
sys.path.insert(0, str(HERE.parent))


def run(cmd: list[str]) -> float:
    """Run a webgrove command (one torch thread per process); its wall seconds."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def rollout_cmd(args, critic: str, out: Path) -> list[str]:
    return [str(WEBGROVE), "rollout", "--policy", args.policy, "--split", "train", "--start-goal", str(args.start_goal),
            "--episodes", str(args.episodes), "--mcts", "--simulations", str(args.simulations), "--k", str(args.k),
            "--max-depth", str(args.max_depth), "--critic", critic, "--workers", str(args.workers),
            "--seed", str(args.seed), "--no-progress", "--json", str(out)]


def train_critic_row(args, name: str, trees: str, flags: list[str], out: Path) -> dict:
    """Train (or reuse) the learned critic of row `name`; the row. A critic is reused when its
    `<out>/<name>.train.json` names the same settings, starting policy and training code."""
    import hashlib
    from dataclasses import asdict

    import webgrove.agents.critics
    import webgrove.training.critic_train
    from webgrove.agents.fingerprint import policy_fingerprint
    from webgrove.cli import parse_config

    cmd = [str(WEBGROVE), "train", "critic", "--trees", trees, "--model", args.policy, "--out", str(out / name), *flags]
    code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes()
                                   for m in (webgrove.training.critic_train, webgrove.agents.critics))).hexdigest()
    made = {"settings": asdict(parse_config(("train", "critic"), cmd[3:])), "code_sha256": code,
            "policy_fingerprint": policy_fingerprint(args.policy)}
    made_path = out / f"{name}.train.json"
    reused = made_path.is_file() and json.loads(made_path.read_text()) == made
    seconds = 0.0 if reused else run(cmd)
    made_path.write_text(json.dumps(made))
    info = json.loads((out / name / "critic.json").read_text())
    return {"name": name, "critic": str(out / name), "train_command": shlex.join(cmd), "train_s": seconds,
            "train_reused": reused, "train_rows": info["train_rows"], "train_pairs": info.get("train_pairs"),
            "val_sibling_accuracy": info["val_after"]["sibling_accuracy"]}


def rollout_row(args, row: dict, out: Path) -> None:
    """Run (or reuse) row's search on the validation goals; adds command, seconds and result."""
    from webgrove.agents.fingerprint import model_fingerprint, policy_fingerprint

    result_path, meta_path = out / f"rollout_{row['name']}.json", out / f"rollout_{row['name']}.meta.json"
    cmd = rollout_cmd(args, row["critic"], result_path)
    critic_dir = Path(row["critic"])
    meta = {"command": shlex.join(cmd), "policy_fingerprint": policy_fingerprint(args.policy),
            "critic_fingerprint": model_fingerprint(critic_dir) if critic_dir.is_dir() else row["critic"]}
    reused = result_path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == meta
    seconds = None if reused else run(cmd)
    if not reused:
        meta_path.write_text(json.dumps(meta))
    row.update(command=meta["command"], seconds=seconds, reused=reused, result=json.loads(result_path.read_text()))


def main() -> int:
    from webgrove.stats import paired_comparison

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="the searching policy (a model directory)")
    parser.add_argument("--critics", default="none,lexical,self", help="critic specs, comma-separated; none first")
    parser.add_argument("--train", action="append", default=[], metavar="NAME=TREES",
                        help="train a learned critic on these tree folders (comma-separated) and add row NAME")
    parser.add_argument("--train-args", action="append", default=[], metavar="NAME=FLAGS",
                        help="more `webgrove train critic` flags for row NAME, e.g. 'pointwise=--rank-weight 0'")
    parser.add_argument("--start-goal", type=int, default=1645, help="first validation goal (train split)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--simulations", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/critics", help="folder for critics and rollout results")
    parser.add_argument("--json", default=str(HERE / "results" / "critics.json"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"name": c, "critic": c} for c in args.critics.split(",") if c]
    if not rows or rows[0]["critic"] != "none":
        parser.error("--critics must start with none (every row is compared with it)")
    extra = dict(spec.split("=", 1) for spec in args.train_args)
    for spec in args.train:
        name, _, trees = spec.partition("=")
        if not name or not trees:
            parser.error(f"--train wants NAME=TREES, got {spec!r}")
        rows.append(train_critic_row(args, name, trees, shlex.split(extra.get(name, "")), out))
    for row in rows:
        rollout_row(args, row, out)
    none = rows[0]["result"]
    print(f"\n{'critic':<14} {'success %':>22} {'score':>6} {'vs none, points [95% CI]':>28} {'p':>6} {'s':>5}")
    for row in rows:
        r = row["result"]
        lo, hi = r["success_rate_ci95"]
        cmp = paired_comparison(none, r) if row is not rows[0] else None
        row["vs_none"] = cmp
        diff = (f"{100 * cmp['success_diff']:+.1f} [{100 * cmp['success_diff_ci95'][0]:+.1f}, "
                f"{100 * cmp['success_diff_ci95'][1]:+.1f}]") if cmp else "-"
        p = f"{cmp['mcnemar']['p']:.3f}" if cmp else "-"
        seconds = "reused" if row["reused"] else f"{row['seconds']:.0f}"
        print(f"{row['name']:<14} {100 * r['success_rate']:>6.1f} [{100 * lo:4.1f}, {100 * hi:4.1f}]"
              f"{r['score']:>13.1f} {diff:>28} {p:>6} {seconds:>6}")
        if cmp:
            print(f"{'':<14} score vs none {cmp['score_diff']:+.1f} [{cmp['score_diff_ci95'][0]:+.1f}, "
                  f"{cmp['score_diff_ci95'][1]:+.1f}]")
    for row in rows:
        row["result"] = {k: row["result"][k] for k in ("success_rate", "success_rate_ci95", "score", "score_ci95",
                                                        "policy_fingerprint", "goal_ids", "successes", "rewards")}
    Path(args.json).write_text(json.dumps({"command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                                           "load_average": os.getloadavg(), "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
