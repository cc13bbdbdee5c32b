"""Experiment tracking: `--report-to tensorboard --run-dir DIR`.

Training passes `--report-to` through to TRL (its `TrainingArguments.report_to`: the
Trainer logs `train/loss`, `train/rewards/margins`, ...). Collection and rollouts log
their summaries here, namespaced (`collect/trees_per_s`, `collect/success_rate`,
`eval/success_rate`, `eval/score`, ...), so a collection, its training and its
evaluation given the same `--run-dir` are one TensorBoard run. `--track-step` is the x
value the summary is logged at (e.g. the improve loop's iteration).

The writer is TensorBoard's own framework-free `tensorboard.summary.Writer` (numpy only),
so scripted collection needs no torch; install it with the `track` extra.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webgrove.envs.errors import UsageError
from webgrove.envs.make import next_post_init

TRACKERS = ("none", "tensorboard")
RUNS_FOLDER = "runs"  # the default run dir, under a command's --out


@dataclass(kw_only=True)
class TrackingArgs:
    """Where metrics go: shared by collection and rollouts (training has the same flags)."""

    report_to: str = field(default="none", metadata={
        "help": "experiment tracker for the run's metrics (none | tensorboard)", "choices": list(TRACKERS)})
    run_dir: str | None = field(default=None, metadata={
        "help": "tracker folder; give collection, training and evaluation the same one to see them as one run "
                "(default: OUT/runs, or runs/ for commands without --out)"})
    track_step: int = field(default=0, metadata={"help": "step the summary metrics are logged at (e.g. an iteration)"})

    def __post_init__(self) -> None:
        if self.report_to not in TRACKERS:
            raise UsageError(f"--report-to must be one of {', '.join(TRACKERS)}, got {self.report_to!r}")
        if self.report_to != "none":
            require_tracker(self.report_to)
        next_post_init(self, TrackingArgs)

    def tracking_dir(self) -> Path:
        """`run_dir`, else OUT/runs for a config with an `out` folder, else ./runs."""
        if self.run_dir:
            return Path(self.run_dir)
        out = getattr(self, "out", None)
        return Path(out) / RUNS_FOLDER if out else Path(RUNS_FOLDER)


def require_tracker(name: str) -> None:
    """A UsageError naming the extra when the tracker's package is missing."""
    if name == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError("--report-to tensorboard needs TensorBoard: pip install 'webgrove[track]'") from None


def scalar_metrics(metrics: dict[str, Any], namespace: str) -> dict[str, float]:
    """The finite numbers of `metrics` (bools as 0/1), named `namespace/key`."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, float)) and math.isfinite(float(value)):
            out[f"{namespace}/{key}"] = float(value)
    return out


def log_metrics(args: TrackingArgs, namespace: str, metrics: dict[str, Any]) -> dict[str, float]:
    """Log the numeric entries of `metrics` under `namespace/` at `args.track_step`; returns them.

    Nothing is written when `args.report_to` is "none".
    """
    scalars = scalar_metrics(metrics, namespace)
    if args.report_to == "tensorboard" and scalars:
        from tensorboard.summary import Writer

        folder = args.tracking_dir()
        folder.mkdir(parents=True, exist_ok=True)
        writer = Writer(str(folder))
        try:
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, step=args.track_step)
        finally:
            writer.close()
    return scalars


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a TensorBoard folder (all event files below it): tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(Path(run_dir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags().get("tensors", []):  # scalars written by tensorboard.summary.Writer
            points = [(e.step, _tensor_value(e.tensor_proto)) for e in acc.Tensors(tag)]
            if points and all(v is not None for _, v in points):
                out.setdefault(tag, []).extend(points)  # type: ignore[arg-type]
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, []).extend((e.step, float(e.value)) for e in acc.Scalars(tag))
    return out


def _tensor_value(proto: Any) -> float | None:
    """The number in a scalar tensor summary; None for anything else (text, histograms)."""
    from tensorboard.util import tensor_util

    value = tensor_util.make_ndarray(proto)
    return float(value) if value.size == 1 and value.dtype.kind in "biuf" else None
