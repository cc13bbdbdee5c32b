"""Run the self-contained benchmark scripts of this folder, one after another (`make bench`).

The others need a demo's models or take an hour (demo, rise, catalog's 1M products, critics,
ablations, scale); the README prints the command next to each of their figures.

Each script prints its own table and writes benchmarks/results/<name>.json.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = ["shop_env.py", "search.py", "policy_batching.py", "browser_env.py", "training.py", "ceiling.py"]


def main() -> int:
    here = Path(__file__).parent
    failed = []
    for name in SCRIPTS:
        path = here / name
        if not path.exists():
            print(f"skip {name}: not present")
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(path)]).returncode != 0:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
