"""`webgrove demo` (what `make demo` runs): the whole story on a CPU, from nothing.

Phases (each timed; a rerun reuses every finished output under OUT whose model is unchanged):

1. **init**: a tiny causal LM and a BPE tokenizer trained on shop text (`webgrove.training.tiny`);
2. **bc**: behaviour cloning on oracle demonstrations of train goals (`webgrove.training.sft`)
   gives the base policy; its loss on the validation goals' demonstrations is reported. No
   oracle data is used after this phase;
3. **collect**: MCTS trees with the base policy on `iterations` blocks of fresh train goals:
   the offline pool every baseline learns from. Block 1 is also Agent Q's first iteration;
4. **baselines**: RFT (SFT on complete successful trajectories), outcome-supervised DPO
   (success-vs-failure pairs) and Agent-R (revision trajectories), each from the base policy
   on the whole pool;
5. **agent_q**: `iterations` iterations of the improvement loop (`webgrove.training.loop`):
   DPO on Agent Q's step-level pairs of block i, collected by the policy of iteration i-1.
   Every method thus learns from the same number of trees (equal collection budget);
6. **eval**: every method on the same held-out test goals (all 500 by default), greedily, the
   base and Agent Q also with search, and the rule baseline; each trained policy also on the
   validation goals and on block 1's train goals (its fit rate);
7. **rise** (`--rise`, on by default): RISE from the base with the pool's trees as the teacher, its
   table row, and success by attempt for base, Agent Q and RISE (`webgrove.training.demo_rise`).

Goal splits: the test split is only for the final table. Settings are chosen on the
validation goals: the last `val_goals` goals of the train split, which no phase trains or
collects on (`demo_splits`).

Writes OUT/results.json (per method: success rate and score with 95% intervals and the
per-goal outcomes; paired comparisons with the base; validation and fit rates; Agent Q per
iteration; seconds per phase; config; provenance), OUT/results.png (test table with
intervals), OUT/iterations.png (validation success per iteration and method) and
OUT/attempts.png (success by attempt).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from webgrove.io import write_json_atomic
from webgrove.training.demo_rise import format_rise, run_rise

# The demo's default model is smaller than init-model's "tiny" (2.2 M parameters): measured on
# 2 CPU cores, "tiny" alone needs more than 20 minutes for behaviour cloning plus evaluation.
# (layers, width, heads), registered with training.tiny so that init_model builds it.
DEMO_SIZES = {"micro": (2, 128, 4)}

RESULTS_FILE = "results.json"
PLOT_FILE = "results.png"
ITERATIONS_PLOT = "iterations.png"
METHODS = ("rule", "base", "base+mcts", "rft", "outcome_dpo", "agent_r", "agent_q", "agent_q+mcts")
TRAINED = ("rft", "outcome_dpo", "agent_r")  # baselines trained once on the base policy's pool
# paired comparisons in the results: (method, against)
COMPARISONS = [(m, "base") for m in METHODS if m != "base"] + [("agent_q+mcts", "base+mcts"), ("rise", "base")]


@dataclass
class DemoConfig:
    """Init a tiny model, clone an expert, then compare RFT, outcome DPO, Agent-R and Agent Q."""

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
    query_repeats: int = field(default=2, metadata={"help": "copies of each query goal's search step in the BC data"})
    bc_expert: str = field(default="rule-options", metadata={
        "help": "who the base clones: rule-options (reads only the pages: search the instruction, open the first "
                "result, select the options the instruction names, buy; 64%% of validation goals) or oracle (knows "
                "the hidden target, which nothing on the page singles out: its product choice cannot be learnt "
                "from the page)", "choices": ["rule-options", "oracle"]})
    bc_page_rows: int = field(default=2, metadata={
        "help": "results pages per query (2 queries a goal) whose product choice is added to stage 2 for every "
                "demonstration and query goal (`results_page_rows`; 0: none): an episode holds one such choice"})
    bc_epochs: float = field(default=6.0, metadata={
        "help": "behaviour-cloning epochs (stage 1). Chosen on the validation goals with stage 2 at 2 epochs: "
                "8 epochs: 26.0%% of validation goals; 6: 31.0%% (README)"})
    bc_learning_rate: float = field(default=3e-3, metadata={"help": "behaviour-cloning learning rate (stage 1)"})
    bc_full_epochs: float = field(default=2.0, metadata={
        "help": "behaviour cloning, stage 2: epochs over whole oracle episodes of the query goals as well (0: "
                "none). Chosen on the validation goals (session 10, stage 1 at 8 epochs): 1 epoch: 18.0%% of "
                "validation goals; 2 epochs: 26.0%% (p 0.007); whole episodes from the start (3 epochs): the queries "
                "collapse, 0.0%% (README)"})
    bc_full_learning_rate: float = field(default=2e-3, metadata={
        "help": "behaviour-cloning learning rate (stage 2). Chosen on the validation goals (session 8): at 1e-3 the "
                "base opened the first result (its expert's choice) in 28%% of validation results pages and 30%% of "
                "cloned train ones, and succeeded on 16.0%% of validation goals; at 2e-3: 57%%, 60%%, 18.0%%"})
    val_goals: int = field(default=200, metadata={
        "help": "validation goals: the last N train goals, never trained or collected on; every setting is "
                "chosen on them (the test goals are for the final table only)"})
    iterations: int = field(default=3, metadata={"help": "Agent Q iterations (= collection blocks)"})
    goals_per_iteration: int = field(default=50, metadata={
        "help": "trees per collection block; each method learns from `iterations` blocks' worth"})
    simulations: int = field(default=3, metadata={"help": "MCTS simulations per step when collecting"})
    k: int = field(default=4, metadata={"help": "proposals per expanded node when collecting"})
    critic: str = field(default="lexical", metadata={"help": "critic: none | lexical | self"})
    max_depth: int = field(default=8, metadata={
        "help": "most actions a search looks ahead (the oracle needs 4-6; failing rollouts stop here)"})
    theta: float = field(default=0.1, metadata={"help": "value gap of Agent Q pairs and Agent-R first errors"})
    min_visits: int = field(default=1, metadata={"help": "visits both siblings of an Agent Q pair need"})
    pair_kinds: str = field(default="all", metadata={
        "help": "action kinds Agent Q pairs may compare: query,product,option,navigation,other or all"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta"})
    loss_type: str = field(default="sigmoid", metadata={
        "help": "Agent Q's and outcome DPO's loss: sigmoid (sequence DPO), choice_sigmoid, choice_ce"})
    sft_weight: float = field(default=0.0, metadata={"help": "NLL on chosen added to DPO (RPO); 0: plain DPO"})
    nll_target: str = field(default="sequence", metadata={
        "help": "what the NLL term reads: sequence or choice", "choices": ["sequence", "choice"]})
    dpo_learning_rate: float = field(default=5e-4, metadata={"help": "DPO learning rate (LoRA)"})
    dpo_epochs: float = field(default=2.0, metadata={"help": "DPO epochs"})
    sft_learning_rate: float = field(default=5e-4, metadata={"help": "RFT / Agent-R fine-tuning learning rate"})
    sft_epochs: float = field(default=2.0, metadata={"help": "RFT / Agent-R epochs"})
    eval_episodes: int = field(default=500, metadata={"help": "held-out test goals per method (the split has 500)"})
    fit_eval: bool = field(default=True, metadata={
        "help": "evaluate trained policies on block 1's train goals (the fit rate)"})
    eval_simulations: int = field(default=6, metadata={
        "help": "MCTS simulations per step at evaluation. Chosen on the validation goals (session 11, the base "
                "searching with the lexical critic, k 3): 3 simulations 30.0%% (greedy 31.0), 6: 46.5%%, 10: 48.0%%"})
    eval_k: int = field(default=3, metadata={"help": "proposals per node at evaluation"})
    rise: bool = field(default=True, metadata={
        "help": "RISE from the base (search as the teacher), and success by attempt (webgrove.training.demo_rise)"})
    rise_attempts: int = field(default=2, metadata={
        "help": "RISE's attempts T (collection and evaluation; 2 keeps the phase near 5 minutes on 2 cores)"})
    rise_filter: str = field(default="better", metadata={"help": "RISE's filter: all | better | best | successful"})
    rise_tau: float = field(default=0.4, metadata={"help": "RISE's reward-weight temperature exp(r/tau)"})
    workers: int = field(default=2, metadata={"help": "worker processes for collection and evaluation"})
    seed: int = field(default=0, metadata={"help": "seed of everything"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        checks = {"demo_goals": self.demo_goals >= 1, "goals_per_iteration": self.goals_per_iteration >= 1,
                  "eval_episodes": self.eval_episodes >= 1, "query_goals": self.query_goals >= 0,
                  "query_repeats": self.query_repeats >= 1, "iterations": self.iterations >= 1,
                  "val_goals": self.val_goals >= 1,
                  "simulations": self.simulations >= 1,
                  "eval_simulations": self.eval_simulations >= 1, "workers": self.workers >= 1,
                  "bc_epochs": self.bc_epochs > 0, "bc_full_epochs": self.bc_full_epochs >= 0,
                  "bc_page_rows": self.bc_page_rows >= 0, "beta": self.beta > 0, "theta": self.theta >= 0,
                  "rise_attempts": self.rise_attempts >= 1, "rise_tau": self.rise_tau > 0,
                  "rise_filter": self.rise_filter in ("all", "better", "best", "successful")}
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


def demo_splits(cfg: DemoConfig) -> dict[str, list[int]]:
    """Train-split goal ranges [A, B) of each use, and the test goals; fixed by the config.

    demos (behaviour cloning) | collection blocks | query demonstrations | validation (the last
    `val_goals` train goals) — disjoint, in this order; test: goals 0..eval_episodes-1 of the test split.
    """
    total = train_goal_count(cfg.num_products)
    blocks_end = cfg.demo_goals + cfg.iterations * cfg.goals_per_iteration
    val_start = total - cfg.val_goals
    if val_start < blocks_end:
        raise ValueError(f"the train split has {total} goals: too few for {cfg.demo_goals} demonstration goals, "
                         f"{cfg.iterations} x {cfg.goals_per_iteration} collection goals and {cfg.val_goals} "
                         "validation goals")
    return {"demos": [0, cfg.demo_goals], "blocks": [cfg.demo_goals, blocks_end],
            "queries": [blocks_end, min(blocks_end + cfg.query_goals, val_start)],
            "validation": [val_start, total], "test": [0, cfg.eval_episodes]}


def loop_config(cfg: DemoConfig, base: str, val_goals: str | None = None):
    """The improvement loop's settings in the demo (also used to collect the baselines' pool)."""
    from webgrove.training.loop import ImproveConfig

    return ImproveConfig(model=base, out=str(Path(cfg.out) / "agent_q"), iterations=cfg.iterations,
                         num_products=cfg.num_products, first_goal=cfg.demo_goals,
                         goals_per_iteration=cfg.goals_per_iteration, critic=cfg.critic,
                         simulations=cfg.simulations, k=cfg.k, max_depth=cfg.max_depth,
                         workers=cfg.workers, theta=cfg.theta, min_visits=cfg.min_visits, pair_kinds=cfg.pair_kinds,
                         beta=cfg.beta, loss_type=cfg.loss_type, sft_weight=cfg.sft_weight,
                         nll_target=cfg.nll_target, learning_rate=cfg.dpo_learning_rate, epochs=cfg.dpo_epochs,
                         eval_episodes=0, eval_mcts_episodes=0, eval_start=True, val_goals=val_goals,
                         fit_eval=cfg.fit_eval, eval_simulations=cfg.eval_simulations, eval_k=cfg.eval_k,
                         seed=cfg.seed, progress=cfg.progress)


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


def validation_loss(model_dir: str | Path, rows: list[dict]) -> float:
    """Mean negative log-likelihood (nats per action, eos included) of demonstration rows."""
    from webgrove.training.dpo import completion_logprobs
    from webgrove.training.sft import load_model

    model, tokenizer = load_model(model_dir)
    model.eval()
    logps = completion_logprobs(model, tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows])
    return -sum(logps) / len(logps)


def bc_report(cfg: DemoConfig, init: Path, base: Path, splits: dict) -> dict:
    """Behaviour cloning's train loss and its loss on the validation goals' oracle demonstrations
    (measured only, never trained on), before and after; cached in OUT/bc.json."""
    from webgrove.training.sft import demonstration_rows

    path = Path(cfg.out) / "bc.json"
    report = json.loads(path.read_text()) if path.is_file() else None
    if report is None:
        a, b = splits["validation"]
        rows = demonstration_rows(split="train", goals=range(a, min(b, a + 100)), seed=cfg.seed,
                                  num_products=cfg.num_products, paginated=False)
        train = json.loads((base / "train_result.json").read_text())
        report = {"val_rows": len(rows), "val_loss_init": validation_loss(init, rows),
                  "val_loss": validation_loss(base, rows), "train_loss": train.get("train_loss"),
                  "steps": train.get("steps"), "epochs": cfg.bc_epochs, "full_epochs": cfg.bc_full_epochs}
        write_json_atomic(path, report)
    print(f"demo: bc: train loss {report['train_loss']:.4f}; validation loss {report['val_loss']:.4f} nats/action "
          f"on {report['val_rows']} validation demonstrations (init {report['val_loss_init']:.3f})")
    return report


def bc_rows(cfg: DemoConfig, splits: dict) -> tuple[list[dict], list[dict]]:
    """The expert's (`bc_expert`) demonstrations of the two behaviour-cloning stages. Stage 1: whole
    successful episodes of the demo goals and `query_repeats` copies of the query goals' first step
    (the search query: short prompts, and what a fresh model must learn first). Stage 2: the demo
    goals' episodes, whole successful episodes of the query goals, one copy of their first step (the
    item-page decisions: with stage 1 alone the base buys without choosing options) and the expert's
    product choice on `bc_page_rows` results pages of two queries of every goal of both ranges."""
    from webgrove.training.sft import demonstration_rows, results_page_rows

    def rows(goals: range, **kw) -> list[dict]:
        return demonstration_rows(split="train", goals=goals, seed=cfg.seed, num_products=cfg.num_products,
                                  expert=cfg.bc_expert, **kw)

    demos, goals = range(*splits["demos"]), range(*splits["queries"])
    full = rows(demos, paginated=False)
    queries = rows(goals, first_steps=1, only_successes=False)  # the query does not depend on the outcome
    stage1 = full + queries * cfg.query_repeats
    if cfg.bc_full_epochs <= 0:
        return stage1, []
    pages = [] if cfg.bc_page_rows <= 0 else [
        row for r in (demos, goals) for row in results_page_rows(
            r, expert=cfg.bc_expert, seed=cfg.seed, num_products=cfg.num_products, pages=cfg.bc_page_rows)]
    return stage1, full + rows(goals, paginated=False) + queries + pages


def _clone(cfg: DemoConfig, start: Path, out: Path, rows_file: Path, rows: list[dict], epochs: float,
           learning_rate: float) -> None:
    from webgrove.io import write_jsonl_atomic
    from webgrove.training.sft import SFTRunConfig, train_sft

    if not rows_file.is_file():
        write_jsonl_atomic(rows_file, rows)
    train_sft(SFTRunConfig(model=str(start), out=str(out), data=str(rows_file), epochs=epochs,
                           learning_rate=learning_rate, batch_size=16, seed=cfg.seed,
                           progress=cfg.progress, logging_steps=20))


def build_base(cfg: DemoConfig, timer: PhaseTimer, splits: dict) -> tuple[str, dict]:
    """init-model, then behaviour cloning on oracle demonstrations in two stages (`bc_rows`);
    returns the base model dir and the BC report (`bc_report`)."""
    from webgrove.training.tiny import init_model

    out = Path(cfg.out)
    init, base = (Path(cfg.init) if cfg.init else out / "init"), out / "base"
    stage1 = out / "bc_stage1" if cfg.bc_full_epochs > 0 else base
    with timer("init"):
        if not _has_model(init):
            if cfg.init:
                raise FileNotFoundError(f"--init {cfg.init} is not a model directory (no config.json)")
            register_demo_sizes()
            init_model(init, size=cfg.size, arch=cfg.arch, seed=cfg.seed)
    with timer("bc"):
        if not _has_model(base):
            rows1, rows2 = bc_rows(cfg, splits)
            if not _has_model(stage1):
                _clone(cfg, init, stage1, out / "demos.jsonl", rows1, cfg.bc_epochs, cfg.bc_learning_rate)
            if stage1 != base:
                _clone(cfg, stage1, base, out / "demos_full.jsonl", rows2, cfg.bc_full_epochs,
                       cfg.bc_full_learning_rate)
        report = bc_report(cfg, init, base, splits)
    return str(base), report


def pool_dirs(cfg: DemoConfig, base: str) -> list[Path]:
    """Where the base policy's trees of each block go: block 1 where Agent Q's iteration 1 reads it."""
    from webgrove.training.loop import iteration_dir

    loop = loop_config(cfg, base)
    return [iteration_dir(loop, 1) / "trees"] + [Path(cfg.out) / "pool" / f"block_{i}"
                                                 for i in range(2, cfg.iterations + 1)]


def collect_pool(cfg: DemoConfig, base: str, timer: PhaseTimer) -> list[Path]:
    """Base-policy trees on every block (a base since retrained makes collect start them over)."""
    from webgrove.search.collect import run_collect
    from webgrove.training.loop import collect_config, goal_block, prepare_iteration

    loop = loop_config(cfg, base)
    dirs = pool_dirs(cfg, base)
    with timer("collect"):
        prepare_iteration(loop, 1)  # iteration 1's folder belongs to this base
        for i, d in enumerate(dirs, start=1):
            run_collect(collect_config(loop, base, goal_block(loop, i), d))
    return dirs


def pool_rows(dirs: list[Path], kind: str, theta: float) -> list[dict]:
    from webgrove.training.pairs import PairsConfig, iter_rows, tree_files

    cfg = PairsConfig(trees=str(dirs[0]), out="-", kind=kind, theta=theta)
    return list(iter_rows([f for d in dirs for f in tree_files(d)], cfg))


def baseline_is_current(model: Path, base: str) -> bool:
    """Whether a trained baseline was trained from this base (its base.json names its fingerprint)."""
    from webgrove.training.loop import fingerprint

    recorded = model.parent / f"{model.name}.base.json"
    return _has_model(model) and recorded.is_file() and json.loads(recorded.read_text()) == fingerprint(base)


def train_baseline(cfg: DemoConfig, base: str, method: str, trainer: str, rows: list[dict]) -> None:
    """One baseline from the base policy on its rows; records which base it came from."""
    import shutil

    from webgrove.io import write_jsonl_atomic
    from webgrove.training.dpo import DPORunConfig, train_dpo
    from webgrove.training.loop import fingerprint
    from webgrove.training.sft import SFTRunConfig, train_sft

    out = Path(cfg.out)
    model, data = out / method, out / f"{method}.jsonl"
    shutil.rmtree(model, ignore_errors=True)  # a model of another base, or half-written
    write_jsonl_atomic(data, rows)
    if trainer == "sft":
        train_sft(SFTRunConfig(model=base, out=str(model), data=str(data), epochs=cfg.sft_epochs,
                               learning_rate=cfg.sft_learning_rate, batch_size=8, seed=cfg.seed,
                               progress=cfg.progress, logging_steps=10))
    else:
        train_dpo(DPORunConfig(model=base, out=str(model), pairs=str(data), epochs=cfg.dpo_epochs,
                               learning_rate=cfg.dpo_learning_rate, beta=cfg.beta, loss_type=cfg.loss_type,
                               sft_weight=cfg.sft_weight, nll_target=cfg.nll_target, batch_size=8,
                               seed=cfg.seed, progress=cfg.progress, logging_steps=10))
    write_json_atomic(out / f"{method}.base.json", fingerprint(base))


def train_baselines(cfg: DemoConfig, base: str, pool: list[Path], timer: PhaseTimer) -> dict[str, dict]:
    """RFT, outcome DPO and Agent-R from the base policy on the pool; returns data stats."""
    from webgrove.training.pairs import pair_stats

    stats = {}
    plans = {  # method -> (pair kind, trainer)
        "rft": ("rft", "sft"), "outcome_dpo": ("outcome", "dpo"), "agent_r": ("agent_r", "sft")}
    for method, (kind, trainer) in plans.items():
        with timer(method):
            rows = pool_rows(pool, kind, cfg.theta)
            stats[method] = {k: v for k, v in pair_stats(rows, kind).items() if k != "rows_by_depth"}
            if baseline_is_current(Path(cfg.out) / method, base):
                continue
            if not rows:
                print(f"demo: {method}: no training rows in the pool; it keeps the base policy", file=sys.stderr)
                stats[method]["note"] = "no rows: base policy kept"
                continue
            train_baseline(cfg, base, method, trainer, rows)
    return stats


def method_models(cfg: DemoConfig, base: str) -> dict[str, tuple[str, bool]]:
    """method -> (policy spec or model directory, with search)."""
    from webgrove.training.loop import model_dir

    out = Path(cfg.out)
    pick = lambda m: str(out / m) if _has_model(out / m) else base  # noqa: E731  (no rows: base kept)
    agent_q = model_dir(loop_config(cfg, base), cfg.iterations)
    return {"rule": ("rule", False), "base": (base, False), "base+mcts": (base, True),
            **{m: (pick(m), False) for m in TRAINED}, "agent_q": (agent_q, False), "agent_q+mcts": (agent_q, True)}


def final_rollouts(cfg: DemoConfig, base: str) -> dict:
    """method -> RolloutConfig of its final evaluation on the test goals."""
    from webgrove.search.rollout import RolloutConfig

    return {m: RolloutConfig(policy=model, split="test", episodes=cfg.eval_episodes, seed=cfg.seed, mcts=mcts,
                             simulations=cfg.eval_simulations, k=cfg.eval_k, max_depth=cfg.max_depth,
                             critic=cfg.critic, rollout_temperature=0.0, num_products=cfg.num_products,
                             json=str(Path(cfg.out) / "eval" / f"{m}.json"), progress=cfg.progress)
            for m, (model, mcts) in method_models(cfg, base).items()}


def evaluate_all(cfg: DemoConfig, base: str, timer: PhaseTimer) -> dict[str, dict]:
    """Every method on the same held-out test goals, on one pool of workers; each result is
    reused when the same policy (by fingerprint) made it on the same goals."""
    from webgrove.search.rollout import rollout_many
    from webgrove.training.loop import reusable_rollout

    results, todo = {}, {}
    for method, rc in final_rollouts(cfg, base).items():
        done = reusable_rollout(rc)
        if done is not None:
            results[method] = done
        else:
            todo[method] = rc
    with timer("eval"):
        summaries = rollout_many(list(todo.values()), cfg.workers) if todo else []
    results.update(zip(todo, summaries))
    return {m: results[m] for m in METHODS}


def side_evaluations(cfg: DemoConfig, base: str, improve: dict, timer: PhaseTimer) -> tuple[dict, dict]:
    """(validation, fit) per method: greedy success on the validation goals, and the fit rate on
    block 1's train goals (whose successful trees every trained method learned from)."""
    from webgrove.training.loop import (GREEDY, VALIDATION, fit_rate, goal_block, metric_entry, validation_eval)

    loop = loop_config(cfg, base, val_goals=":".join(map(str, demo_splits(cfg)["validation"])))
    trees, ev = pool_dirs(cfg, base)[0], Path(cfg.out) / "eval"
    records = improve["iterations"]
    models = {m: model for m, (model, mcts) in method_models(cfg, base).items() if not mcts and m != "rule"}
    val, fit = {"base": records[0][VALIDATION], GREEDY: records[-1][VALIDATION]}, {}
    with timer("eval"):
        for m in TRAINED:
            val[m] = metric_entry(validation_eval(loop, models[m], ev / f"val_{m}.json"))
        for m, model in models.items():
            fit[m] = fit_rate(loop, model, goal_block(loop, 1), trees, ev / f"fit_{m}.json")
    return val, fit


