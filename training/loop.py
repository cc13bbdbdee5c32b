"""The self-improvement loop (Agent Q): collect trees → pairs → DPO → evaluate, repeated.

`webgrove improve --model DIR --iterations N` runs, for each iteration i = 1..N:

1. **collect**: one MCTS tree per train goal of the iteration's goal block, with the current
   policy and the critic (`webgrove.search.collect`);
2. **pairs**: Agent Q's step-level preference pairs from those trees (`webgrove.training.pairs`), the
   collecting policy's log-probs as the off-policy reference;
3. **train**: DPO from the current policy (`webgrove.training.dpo`), LoRA merged into a plain model;
4. **evaluate**: the new policy on held-out test goals, greedily and with search
   (`webgrove.search.rollout`);

and records everything in OUT/metrics.json, with a plot of success rate and score per
iteration and method (OUT/metrics.png). Layout::

    OUT/iter_0/eval.json, eval_mcts.json      the starting policy's evaluation
    OUT/iter_i/trees/goal_*.jsonl             collected trees
    OUT/iter_i/pairs.jsonl, pairs_stats.json
    OUT/iter_i/model/                         the policy after iteration i
    OUT/iter_i/eval.json, eval_mcts.json
    OUT/iter_i/done.json                      written last: the iteration is finished

Rerunning the same command resumes: finished iterations are skipped, and within the
unfinished one every step whose output exists is reused (collection also skips each tree
already on disk).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from webgrove.envs.errors import UsageError
from webgrove.envs.make import group_values
from webgrove.search.args import SearchArgs
from webgrove.io import write_json_atomic

METRICS_FILE = "metrics.json"
PLOT_FILE = "metrics.png"
GREEDY, SEARCH = "agent_q", "agent_q+mcts"


@dataclass(kw_only=True)
class ImproveConfig(SearchArgs):
    """Iterate: MCTS trees on train goals → Agent Q pairs → DPO → held-out evaluation.

    The search flags (`SearchArgs`: --critic, --simulations, --k, ...) set collection; evaluation
    with search uses the same settings except --eval-simulations and --eval-k, and rolls out greedily.
    """

    model: str = field(metadata={"help": "starting policy: a model directory (e.g. after behaviour cloning)"})
    out: str = field(default="runs/improve", metadata={"help": "output directory (rerun to resume)"})
    iterations: int = field(default=2, metadata={"help": "improvement iterations"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    num_products: int | None = field(default=None, metadata={
        "help": "synthetic catalog size (shop envs; default 1000)"})
    first_goal: int = field(default=0, metadata={"help": "first train goal; iteration i collects the i-th block"})
    goals_per_iteration: int = field(default=40, metadata={"help": "trees (train goals) collected per iteration"})
    workers: int = field(default=1, metadata={"help": "worker processes for collection and evaluation"})
    theta: float = field(default=0.1, metadata={"help": "minimum value gap of a preference pair"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta"})
    sft_weight: float = field(default=0.0, metadata={"help": "NLL on chosen added to DPO (RPO); 0: plain DPO"})
    learning_rate: float = field(default=5e-4, metadata={"help": "DPO learning rate"})
    epochs: float = field(default=2.0, metadata={"help": "DPO epochs over each iteration's pairs"})
    batch_size: int = field(default=8, metadata={"help": "DPO batch size"})
    lora: bool = field(default=True, metadata={"help": "DPO with a LoRA adapter (merged after each iteration)"})
    eval_episodes: int = field(default=200, metadata={"help": "held-out test episodes per evaluation (0: none)"})
    eval_mcts_episodes: int = field(default=200, metadata={"help": "held-out episodes with search (0: none)"})
    eval_simulations: int | None = field(default=None, metadata={
        "help": "MCTS simulations per step at evaluation (default: --simulations)"})
    eval_k: int | None = field(default=None, metadata={
        "help": "proposals per node at evaluation (default: --k)"})
    eval_start: bool = field(default=True, metadata={"help": "also evaluate the starting policy (iteration 0)"})
    seed: int = field(default=0, metadata={"help": "seed of collection, training and evaluation"})
    progress: bool = field(default=True, metadata={"help": "show progress bars (only when stderr is a terminal)"})

    def __post_init__(self) -> None:
        checks = {"iterations": self.iterations >= 1, "goals_per_iteration": self.goals_per_iteration >= 1,
                  "workers": self.workers >= 1,
                  "theta": self.theta >= 0, "beta": self.beta > 0, "eval_episodes": self.eval_episodes >= 0,
                  "eval_mcts_episodes": self.eval_mcts_episodes >= 0, "first_goal": self.first_goal >= 0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise UsageError("invalid " + ", ".join(f"--{k.replace('_', '-')} {getattr(self, k)!r}" for k in bad))
        super().__post_init__()  # the search settings


# ---------------------------------------------------------------------------------------
# One step of an iteration each; every one returns its result and writes it where the
# next run finds it.

def iteration_dir(cfg: ImproveConfig, i: int) -> Path:
    return Path(cfg.out) / f"iter_{i}"


def model_dir(cfg: ImproveConfig, i: int) -> str:
    """The policy after iteration i (iteration 0: the starting model)."""
    return cfg.model if i == 0 else str(iteration_dir(cfg, i) / "model")


def goal_block(cfg: ImproveConfig, i: int) -> str:
    """Train goals of iteration i (1-based) as "A:B"."""
    start = cfg.first_goal + (i - 1) * cfg.goals_per_iteration
    return f"{start}:{start + cfg.goals_per_iteration}"


def collect_config(cfg: ImproveConfig, policy: str, goals: str, out: str | Path):
    """The `webgrove collect` settings the loop uses (the demo collects its baselines' trees alike)."""
    from webgrove.search.collect import CollectConfig

    # force_new: the loop owns its folders; trees of a model since retrained are collected anew
    return CollectConfig(env=cfg.env, policy=policy, split="train", goal_range=goals,
                         out=str(out), workers=cfg.workers, **group_values(cfg, SearchArgs), seed=cfg.seed,
                         num_products=cfg.num_products, progress=cfg.progress, force_new=True)


def dpo_config(cfg: ImproveConfig, start_model: str, pairs: str | Path, out: str | Path):
    from webgrove.training.dpo import DPORunConfig

    return DPORunConfig(model=start_model, out=str(out), pairs=str(pairs), beta=cfg.beta,
                        sft_weight=cfg.sft_weight,
                        learning_rate=cfg.learning_rate, epochs=cfg.epochs, batch_size=cfg.batch_size,
                        lora=cfg.lora, seed=cfg.seed, progress=cfg.progress, logging_steps=5)


def eval_config(cfg: ImproveConfig, model: str, mcts: bool, json_path: str | Path):
    from webgrove.search.rollout import RolloutConfig

    search = dict(group_values(cfg, SearchArgs), simulations=cfg.eval_simulations or cfg.simulations,
                  k=cfg.eval_k or cfg.k, rollout_temperature=0.0)  # evaluation rolls out greedily
    return RolloutConfig(policy=model, env=cfg.env, split="test",
                         episodes=cfg.eval_mcts_episodes if mcts else cfg.eval_episodes,
                         seed=cfg.seed, mcts=mcts, **search, num_products=cfg.num_products,
                         workers=cfg.workers, json=str(json_path), progress=cfg.progress)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, data) -> None:
    write_json_atomic(path, data, allow_nan=True)


