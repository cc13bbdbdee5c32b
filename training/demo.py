"""`webgrove demo` (what `make demo` runs): the whole story on a CPU, from nothing.

Phases (each timed; a rerun reuses every finished output under OUT):

1. **init**: a tiny causal LM and a BPE tokenizer trained on shop text (`webgrove.training.tiny`);
2. **bc**: behaviour cloning on oracle demonstrations of train goals (`webgrove.training.sft`)
   gives the base policy;
3. **collect**: MCTS trees with the base policy on two blocks of fresh train goals: the
   offline pool every baseline learns from. Block 1 is also Agent Q's first iteration;
4. **baselines**: RFT (SFT on successful trajectories), outcome-supervised DPO
   (success-vs-failure pairs) and Agent-R (revision trajectories), each from the base policy
   on the whole pool;
5. **agent_q**: two iterations of the improvement loop (`webgrove.training.loop`): DPO on Agent Q's
   step-level pairs of block 1; then trees on block 2 with the improved policy, DPO again.
   Every method thus learns from the same number of trees (equal collection budget);
6. **eval**: every policy on the same held-out test goals, greedily, and the base and
   Agent Q policies also with search (MCTS at inference).

Writes OUT/results.json ({"methods": {name: {success_rate, score, episodes}}, "seconds",
"phases", ...}) and OUT/results.png, and prints a results table and a wall-time table.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from webgrove.io import write_json_atomic

# The demo's default model is smaller than init-model's "tiny" (2.2 M parameters): measured on
# 2 CPU cores, "tiny" alone needs more than 20 minutes for behaviour cloning plus evaluation.
# (layers, width, heads), registered with training.tiny so that init_model builds it.
DEMO_SIZES = {"micro": (2, 128, 4)}

RESULTS_FILE = "results.json"
PLOT_FILE = "results.png"
METHODS = ("base", "base+mcts", "rft", "outcome_dpo", "agent_r", "agent_q", "agent_q+mcts")


@dataclass
class DemoConfig:
    """Init a tiny model, clone the oracle, then compare RFT, outcome DPO, Agent-R and Agent Q."""

    out: str = field(default="runs/demo", metadata={"help": "output directory (rerun to resume)"})
    size: str = field(default="micro", metadata={
        "help": "model size: micro (0.6 M parameters as Llama, the CPU demo), tiny, small",
        "choices": ["micro", "tiny", "small"]})
    arch: str = field(default="llama", metadata={
        "help": "architecture of the fresh model: llama (rotary positions; after 300 steps of copying the goal "
                "into a query its loss was 0.09 against gpt2's 0.33) or gpt2", "choices": ["llama", "gpt2"]})
    init: str | None = field(default=None, metadata={
        "help": "start from this model directory instead of a fresh init-model (e.g. a bigger model on a GPU)"})
    num_products: int = field(default=1000, metadata={"help": "synthetic catalog size"})
    demo_goals: int = field(default=300, metadata={
        "help": "train goals with oracle demonstrations (behaviour cloning)"})
    query_goals: int = field(default=1400, metadata={
        "help": "more train goals (after the collection blocks) whose first step, the search query, is also "
                "demonstrated: short prompts, so cheap, and writing the query is what a fresh model needs most"})
    query_repeats: int = field(default=2, metadata={"help": "copies of each query demonstration in the BC data"})
    bc_epochs: float = field(default=5.0, metadata={"help": "behaviour-cloning epochs"})
    bc_learning_rate: float = field(default=3e-3, metadata={"help": "behaviour-cloning learning rate"})
    goals_per_iteration: int = field(default=50, metadata={
        "help": "trees per collection block; each method learns from two blocks' worth"})
    simulations: int = field(default=3, metadata={"help": "MCTS simulations per step when collecting"})
    k: int = field(default=4, metadata={"help": "proposals per expanded node when collecting"})
    critic: str = field(default="lexical", metadata={"help": "critic: none | lexical | self"})
    max_depth: int = field(default=8, metadata={
        "help": "most actions a search looks ahead (the oracle needs 4-6; failing rollouts stop here)"})
    theta: float = field(default=0.1, metadata={"help": "value gap of Agent Q pairs and Agent-R first errors"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta"})
    sft_weight: float = field(default=0.0, metadata={"help": "NLL on chosen added to DPO (RPO); 0: plain DPO"})
    dpo_learning_rate: float = field(default=5e-4, metadata={"help": "DPO learning rate (LoRA)"})
    dpo_epochs: float = field(default=2.0, metadata={"help": "DPO epochs"})
    sft_learning_rate: float = field(default=5e-4, metadata={"help": "RFT / Agent-R fine-tuning learning rate"})
    sft_epochs: float = field(default=2.0, metadata={"help": "RFT / Agent-R epochs"})
    eval_episodes: int = field(default=200, metadata={"help": "held-out test goals per method"})
    eval_simulations: int = field(default=3, metadata={"help": "MCTS simulations per step at evaluation"})
    eval_k: int = field(default=3, metadata={"help": "proposals per node at evaluation"})
    workers: int = field(default=2, metadata={"help": "worker processes for collection and evaluation"})
    seed: int = field(default=0, metadata={"help": "seed of everything"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        checks = {"demo_goals": self.demo_goals >= 1, "goals_per_iteration": self.goals_per_iteration >= 1,
                  "eval_episodes": self.eval_episodes >= 1, "query_goals": self.query_goals >= 0,
                  "query_repeats": self.query_repeats >= 1,
                  "simulations": self.simulations >= 1,
                  "eval_simulations": self.eval_simulations >= 1, "workers": self.workers >= 1,
                  "bc_epochs": self.bc_epochs > 0, "beta": self.beta > 0, "theta": self.theta >= 0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))


class PhaseTimer:
    """Wall time per named phase, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Phase:
            def __enter__(self):
                self.t0 = time.perf_counter()
                print(f"demo: [{name}] ...", flush=True)

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.t0
                return False

        return _Phase()


