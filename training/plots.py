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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_methods(methods: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Bars of success rate and score per method (the demo's results)."""
    plt = _pyplot()
    names = list(methods)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (key, label, scale) in zip(axes, METRICS):
        values = [float(methods[n][key]) * scale for n in names]
        bars = ax.bar(range(len(names)), values, color=["#8da0cb" if "+mcts" in n else "#66c2a5" for n in names])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