def cached_eval(cfg: ImproveConfig, model: str, mcts: bool, path: Path) -> dict | None:
    """The evaluation at `path` if it was run, else run it now (None when disabled)."""
    from webgrove.search.rollout import rollout

    if (cfg.eval_mcts_episodes if mcts else cfg.eval_episodes) == 0:
        return None
    done = _read_json(path)
    return done if done is not None else rollout(eval_config(cfg, model, mcts, path))


def metric_entry(summary: dict | None) -> dict | None:
    return None if summary is None else {k: summary[k] for k in ("success_rate", "score", "episodes")}


def run_iteration(cfg: ImproveConfig, i: int, log: Callable[[str], None] = print) -> dict:
    """Iteration i (1-based): collect, build pairs, train, evaluate. Returns its record."""
    from webgrove.search.collect import run_collect
    from webgrove.training.dpo import train_dpo
    from webgrove.training.pairs import PairsConfig, build_pairs_file

    d = iteration_dir(cfg, i)
    seconds: dict[str, float] = {}
    policy = model_dir(cfg, i - 1)

    t = time.perf_counter()
    collected = run_collect(collect_config(cfg, policy, goal_block(cfg, i), d / "trees"))
    seconds["collect"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = build_pairs_file(PairsConfig(trees=str(d / "trees"), out=str(d / "pairs.jsonl"), kind="agentq",
                                         theta=cfg.theta))
    _write_json(d / "pairs_stats.json", stats)
    seconds["pairs"] = time.perf_counter() - t
    log(f"improve: iteration {i}: {stats['rows']} pairs from {stats['trees']} trees")

    t = time.perf_counter()
    model = str(d / "model")
    if (Path(model) / "config.json").is_file():
        train = _read_json(Path(model) / "train_result.json") or {}
    elif stats["rows"] == 0:
        print(f"improve: iteration {i}: no preference pairs in {d / 'trees'} (theta={cfg.theta}); the policy "
              "stays as it was (collect more goals or simulations, or lower --theta)", file=sys.stderr)
        shutil.copytree(policy, model, ignore=shutil.ignore_patterns("checkpoints"))
        train = {"note": "no pairs: policy unchanged"}
    else:
        train = train_dpo(dpo_config(cfg, policy, d / "pairs.jsonl", model))
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    greedy = cached_eval(cfg, model, False, d / "eval.json")
    search = cached_eval(cfg, model, True, d / "eval_mcts.json")
    seconds["eval"] = time.perf_counter() - t
    record = {
        "iteration": i, "model": model, "goals": goal_block(cfg, i),
        "collect": {k: collected[k] for k in ("trees", "nodes", "success_rate", "score")},
        "pairs": {k: v for k, v in stats.items() if k != "out"},
        "train": {k: train.get(k) for k in ("steps", "train_loss", "seconds", "tokens_per_second", "note")},
        GREEDY: metric_entry(greedy), SEARCH: metric_entry(search), "seconds": seconds,
    }
    _write_json(d / "done.json", record)
    return record


def start_record(cfg: ImproveConfig) -> dict:
    """Iteration 0: the starting policy's evaluation (cached in OUT/iter_0)."""
    d = iteration_dir(cfg, 0)
    greedy = cached_eval(cfg, cfg.model, False, d / "eval.json") if cfg.eval_start else None
    search = cached_eval(cfg, cfg.model, True, d / "eval_mcts.json") if cfg.eval_start else None
    return {"iteration": 0, "model": cfg.model, GREEDY: metric_entry(greedy), SEARCH: metric_entry(search)}


def run_improve(cfg: ImproveConfig) -> dict:
    """Run (or resume) the loop; returns the metrics written to OUT/metrics.json."""
    from webgrove.training.plots import plot_iterations

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [start_record(cfg)]
    for i in range(1, cfg.iterations + 1):
        done = _read_json(iteration_dir(cfg, i) / "done.json")
        if done is not None:
            print(f"improve: iteration {i} already finished; skipping")
            records.append(done)
            continue
        records.append(run_iteration(cfg, i))
        r = records[-1]
        evals = [f"{m} success {r[m]['success_rate']:.3f} score {r[m]['score']:.1f}" for m in (GREEDY, SEARCH) if r[m]]
        if evals:
            print(f"improve: iteration {i}: " + ", ".join(evals))
    metrics = {"iterations": records, "config": asdict(cfg), "final_model": model_dir(cfg, cfg.iterations)}
    _write_json(out / METRICS_FILE, metrics)
    plot_iterations(records, out / PLOT_FILE, methods=(GREEDY, SEARCH))
    return metrics


def run_improve_command(cfg: ImproveConfig) -> int:
    metrics = run_improve(cfg)
    print(f"improve: metrics in {Path(cfg.out) / METRICS_FILE}, plot in {Path(cfg.out) / PLOT_FILE}, "
          f"final model {metrics['final_model']}", file=sys.stdout)
    return 0