def _has_model(path: Path) -> bool:
    return (path / "config.json").is_file()


def loop_config(cfg: DemoConfig, base: str):
    """The improvement loop's settings in the demo (also used to collect the baselines' pool)."""
    from webgrove.training.loop import ImproveConfig

    return ImproveConfig(model=base, out=str(Path(cfg.out) / "agent_q"), iterations=2,
                         num_products=cfg.num_products, first_goal=cfg.demo_goals,
                         goals_per_iteration=cfg.goals_per_iteration, critic=cfg.critic,
                         simulations=cfg.simulations, k=cfg.k, max_depth=cfg.max_depth,
                         workers=cfg.workers, theta=cfg.theta,
                         beta=cfg.beta, sft_weight=cfg.sft_weight, learning_rate=cfg.dpo_learning_rate,
                         epochs=cfg.dpo_epochs,
                         eval_episodes=0, eval_mcts_episodes=0, eval_start=False,
                         eval_simulations=cfg.eval_simulations, eval_k=cfg.eval_k, seed=cfg.seed,
                         progress=cfg.progress)


def register_demo_sizes() -> None:
    """Add DEMO_SIZES to training.tiny.SIZES where it does not list them yet."""
    from webgrove.training import tiny

    for name, dims in DEMO_SIZES.items():
        tiny.SIZES.setdefault(name, dims)


def train_goal_count(num_products: int) -> int:
    from webgrove.envs.make import make_env

    env = make_env("webgrove/WebShop-v0", split="train", num_products=num_products)
    try:
        return len(env.unwrapped.goals)
    finally:
        env.close()


