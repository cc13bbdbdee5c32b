"""Collection and rollouts log namespaced metrics into one TensorBoard run dir."""
from __future__ import annotations

import pytest
import tensorboard  # noqa: F401  (the `track` extra, installed by `make test`: fail, never skip)

from webgrove.envs.errors import UsageError
from webgrove.search.collect import CollectConfig, run_collect
from webgrove.search.rollout import RolloutConfig, rollout
from webgrove.search.tracking import TrackingArgs, log_metrics, read_scalars, scalar_metrics


def test_only_finite_numbers_are_logged():
    assert scalar_metrics({"a": 1, "b": 0.5, "ok": True, "name": "x", "nested": {"c": 1}, "bad": float("nan")},
                          "ns") == {"ns/a": 1.0, "ns/b": 0.5, "ns/ok": 1.0}


def test_nothing_is_written_without_a_tracker(tmp_path):
    log_metrics(TrackingArgs(run_dir=str(tmp_path / "run")), "collect", {"a": 1.0})
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="report-to"):
        TrackingArgs(report_to="mlflow")


def test_collection_and_evaluation_share_one_run(tmp_path):
    run_dir = tmp_path / "run"
    track = dict(report_to="tensorboard", run_dir=str(run_dir), track_step=2)
    summary = run_collect(CollectConfig(env="webgrove/WebShop-v0", policy="rule", critic="lexical", num_products=200,
                                        simulations=2, k=2, goal_range="0:2", out=str(tmp_path / "trees"),
                                        progress=False, **track))
    result = rollout(RolloutConfig(env="webgrove/WebShop-v0", policy="rule", num_products=200, episodes=3,
                                   progress=False, **track))
    scalars = read_scalars(run_dir)
    assert scalars["collect/trees"] == [(2, 2.0)] and scalars["collect/success_rate"] == [(2, summary["success_rate"])]
    assert scalars["collect/trees_per_s"][0][1] > 0
    assert scalars["eval/success_rate"] == [(2, pytest.approx(result["success_rate"]))]
    assert scalars["eval/score"] == [(2, pytest.approx(result["score"]))]
    # a later collection with the same settings (another backend's flags do not matter) resumes
    again = run_collect(CollectConfig(env="webgrove/WebShop-v0", policy="rule", critic="lexical", num_products=200,
                                      simulations=2, k=2, goal_range="0:2", out=str(tmp_path / "trees"),
                                      progress=False))
    assert again["skipped"] == 2
