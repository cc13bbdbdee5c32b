"""Intervals and paired comparisons (webgrove/stats.py) against hand-computed values."""
from __future__ import annotations

import pytest

from webgrove.stats import (binomial_two_sided_p, bootstrap_mean_interval, mcnemar_exact, outcome_summary,
                            paired_comparison, wilson_interval)


def test_wilson_interval_known_values():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # never below 0, unlike the normal interval
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_sign_test_and_mcnemar():
    assert binomial_two_sided_p(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided_p(1, 10) == pytest.approx(2 * 11 / 1024)
    assert binomial_two_sided_p(5, 10) == 1.0 and binomial_two_sided_p(0, 0) == 1.0
    base = [True, True, False, False, False, False]
    new = [True, False, True, True, True, False]
    assert mcnemar_exact(base, new) == {"only_base": 1, "only_method": 3, "p": pytest.approx(2 * 5 / 16)}


def test_bootstrap_interval_is_reproducible_and_covers_the_mean():
    values = [0.0, 1.0] * 50
    lo, hi = bootstrap_mean_interval(values, seed=3)
    assert (lo, hi) == bootstrap_mean_interval(values, seed=3)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.05, abs=0.03)
    assert bootstrap_mean_interval([0.7] * 20) == pytest.approx((0.7, 0.7))


def test_outcome_summary_and_paired_comparison_by_goal():
    s = outcome_summary([1.0, 0.5, 0.0, 1.0], [True, False, False, True])
    assert s["success_rate"] == 0.5 and s["score"] == 62.5 and s["episodes"] == 4
    assert s["success_rate_ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    base = {"goal_ids": [3, 1, 2, 0], "rewards": [0.0, 0.5, 1.0, 0.0], "successes": [False, False, True, False]}
    # the method ran goals in another order and one extra goal: pairing goes by goal id
    method = {"goal_ids": [0, 1, 2, 3, 9], "rewards": [1.0, 1.0, 1.0, 0.0, 1.0],
              "successes": [True, True, True, False, True]}
    c = paired_comparison(base, method)
    assert c["goals"] == 4 and c["success_diff"] == 0.5 and c["score_diff"] == pytest.approx(37.5)
    assert c["mcnemar"] == {"only_base": 0, "only_method": 2, "p": 0.5}
    assert c["success_diff_ci95"][0] <= 0.5 <= c["success_diff_ci95"][1]
    with pytest.raises(ValueError, match="share no goal"):
        paired_comparison(base, {"goal_ids": [7], "rewards": [1.0], "successes": [True]})