def build_base(cfg: DemoConfig, timer: PhaseTimer) -> str:
    """init-model, then behaviour cloning on oracle demonstrations; returns the base model dir."""
    from webgrove.io import write_jsonl_atomic
    from webgrove.training.sft import SFTRunConfig, demonstration_rows, train_sft
    from webgrove.training.tiny import init_model

    out = Path(cfg.out)
    init, base = (Path(cfg.init) if cfg.init else out / "init"), out / "base"
    with timer("init"):
        if not _has_model(init):
            if cfg.init:
                raise FileNotFoundError(f"--init {cfg.init} is not a model directory (no config.json)")
            register_demo_sizes()
            init_model(init, size=cfg.size, arch=cfg.arch, seed=cfg.seed)
    with timer("bc"):
        if not _has_model(base):
            demos = out / "demos.jsonl"
            if not demos.is_file():
                full = demonstration_rows(split="train", goals=range(cfg.demo_goals), seed=cfg.seed,
                                          num_products=cfg.num_products, paginated=False)
                first = cfg.demo_goals + 2 * cfg.goals_per_iteration  # past the collection blocks
                last = min(first + cfg.query_goals, train_goal_count(cfg.num_products))
                queries = demonstration_rows(split="train", goals=range(first, max(first, last)),
                                             seed=cfg.seed, num_products=cfg.num_products, first_steps=1)
                write_jsonl_atomic(demos, full + queries * cfg.query_repeats)
            train_sft(SFTRunConfig(model=str(init), out=str(base), data=str(demos), epochs=cfg.bc_epochs,
                                   learning_rate=cfg.bc_learning_rate, batch_size=16, seed=cfg.seed,
                                   progress=cfg.progress, logging_steps=20))
    return str(base)


def collect_pool(cfg: DemoConfig, base: str, timer: PhaseTimer) -> list[Path]:
    """Base-policy trees on blocks 1 and 2; block 1 lands where Agent Q's iteration 1 reads it."""
    from webgrove.search.collect import run_collect
    from webgrove.training.loop import collect_config, goal_block, iteration_dir

    loop = loop_config(cfg, base)
    dirs = [iteration_dir(loop, 1) / "trees", Path(cfg.out) / "pool_block2"]
    with timer("collect"):
        for i, d in enumerate(dirs, start=1):
            run_collect(collect_config(loop, base, goal_block(loop, i), d))
    return dirs


def pool_rows(dirs: list[Path], kind: str, theta: float) -> list[dict]:
    from webgrove.training.pairs import PairsConfig, iter_rows, tree_files

    cfg = PairsConfig(trees=str(dirs[0]), out="-", kind=kind, theta=theta)
    return list(iter_rows([f for d in dirs for f in tree_files(d)], cfg))


def train_baselines(cfg: DemoConfig, base: str, pool: list[Path], timer: PhaseTimer) -> dict[str, dict]:
    """RFT, outcome DPO and Agent-R from the base policy on the pool; returns data stats."""
    from webgrove.training.dpo import DPORunConfig, train_dpo
    from webgrove.io import write_jsonl_atomic
    from webgrove.training.pairs import pair_stats
    from webgrove.training.sft import SFTRunConfig, train_sft

    out = Path(cfg.out)
    stats = {}
    plans = {  # method -> (pair kind, trainer)
        "rft": ("rft", "sft"), "outcome_dpo": ("outcome", "dpo"), "agent_r": ("agent_r", "sft")}
    for method, (kind, trainer) in plans.items():
        with timer(method):
            rows = pool_rows(pool, kind, cfg.theta)
            stats[method] = {k: v for k, v in pair_stats(rows, kind).items() if k != "rows_by_depth"}
            model = out / method
            if _has_model(model):
                continue
            if not rows:
                print(f"demo: {method}: no training rows in the pool; it keeps the base policy", file=sys.stderr)
                stats[method]["note"] = "no rows: base policy kept"
                continue
            data = out / f"{method}.jsonl"
            write_jsonl_atomic(data, rows)
            if trainer == "sft":
                train_sft(SFTRunConfig(model=base, out=str(model), data=str(data), epochs=cfg.sft_epochs,
                                       learning_rate=cfg.sft_learning_rate, batch_size=8, seed=cfg.seed,
                                       progress=cfg.progress, logging_steps=10))
            else:
                train_dpo(DPORunConfig(model=base, out=str(model), pairs=str(data), epochs=cfg.dpo_epochs,
                                       learning_rate=cfg.dpo_learning_rate, beta=cfg.beta,
                                       sft_weight=cfg.sft_weight, batch_size=8,
                                       seed=cfg.seed, progress=cfg.progress, logging_steps=10))
    return stats


