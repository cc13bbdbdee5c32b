"""The self-improvement loop (Agent Q): collect trees → pairs → DPO → evaluate, repeated.

`webgrove improve --model DIR --iterations N` runs, for each iteration i = 1..N:

1. **collect**: one MCTS tree per train goal of the iteration's goal block, with the current
   policy and the critic (`webgrove.search.collect`);
2. **pairs**: Agent Q's step-level preference pairs from those trees (`webgrove.training.pairs`), the
   collecting policy's log-probs as the off-policy reference; filters (θ, visits on both
   siblings, α, action kinds) are flags;
3. **train**: DPO from the current policy (`webgrove.training.dpo`; sequence or choice-level loss,
   optional NLL term), LoRA merged into a plain model;
4. **evaluate**: the new policy on held-out test goals, greedily and with search
   (`webgrove.search.rollout`); on the validation goals (`--val-goals`, train goals never
   collected on: the split for choosing settings); and on its own block of train goals, whose
   success on the goals with a complete successful tree is the *fit rate*;

and records everything in OUT/metrics.json, with a plot of success rate and score per
iteration and method (OUT/metrics.png). Layout::

    OUT/iter_0/eval.json, eval_mcts.json      the starting policy's evaluation
    OUT/iter_i/start.json                     the starting policy and its fingerprint
    OUT/iter_i/trees/goal_*.jsonl             collected trees
    OUT/iter_i/pairs.jsonl, pairs_stats.json
    OUT/iter_i/model/                         the policy after iteration i
    OUT/iter_i/critic/                        --learn-critic: the critic iteration i+1 collects with
    OUT/iter_i/eval.json, eval_mcts.json, eval_val.json, eval_fit.json
    OUT/iter_i/done.json                      written last: the iteration is finished

Rerunning the same command resumes: finished iterations are skipped, and within the
unfinished one every step whose output exists is reused (collection also skips each tree
already on disk). Reuse is checked by fingerprint (`webgrove.agents.fingerprint`): an
iteration whose starting policy changed since (say, iteration 1 was retrained) is deleted
and run again, and a cached evaluation counts only when the same model made it.
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
from webgrove.envs.make import group_values, parse_goal_range
from webgrove.search.args import SearchArgs
from webgrove.search.backends import BackendArgs, backend_session, release_actors
from webgrove.io import write_json_atomic

METRICS_FILE = "metrics.json"
PLOT_FILE = "metrics.png"
GREEDY, SEARCH, VALIDATION = "agent_q", "agent_q+mcts", "agent_q (validation)"


@dataclass(kw_only=True)
class ImproveConfig(SearchArgs, BackendArgs):
    """Iterate: MCTS trees on train goals → Agent Q pairs → DPO → held-out evaluation.

    The search flags (`SearchArgs`: --critic, --simulations, --k, ...) set collection; evaluation
    with search uses the same settings except --eval-simulations and --eval-k, and rolls out greedily.
    --backend ray runs collection and every evaluation on Ray (one Ray session for the whole loop).
    """

    model: str = field(metadata={"help": "starting policy: a model directory (e.g. after behaviour cloning)"})
    out: str = field(default="runs/improve", metadata={"help": "output directory (rerun to resume)"})
    iterations: int = field(default=3, metadata={"help": "improvement iterations"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    num_products: int | None = field(default=None, metadata={
        "help": "synthetic catalog size (shop envs; default 1000)"})
    first_goal: int = field(default=0, metadata={"help": "first train goal; iteration i collects the i-th block"})
    goals_per_iteration: int = field(default=40, metadata={"help": "trees (train goals) collected per iteration"})
    workers: int = field(default=1, metadata={"help": "worker processes for collection and evaluation"})
    prompt_format: str = field(default="auto", metadata={
        "help": "auto | chat | raw: how the model reads prompts, the same in collection, training and "
                "evaluation (agents/chat.py; auto = the chat template when the tokenizer has one)"})
    theta: float = field(default=0.1, metadata={"help": "minimum value gap of a preference pair"})
    min_visits: int = field(default=1, metadata={"help": "visits both siblings of a pair need (pair filter)"})
    pair_alpha: float | None = field(default=None, metadata={
        "help": "pairs rank siblings by pair_alpha*q_mcts + (1-pair_alpha)*q_critic (default: the search's q)"})
    pair_kinds: str = field(default="all", metadata={
        "help": "action kinds pairs may compare: query,product,option,navigation,other or all"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta"})
    loss_type: str = field(default="sigmoid", metadata={
        "help": "preference loss: sigmoid (sequence DPO), choice_sigmoid or choice_ce (choice-level; training/choice.py)"})
    sft_weight: float = field(default=0.0, metadata={"help": "NLL on chosen added to DPO (RPO); 0: plain DPO"})
    nll_target: str = field(default="sequence", metadata={
        "help": "what the NLL term reads: sequence or choice", "choices": ["sequence", "choice"]})
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
    val_goals: str | None = field(default=None, metadata={
        "help": "validation goals A:B of the TRAIN split (never collected on): every iteration's policy is "
                "evaluated greedily there, for choosing settings; test goals are for final tables only"})
    fit_eval: bool = field(default=True, metadata={
        "help": "evaluate each trained policy greedily on its iteration's train goals: the fit rate is its "
                "success on those whose tree holds a complete success (the goals it was trained on)"})
    learn_critic: bool = field(default=False, metadata={
        "help": "Agent Q's AI feedback, learned: iteration i collects with a critic trained (`webgrove train "
                "critic`) from iteration i-1's policy on every tree collected so far and --critic-trees "
                "(OUT/iter_{i-1}/critic); iteration 1 uses --critic unless --critic-trees is given. Evaluation "
                "with search keeps --critic"})
    critic_trees: str | None = field(default=None, metadata={
        "help": "tree folders of the starting policy (comma-separated) that every learned critic also trains on; "
                "with them iteration 1 collects with a learned critic too (--learn-critic)"})
    seed: int = field(default=0, metadata={"help": "seed of collection, training and evaluation"})
    progress: bool = field(default=True, metadata={"help": "show progress bars (only when stderr is a terminal)"})

    def __post_init__(self) -> None:
        checks = {"iterations": self.iterations >= 1, "goals_per_iteration": self.goals_per_iteration >= 1,
                  "workers": self.workers >= 1,
                  "theta": self.theta >= 0, "beta": self.beta > 0, "eval_episodes": self.eval_episodes >= 0,
                  "eval_mcts_episodes": self.eval_mcts_episodes >= 0, "first_goal": self.first_goal >= 0}
        from webgrove.agents.chat import PROMPT_FORMATS

        checks["prompt_format"] = self.prompt_format in PROMPT_FORMATS
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise UsageError("invalid " + ", ".join(f"--{k.replace('_', '-')} {getattr(self, k)!r}" for k in bad))
        if self.critic_trees and not self.learn_critic:
            raise UsageError("--critic-trees trains learned critics: add --learn-critic")
        if self.val_goals is not None:
            val = parse_goal_range(self.val_goals, "--val-goals")
            collected = range(self.first_goal, self.first_goal + self.iterations * self.goals_per_iteration)
            if val.start < collected.stop and collected.start < val.stop:
                raise UsageError(f"--val-goals {self.val_goals} overlaps the collected train goals "
                                 f"{collected.start}:{collected.stop}; validation goals must be unseen")
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


def collect_config(cfg: ImproveConfig, policy: str, goals: str, out: str | Path, critic: str | None = None):
    """The `webgrove collect` settings the loop uses (the demo collects its baselines' trees alike);
    `critic` replaces --critic (a learned critic's directory)."""
    from webgrove.search.collect import CollectConfig

    search = group_values(cfg, SearchArgs)
    if critic is not None:
        search["critic"] = critic
    # force_new: the loop owns its folders; trees of a model (or learned critic) since retrained are collected anew
    return CollectConfig(env=cfg.env, policy=policy, split="train", goal_range=goals,
                         out=str(out), workers=cfg.workers, **search, seed=cfg.seed,
                         num_products=cfg.num_products, progress=cfg.progress, force_new=True,
                         prompt_format=cfg.prompt_format, **group_values(cfg, BackendArgs))


def critic_for(cfg: ImproveConfig, i: int) -> str:
    """The critic iteration i collects with: --critic, or with --learn-critic the critic learned
    after iteration i-1 (`learned_critic`; iteration 1 has one only from --critic-trees)."""
    if not cfg.learn_critic or (i == 1 and not cfg.critic_trees):
        return cfg.critic
    return str(learned_critic(cfg, i - 1))


def learned_critic(cfg: ImproveConfig, i: int) -> Path:
    """OUT/iter_i/critic: a critic trained from iteration i's policy on --critic-trees and the trees
    of iterations 1..i; reused when `source.json` says the same policy and trees made it."""
    from webgrove.agents.critics import LEARNED_CRITIC_FILE
    from webgrove.training.critic_train import CriticRunConfig, train_critic

    out = iteration_dir(cfg, i) / "critic"
    trees = [f.strip() for f in (cfg.critic_trees or "").split(",") if f.strip()]
    trees += [str(iteration_dir(cfg, j) / "trees") for j in range(1, i + 1)]
    source = {"policy_fingerprint": fingerprint(model_dir(cfg, i)), "trees": trees}
    if (out / LEARNED_CRITIC_FILE).is_file() and _read_json(out / "source.json") == source:
        return out
    shutil.rmtree(out, ignore_errors=True)
    summary = train_critic(CriticRunConfig(trees=",".join(trees), model=model_dir(cfg, i), out=str(out),
                                           seed=cfg.seed))
    _write_json(out / "source.json", source)  # last: a critic without it is trained again
    print(f"improve: critic from iteration {i}'s policy on {summary['trees']} trees: validation sibling accuracy "
          f"{summary['val_after']['sibling_accuracy']}", file=sys.stderr)
    return out


def dpo_config(cfg: ImproveConfig, start_model: str, pairs: str | Path, out: str | Path):
    from webgrove.training.dpo import DPORunConfig

    return DPORunConfig(model=start_model, out=str(out), pairs=str(pairs), beta=cfg.beta,
                        loss_type=cfg.loss_type, sft_weight=cfg.sft_weight, nll_target=cfg.nll_target,
                        learning_rate=cfg.learning_rate, epochs=cfg.epochs, batch_size=cfg.batch_size,
                        lora=cfg.lora, seed=cfg.seed, progress=cfg.progress, logging_steps=5,
                        prompt_format=cfg.prompt_format)


def pairs_config(cfg: ImproveConfig, trees: str | Path, out: str | Path):
    from webgrove.training.pairs import PairsConfig

    return PairsConfig(trees=str(trees), out=str(out), kind="agentq", theta=cfg.theta, min_visits=cfg.min_visits,
                       alpha=cfg.pair_alpha, pair_kinds=cfg.pair_kinds)


def eval_config(cfg: ImproveConfig, model: str, mcts: bool, json_path: str | Path, split: str = "test",
                goals: range | None = None):
    """Rollout settings of an evaluation: test goals 0.. by default, or `goals` of `split`."""
    from webgrove.search.rollout import RolloutConfig

    search = dict(group_values(cfg, SearchArgs), simulations=cfg.eval_simulations or cfg.simulations,
                  k=cfg.eval_k or cfg.k, rollout_temperature=0.0)  # evaluation rolls out greedily
    if goals is None:
        goals = range(cfg.eval_mcts_episodes if mcts else cfg.eval_episodes)
    return RolloutConfig(policy=model, env=cfg.env, split=split, start_goal=goals.start, episodes=len(goals),
                         seed=cfg.seed, mcts=mcts, **search, num_products=cfg.num_products,
                         workers=cfg.workers, json=str(json_path), progress=cfg.progress,
                         prompt_format=cfg.prompt_format, **group_values(cfg, BackendArgs))


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, data) -> None:
    write_json_atomic(path, data, allow_nan=True)


def fingerprint(model: str) -> str:
    from webgrove.agents.fingerprint import policy_fingerprint

    return policy_fingerprint(model)


def reusable_rollout(rollout_cfg) -> dict | None:
    """The rollout written at `rollout_cfg.json` if the same policy (by fingerprint) made it on
    the same goals; else None."""
    from webgrove.search.rollout import policy_fingerprint_of

    done = _read_json(Path(rollout_cfg.json))
    if (done is not None and done.get("policy_fingerprint") == policy_fingerprint_of(rollout_cfg)
            and done.get("goal_ids") == list(rollout_cfg.goal_ids)):
        return done
    return None


def cached_rollout(rollout_cfg) -> dict:
    """`reusable_rollout`, or the rollout run now."""
    from webgrove.search.rollout import rollout

    done = reusable_rollout(rollout_cfg)
    return done if done is not None else rollout(rollout_cfg)


def cached_eval(cfg: ImproveConfig, model: str, mcts: bool, path: Path) -> dict | None:
    """The test evaluation at `path` if it was run by this model, else run it now (None when disabled)."""
    if (cfg.eval_mcts_episodes if mcts else cfg.eval_episodes) == 0:
        return None
    return cached_rollout(eval_config(cfg, model, mcts, path))


def validation_eval(cfg: ImproveConfig, model: str, path: Path) -> dict | None:
    """Greedy success on the validation goals (`--val-goals`, train split); None without them."""
    if not cfg.val_goals:
        return None
    return cached_rollout(eval_config(cfg, model, False, path, split="train",
                                      goals=parse_goal_range(cfg.val_goals, "--val-goals")))


def solved_goals(trees: str | Path) -> list[int]:
    """Goals whose tree holds a complete successful trajectory (what RFT and the pairs learn from)."""
    from webgrove.training.pairs import complete_successes, read_index, tree_files

    out = []
    for f in tree_files(trees):
        tree = read_index(f)
        if complete_successes(tree, 1.0):
            out.append(tree.goal_id)
    return sorted(out)


def fit_rate(cfg: ImproveConfig, model: str, goals: str, trees: str | Path, path: Path) -> dict | None:
    """Greedy success of `model` on the train goals `goals` ("A:B"), and the fit rate: its success
    on the goals whose tree (in `trees`) holds a complete success, the goals it was trained on."""
    if not cfg.fit_eval:
        return None
    summary = cached_rollout(eval_config(cfg, model, False, path, split="train", goals=parse_goal_range(goals)))
    solved = set(solved_goals(trees))
    hits = [s for g, s in zip(summary["goal_ids"], summary["successes"]) if g in solved]
    return {"goals": len(summary["goal_ids"]), "success_rate": summary["success_rate"],
            "solved_goals": len(hits), "fit_rate": sum(hits) / len(hits) if hits else None}


def metric_entry(summary: dict | None) -> dict | None:
    keys = ("success_rate", "success_rate_ci95", "score", "score_ci95", "episodes")
    return None if summary is None else {k: summary.get(k) for k in keys}


def prepare_iteration(cfg: ImproveConfig, i: int, log: Callable[[str], None] = print) -> None:
    """Make OUT/iter_i belong to the policy iteration i starts from: when its start.json names
    another fingerprint (the starting model was retrained since), everything in it — trees,
    pairs, model, evaluations — came from the old model and is deleted."""
    d = iteration_dir(cfg, i)
    start = {"policy": model_dir(cfg, i - 1), "fingerprint": fingerprint(model_dir(cfg, i - 1))}
    recorded = _read_json(d / "start.json")
    if recorded is not None and recorded.get("fingerprint") != start["fingerprint"]:
        log(f"improve: iteration {i}: its starting policy changed since {d} was made; starting it over")
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    _write_json(d / "start.json", start)


def train_iteration(cfg: ImproveConfig, i: int, stats: dict) -> dict:
    """DPO from the previous policy on iteration i's pairs (the policy is copied when there are none)."""
    from webgrove.training.dpo import train_dpo

    d, policy, model = iteration_dir(cfg, i), model_dir(cfg, i - 1), model_dir(cfg, i)
    if (Path(model) / "config.json").is_file():
        return _read_json(Path(model) / "train_result.json") or {}
    if stats["rows"] == 0:
        print(f"improve: iteration {i}: no preference pairs in {d / 'trees'} (theta={cfg.theta}); the policy "
              "stays as it was (collect more goals or simulations, or lower --theta)", file=sys.stderr)
        shutil.copytree(policy, model, ignore=shutil.ignore_patterns("checkpoints"))
        return {"note": "no pairs: policy unchanged"}
    return train_dpo(dpo_config(cfg, policy, d / "pairs.jsonl", model))


def run_iteration(cfg: ImproveConfig, i: int, log: Callable[[str], None] = print) -> dict:
    """Iteration i (1-based): collect, build pairs, train, evaluate. Returns its record."""
    from webgrove.search.collect import run_collect
    from webgrove.training.pairs import build_pairs_file

    prepare_iteration(cfg, i, log)
    d, model = iteration_dir(cfg, i), model_dir(cfg, i)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    critic = critic_for(cfg, i)
    collected = run_collect(collect_config(cfg, model_dir(cfg, i - 1), goal_block(cfg, i), d / "trees", critic))
    release_actors()  # --backend ray: free the collection actors (they hold a policy no later call uses)
    seconds["collect"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = build_pairs_file(pairs_config(cfg, d / "trees", d / "pairs.jsonl"))
    _write_json(d / "pairs_stats.json", stats)
    seconds["pairs"] = time.perf_counter() - t
    log(f"improve: iteration {i}: {stats['rows']} pairs from {stats['trees']} trees")

    t = time.perf_counter()
    train = train_iteration(cfg, i, stats)
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    greedy = cached_eval(cfg, model, False, d / "eval.json")
    search = cached_eval(cfg, model, True, d / "eval_mcts.json")
    val = validation_eval(cfg, model, d / "eval_val.json")
    fit = fit_rate(cfg, model, goal_block(cfg, i), d / "trees", d / "eval_fit.json")
    seconds["eval"] = time.perf_counter() - t
    record = {
        "iteration": i, "model": model, "fingerprint": fingerprint(model), "goals": goal_block(cfg, i), "critic": critic,
        "collect": {k: collected[k] for k in ("trees", "nodes", "success_rate", "score")},
        "pairs": {k: v for k, v in stats.items() if k != "out"},
        "train": {k: train.get(k) for k in ("steps", "train_loss", "seconds", "tokens_per_second", "note")},
        GREEDY: metric_entry(greedy), SEARCH: metric_entry(search), VALIDATION: metric_entry(val), "fit": fit,
        "seconds": seconds,
    }
    _write_json(d / "done.json", record)
    return record


def start_record(cfg: ImproveConfig) -> dict:
    """Iteration 0: the starting policy's evaluation (cached in OUT/iter_0)."""
    d = iteration_dir(cfg, 0)
    on = cfg.eval_start
    greedy = cached_eval(cfg, cfg.model, False, d / "eval.json") if on else None
    search = cached_eval(cfg, cfg.model, True, d / "eval_mcts.json") if on else None
    val = validation_eval(cfg, cfg.model, d / "eval_val.json") if on else None
    return {"iteration": 0, "model": cfg.model, "fingerprint": fingerprint(cfg.model), GREEDY: metric_entry(greedy),
            SEARCH: metric_entry(search), VALIDATION: metric_entry(val)}


def finished_record(cfg: ImproveConfig, i: int) -> dict | None:
    """Iteration i's record if it finished from the policy it would start from now."""
    done = _read_json(iteration_dir(cfg, i) / "done.json")
    start = _read_json(iteration_dir(cfg, i) / "start.json")
    if done is None or start is None or start.get("fingerprint") != fingerprint(model_dir(cfg, i - 1)):
        return None
    return done


def run_improve(cfg: ImproveConfig) -> dict:
    """Run (or resume) the loop; returns the metrics written to OUT/metrics.json."""
    with backend_session(cfg):  # --backend ray: one Ray connection for every collection and evaluation
        return _run_improve(cfg)


def _run_improve(cfg: ImproveConfig) -> dict:
    from webgrove.provenance import provenance
    from webgrove.training.plots import plot_iterations

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [start_record(cfg)]
    for i in range(1, cfg.iterations + 1):
        done = finished_record(cfg, i)
        if done is not None:
            print(f"improve: iteration {i} already finished; skipping")
            records.append(done)
            continue
        records.append(run_iteration(cfg, i))
        r = records[-1]
        evals = [f"{m} success {r[m]['success_rate']:.3f} score {r[m]['score']:.1f}"
                 for m in (GREEDY, SEARCH, VALIDATION) if r[m]]
        if r["fit"]:
            evals.append(f"fit rate {r['fit']['fit_rate']} on {r['fit']['solved_goals']} solved train goals")
        if evals:
            print(f"improve: iteration {i}: " + ", ".join(evals))
    metrics = {"iterations": records, "config": asdict(cfg), "final_model": model_dir(cfg, cfg.iterations),
               "provenance": provenance()}
    _write_json(out / METRICS_FILE, metrics)
    plot_iterations(records, out / PLOT_FILE, methods=(GREEDY, SEARCH, VALIDATION))
    return metrics


def run_improve_command(cfg: ImproveConfig) -> int:
    metrics = run_improve(cfg)
    print(f"improve: metrics in {Path(cfg.out) / METRICS_FILE}, plot in {Path(cfg.out) / PLOT_FILE}, "
          f"final model {metrics['final_model']}", file=sys.stdout)
    return 0
