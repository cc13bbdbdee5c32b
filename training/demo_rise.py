"""The demo's RISE phase (`webgrove demo`, `DemoConfig.rise`): RISE trained from the demo's base,
and success by attempt for base, Agent Q and RISE on every test goal.

1. **collect**: multi-attempt rollouts of the base (T = `rise_attempts` attempts of at most
   `max_depth` steps, `components` feedback) on the collection blocks' train goals. The improved
   next attempt after each failed one is the best path of that goal's tree in the pool: search
   as the teacher, from the same trees every other method learns from (no oracle data after
   behaviour cloning; RISE's own rollouts are extra interaction with the train goals);
2. **train**: RISE's filter (`rise_filter`) and weights exp(r/τ), weighted SFT from the base with
   the RFT / Agent-R settings (`webgrove.training.rise`, `webgrove.training.weighted_sft`);
3. **eval**, on one pool of workers: the RISE model greedily on the test goals (its table row,
   evaluated as every method is), and base, Agent Q and RISE with T attempts on every test goal
   (`webgrove rollout --attempts`; with oracle: an episode stops at its first success), success
   rate and score at t = 1..T with 95% intervals, plotted to OUT/attempts.png.

Cost: the with-oracle run only (no without-oracle or parallel runs: `benchmarks/rise.py` has
them), and attempts cut at `max_depth` steps -- the base and Agent Q never saw an attempt
block, and their later attempts mostly run to the step limit.

Outputs: OUT/rise/ (the RISE loop's folder, resumable), OUT/rise.base.json (the base it came
from: another base starts it over), OUT/eval/rise.json and OUT/eval/attempts_<method>.json.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from webgrove.io import write_json_atomic

ATTEMPT_METHODS = ("base", "agent_q", "rise")
ATTEMPTS_PLOT = "attempts.png"


def rise_improve_config(cfg, base: str, pool: list[Path]):
    """The RISE loop's settings in the demo: one iteration on the collection blocks' goals."""
    from webgrove.training.demo import demo_splits
    from webgrove.training.rise import RiseImproveConfig

    start, stop = demo_splits(cfg)["blocks"]
    return RiseImproveConfig(
        model=base, out=str(Path(cfg.out) / "rise"), iterations=1, num_products=cfg.num_products,
        first_goal=start, goals_per_iteration=stop - start, attempts=cfg.rise_attempts, max_steps=cfg.max_depth,
        feedback="components", improve="search", trees=",".join(str(d) for d in pool), filter=cfg.rise_filter,
        tau=cfg.rise_tau, learning_rate=cfg.sft_learning_rate, epochs=cfg.sft_epochs, batch_size=8, eval_goals=0,
        seed=cfg.seed, progress=cfg.progress)


def train_rise(cfg, base: str, pool: list[Path]) -> tuple[str, dict]:
    """The RISE model (trained now unless OUT/rise holds one from this base) and its data stats."""
    from webgrove.training.loop import fingerprint
    from webgrove.training.rise import run_rise_improve

    out, recorded = Path(cfg.out) / "rise", Path(cfg.out) / "rise.base.json"
    if not (recorded.is_file() and json.loads(recorded.read_text()) == fingerprint(base)):
        shutil.rmtree(out, ignore_errors=True)  # another base's, or half-written
        recorded.unlink(missing_ok=True)
    metrics = run_rise_improve(rise_improve_config(cfg, base, pool))
    write_json_atomic(recorded, fingerprint(base))
    last = metrics["iterations"][-1]
    return metrics["final_model"], {k: last.get(k) for k in ("rows", "collect", "train")}


def rise_rollouts(cfg, models: dict[str, str]) -> dict[str, object]:
    """name -> RolloutConfig: "rise" (greedy, the table row) and "<method> x T" for each attempt method."""
    from webgrove.search.rollout import RolloutConfig

    ev = Path(cfg.out) / "eval"
    common = dict(split="test", episodes=cfg.eval_episodes, seed=cfg.seed, num_products=cfg.num_products,
                  progress=cfg.progress)
    out = {"rise": RolloutConfig(policy=models["rise"], json=str(ev / "rise.json"), **common)}
    for m in ATTEMPT_METHODS:
        out[f"{m} x T"] = RolloutConfig(policy=models[m], attempts=cfg.rise_attempts, feedback="components",
                                        max_steps=cfg.max_depth, without_oracle=False, parallel=False,
                                        json=str(ev / f"attempts_{m}.json"), **common)
    return out


def _reusable(rc) -> dict | None:
    """A finished rollout of the same policy on the same goals with the same attempt settings."""
    from webgrove.training.loop import reusable_rollout

    done = reusable_rollout(rc)
    same = done is not None and all(done.get("config", {}).get(k) == getattr(rc, k)
                                    for k in ("attempts", "feedback", "max_steps", "without_oracle", "parallel"))
    return done if same else None


def run_rise(cfg, base: str, pool: list[Path], methods: dict[str, dict], timer) -> dict:
    """Train RISE, evaluate it (adds `methods["rise"]`) and every attempt method; returns the
    results' "rise" entry: by-attempt curves (with oracle) per method, data stats, plot path."""
    from webgrove.search.attempts import retry_counts
    from webgrove.search.rollout import rollout_many
    from webgrove.training.demo import method_models
    from webgrove.training.plots import plot_attempts

    with timer("rise"):
        rise_model, data = train_rise(cfg, base, pool)
    models = {"base": base, "agent_q": method_models(cfg, base)["agent_q"][0], "rise": rise_model}
    rollouts = rise_rollouts(cfg, models)
    results = {name: _reusable(rc) for name, rc in rollouts.items()}
    todo = [name for name, done in results.items() if done is None]
    with timer("rise_eval"):  # one pool of workers for all of them
        results.update(zip(todo, rollout_many([rollouts[n] for n in todo], cfg.workers) if todo else []))
    methods["rise"] = results["rise"]
    curves = {m: results[f"{m} x T"]["by_attempt"]["sequential_oracle"] for m in ATTEMPT_METHODS}
    plot = plot_attempts(curves, Path(cfg.out) / ATTEMPTS_PLOT,
                         title=f"test goals ({cfg.eval_episodes}): success by attempt, components feedback, "
                               "with oracle; 95% intervals in results.json")
    retries = {m: retry_counts(results[f"{m} x T"]["attempt_outcomes"], cfg.rise_attempts) for m in ATTEMPT_METHODS}
    return {"attempts": cfg.rise_attempts, "feedback": "components", "max_steps": cfg.max_depth,
            "by_attempt": curves, "retries": retries, "data": data, "plot": str(plot),
            "seconds": {m: results[f"{m} x T"].get("seconds") for m in ATTEMPT_METHODS}}


def format_rise(rise: dict) -> str:
    """Success (%) at each attempt per method, one line each; then each method's retries."""
    from webgrove.search.attempts import format_retries

    lines = [f"success % by attempt t = 1..{rise['attempts']} (feedback {rise['feedback']}, with oracle):"]
    for m, c in rise["by_attempt"].items():
        lines.append(f"  {m:<8} " + "  ".join(f"{100 * s:5.1f}" for s in c["success_rate"]))
    if rise.get("retries"):
        lines.append("each retry against the attempt before it:")
        lines += [f"  {m:<8} {line}" for m, retries in rise["retries"].items()
                  for line in format_retries(retries).splitlines()]
    return "\n".join(lines)