def _ci(entry: dict | None, key: str, scale: float) -> str:
    if not entry or entry.get(key) is None:
        return "-"
    lo, hi = entry[key + "_ci95"]
    return f"{scale * entry[key]:.1f} [{scale * lo:.1f}, {scale * hi:.1f}]"


def format_tables(results: dict) -> str:
    """The results table (test goals, with intervals, the paired difference to the base,
    validation success and fit rate) and the wall-time table."""
    head = (f"{'method':<13} {'success % [95% CI]':>20} {'score [95% CI]':>20} {'vs base (pts) [95% CI]':>24} "
            f"{'p':>6} {'val %':>6} {'fit %':>6}")
    lines = ["", head, "-" * len(head)]
    for m, r in results["methods"].items():
        c = results["comparisons"].get(f"{m} vs base")
        diff = (f"{100 * c['success_diff']:+.1f} [{100 * c['success_diff_ci95'][0]:+.1f}, "
                f"{100 * c['success_diff_ci95'][1]:+.1f}]") if c else "-"
        p = f"{c['mcnemar']['p']:.3f}" if c else "-"
        val = (results.get("validation") or {}).get(m)
        fit = (results.get("fit") or {}).get(m)
        lines.append(f"{m:<13} {_ci(r, 'success_rate', 100):>20} {_ci(r, 'score', 1):>20} {diff:>24} {p:>6} "
                     f"{100 * val['success_rate'] if val else float('nan'):>6.1f} "
                     f"{100 * fit['fit_rate'] if fit and fit['fit_rate'] is not None else float('nan'):>6.1f}")
    lines += ["", f"{'phase':<14} {'seconds':>9}", "-" * 24]
    lines += [f"{p:<14} {s:>9.1f}" for p, s in results["phases"].items()]
    lines += [f"{'total':<14} {results['seconds']:>9.1f}", ""]
    return "\n".join(lines)