def method_models(cfg: DemoConfig, base: str) -> dict[str, tuple[str, bool]]:
    """method -> (model directory, with search)."""
    from webgrove.training.loop import model_dir

    out = Path(cfg.out)
    pick = lambda m: str(out / m) if _has_model(out / m) else base  # noqa: E731  (no rows: base kept)
    agent_q = model_dir(loop_config(cfg, base), 2)
    return {"base": (base, False), "base+mcts": (base, True), "rft": (pick("rft"), False),
            "outcome_dpo": (pick("outcome_dpo"), False), "agent_r": (pick("agent_r"), False),
            "agent_q": (agent_q, False), "agent_q+mcts": (agent_q, True)}


def evaluate_all(cfg: DemoConfig, base: str, timer: PhaseTimer) -> dict[str, dict]:
    """Every method on the same held-out goals, on one pool of workers; cached per method."""
    from webgrove.search.rollout import RolloutConfig, rollout_many

    results, todo = {}, {}
    for method, (model, mcts) in method_models(cfg, base).items():
        path = Path(cfg.out) / "eval" / f"{method}.json"
        if path.is_file():
            results[method] = json.loads(path.read_text())
        else:
            todo[method] = RolloutConfig(policy=model, split="test", episodes=cfg.eval_episodes, seed=cfg.seed,
                                         mcts=mcts, simulations=cfg.eval_simulations, k=cfg.eval_k,
                                         max_depth=cfg.max_depth, critic=cfg.critic, rollout_temperature=0.0,
                                         num_products=cfg.num_products, json=str(path), progress=cfg.progress)
    with timer("eval"):
        summaries = rollout_many(list(todo.values()), cfg.workers) if todo else []
    results.update(zip(todo, summaries))
    return {m: {"success_rate": results[m]["success_rate"], "score": results[m]["score"],
                "episodes": results[m]["episodes"], "seconds": results[m]["seconds"]}
            for m in method_models(cfg, base)}


def format_tables(methods: dict[str, dict], phases: dict[str, float], total: float) -> str:
    """The results table (with each method's share of evaluation time) and the wall-time table."""
    lines = ["", f"{'method':<14} {'success %':>9} {'score':>7} {'episodes':>9} {'eval s':>8}", "-" * 51]
    lines += [f"{m:<14} {100 * r['success_rate']:>9.1f} {r['score']:>7.1f} {r['episodes']:>9d} "
              f"{r.get('seconds', float('nan')):>8.1f}" for m, r in methods.items()]
    lines += ["", f"{'phase':<14} {'seconds':>9}", "-" * 24]
    lines += [f"{p:<14} {s:>9.1f}" for p, s in phases.items()]
    lines += [f"{'total':<14} {total:>9.1f}", ""]
    return "\n".join(lines)


def run_demo_pipeline(cfg: DemoConfig) -> dict:
    """Every phase; returns the results written to OUT/results.json."""
    from webgrove.training.loop import run_improve
    from webgrove.training.plots import plot_methods

    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timer = PhaseTimer()
    base = build_base(cfg, timer)
    pool = collect_pool(cfg, base, timer)
    data_stats = train_baselines(cfg, base, pool, timer)
    with timer("agent_q"):
        improve = run_improve(loop_config(cfg, base))
    methods = evaluate_all(cfg, base, timer)
    total = time.perf_counter() - start
    results = {
        "methods": {m: {k: r[k] for k in ("success_rate", "score", "episodes")} for m, r in methods.items()},
        "seconds": total,
        "phases": timer.seconds,
        "eval_seconds": {m: r["seconds"] for m, r in methods.items()},
        "data": data_stats,
        "agent_q_iterations": [{k: r.get(k) for k in ("iteration", "collect", "pairs", "train", "seconds")}
                               for r in improve["iterations"][1:]],
        "config": asdict(cfg),
        "command": "webgrove demo " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["demo"] else "",
    }
    write_json_atomic(out / RESULTS_FILE, results, allow_nan=True)
    plot_methods(results["methods"], out / PLOT_FILE,
                 title=f"held-out test goals: {cfg.eval_episodes} per method; {cfg.size} model")
    print(format_tables(methods, timer.seconds, total))
    return results


def run_demo(cfg: DemoConfig) -> int:
    run_demo_pipeline(cfg)
    print(f"demo: results in {Path(cfg.out) / RESULTS_FILE}, plot in {Path(cfg.out) / PLOT_FILE}")
    return 0
