"""The demo's wall time by phase (and its results table), with the exact command and the load.

Runs `webgrove demo` (extra arguments after `--` go to it) into OUT, or reads a finished run
with `--results OUT/results.json`, then prints seconds and share per phase and writes
benchmarks/results/demo.json with the command, the load average before and after, and the
phases. The machine is shared: the load average says how far the figures are from an idle one.

    python benchmarks/demo.py --out runs/bench_demo -- --eval-episodes 200
    python benchmarks/demo.py --results runs/demo/results.json
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


def run_demo(out: str, extra: list[str]) -> tuple[dict, list[str], float]:
    cmd = [str(WEBGROVE), "demo", "--out", out, *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return json.loads((Path(out) / "results.json").read_text()), cmd, time.perf_counter() - start


def phase_table(results: dict) -> str:
    total = results["seconds"]
    lines = [f"{'phase':<14} {'seconds':>9} {'share %':>8}", "-" * 33]
    lines += [f"{p:<14} {s:>9.1f} {100 * s / total:>8.1f}" for p, s in results["phases"].items()]
    lines.append(f"{'total':<14} {total:>9.1f} {100.0:>8.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_demo", help="demo output folder (a rerun resumes)")
    parser.add_argument("--results", help="read this finished results.json instead of running the demo")
    parser.add_argument("--json", default=str(HERE / "results" / "demo.json"), help="where to write the figures")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    load_before = os.getloadavg()
    if args.results:
        results, cmd, wall = json.loads(Path(args.results).read_text()), None, None
    else:
        results, cmd, wall = run_demo(args.out, extra)
    from webgrove.training.demo import format_tables

    print(format_tables(results))
    print(phase_table(results))
    record = {"command": shlex.join([sys.executable, *sys.argv]), "demo_command": shlex.join(cmd) if cmd else
              results.get("provenance", {}).get("command"), "wall_seconds": wall, "phases": results["phases"],
              "seconds": results["seconds"], "load_before": list(load_before), "load_after": list(os.getloadavg()),
              "demo_load_average": results.get("provenance", {}).get("load_average"),
              "methods": {m: {k: r[k] for k in ("success_rate", "success_rate_ci95", "score", "score_ci95")}
                          for m, r in results["methods"].items()}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