def comparisons(methods: dict[str, dict], seed: int) -> dict[str, dict]:
    """"A vs B": `webgrove.stats.paired_comparison` on the goals both ran."""
    from webgrove.stats import paired_comparison

    return {f"{m} vs {b}": paired_comparison(methods[b], methods[m], seed=seed) for m, b in COMPARISONS if m in methods}


RESULT_KEYS = ("success_rate", "success_rate_ci95", "score", "score_ci95", "episodes", "policy",
               "policy_fingerprint", "mcts", "seconds", "goal_ids", "rewards", "successes")


def run_demo_pipeline(cfg: DemoConfig) -> dict:
    """Every phase; returns the results written to OUT/results.json."""
    from webgrove.provenance import provenance
    from webgrove.training.loop import run_improve
    from webgrove.training.plots import plot_methods, plot_validation_iterations

    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timer, splits = PhaseTimer(), demo_splits(cfg)
    base, bc = build_base(cfg, timer, splits)
    pool = collect_pool(cfg, base, timer)
    data_stats = train_baselines(cfg, base, pool, timer)
    with timer("agent_q"):
        improve = run_improve(loop_config(cfg, base, val_goals=":".join(map(str, splits["validation"]))))
    methods = evaluate_all(cfg, base, timer)
    validation, fit = side_evaluations(cfg, base, improve, timer)
    rise = run_rise(cfg, base, pool, methods, timer) if cfg.rise else None  # adds the "rise" row
    results = {
        "methods": {m: {k: r.get(k) for k in RESULT_KEYS} for m, r in methods.items()},
        "comparisons": comparisons(methods, cfg.seed), "validation": validation, "fit": fit, "bc": bc,
        "splits": splits, "seconds": time.perf_counter() - start, "phases": timer.seconds,
        "data": data_stats, "rise": rise,
        "agent_q_iterations": [{k: r.get(k) for k in ("iteration", "fingerprint", "collect", "pairs", "train",
                                                       "agent_q (validation)", "fit", "seconds")}
                               for r in improve["iterations"]],
        "config": asdict(cfg), "provenance": provenance(),
    }
    write_json_atomic(out / RESULTS_FILE, results, allow_nan=True)
    plot_methods(results["methods"], out / PLOT_FILE,
                 title=f"held-out test goals: {cfg.eval_episodes} per method; {cfg.size} model; 95% intervals")
    plot_validation_iterations(results["agent_q_iterations"], validation, out / ITERATIONS_PLOT)
    print(format_tables(results) + ("" if rise is None else format_rise(rise)))
    return results


def run_demo(cfg: DemoConfig) -> int:
    run_demo_pipeline(cfg)
    print(f"demo: results in {Path(cfg.out) / RESULTS_FILE}, plots {Path(cfg.out) / PLOT_FILE} and "
          f"{Path(cfg.out) / ITERATIONS_PLOT}")
    return 0
