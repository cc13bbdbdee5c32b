"""PNG plots of success rate and score: per iteration (the loop) and per method (the demo)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

METRICS = (("success_rate", "success rate (%)", 100.0), ("score", "score (0-100)", 1.0))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def iteration_series(records: list[dict], method: str, key: str) -> tuple[list[int], list[float]]:
    """(iterations, values) where `method` has a value for `key`."""
    xs, ys = [], []
    for r in records:
        entry = r.get(method)
        if entry and entry.get(key) is not None:
            xs.append(r["iteration"])
            ys.append(float(entry[key]))
    return xs, ys


def plot_iterations(records: list[dict], path: str | Path, methods: Sequence[str]) -> Path:
    """Success rate and score per iteration, one line per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (key, label, scale) in zip(axes, METRICS):
        for method in methods:
            xs, ys = iteration_series(records, method, key)
            if xs:
                ax.plot(xs, [y * scale for y in ys], marker="o", label=method)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_xticks(sorted({r["iteration"] for r in records}))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best", fontsize=8)
    return _save(fig, plt, path)


def _errors(entries: list[dict], key: str, scale: float):
    """Asymmetric error bars (2, n) from each entry's `key`_ci95, or None when one lacks it."""
    cis = [e.get(key + "_ci95") for e in entries]
    if any(ci is None for ci in cis):
        return None
    # clamped at 0: a bootstrap interval of identical values can miss its mean by a rounding error
    return [[max(0.0, scale * (float(e[key]) - ci[0])) for e, ci in zip(entries, cis)],
            [max(0.0, scale * (ci[1] - float(e[key]))) for e, ci in zip(entries, cis)]]


def plot_methods(methods: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Bars of success rate and score per method (the demo's results), with 95% intervals
    as error bars where the results carry them."""
    plt = _pyplot()
    names = list(methods)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (key, label, scale) in zip(axes, METRICS):
        values = [float(methods[n][key]) * scale for n in names]
        bars = ax.bar(range(len(names)), values, color=["#8da0cb" if "+mcts" in n else "#66c2a5" for n in names],
                      yerr=_errors([methods[n] for n in names], key, scale), capsize=3)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, label_type="center")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_validation_iterations(iterations: list[dict], baselines: dict[str, dict | None], path: str | Path,
                               key: str = "agent_q (validation)") -> Path:
    """Validation success rate per Agent Q iteration (0: the base) with 95% intervals, and each
    baseline trained once on the same number of trees as a dashed line at the last iteration's level."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    points = [(r["iteration"], r[key]) for r in iterations if r.get(key)]
    if points:
        xs, entries = [x for x, _ in points], [e for _, e in points]
        ax.errorbar(xs, [100 * e["success_rate"] for e in entries], yerr=_errors(entries, "success_rate", 100),
                    marker="o", capsize=3, label="agent_q (greedy)")
        ax.set_xticks(xs)
    for name, entry in baselines.items():
        if entry and name not in ("base", "agent_q"):
            ax.axhline(100 * entry["success_rate"], linestyle="--", linewidth=1, label=name,
                       color={"rft": "#fc8d62", "outcome_dpo": "#8da0cb", "agent_r": "#e78ac3"}.get(name))
    ax.set_xlabel("iteration (0 = base)")
    ax.set_ylabel("validation success rate (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    return _save(fig, plt, path)


def plot_attempts(curves: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Success rate and score at each attempt t = 1..T, one line per curve (RISE's evaluation).

    `curves` maps a name (e.g. "base sequential", "rise parallel") to {"success_rate": [...],
    "score": [...]}, one value per attempt.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (key, label, scale) in zip(axes, METRICS):
        for name, curve in curves.items():
            ys = [float(y) * scale for y in curve[key]]
            ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name,
                    linestyle="--" if "parallel" in name else "-")
        ax.set_xlabel("attempt t")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_xticks(range(1, 1 + max((len(c[key]) for c in curves.values()), default=1)))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, plt, path)
