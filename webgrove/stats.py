"""Confidence intervals and paired comparisons for evaluation results (pure functions).

Every evaluation in webgrove runs each method on the same goals with the same seeds, so two
methods are compared goal by goal (paired), never as two independent samples:

- a success rate gets Wilson's score interval (good at small n and near 0 or 1);
- a score (100 × mean reward) gets a percentile bootstrap interval over goals;
- a difference between two methods on the same goals gets a paired bootstrap interval
  (goals resampled with replacement, both methods' outcomes kept together) and, for success,
  McNemar's exact test: a two-sided binomial test on the goals where exactly one method
  succeeded (the discordant pairs).

Bootstraps draw from `numpy.random.default_rng(seed)`, so every figure is reproducible.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Z95 = 1.959963984540054  # standard normal quantile for a two-sided 95% interval
BOOTSTRAP_SAMPLES = 4000


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate (0-1). n = 0 gives (0, 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _percentiles(samples, confidence: float) -> tuple[float, float]:
    import numpy as np

    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_mean_interval(values: Sequence[float], confidence: float = 0.95, seed: int = 0,
                            samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, x.size, size=(samples, x.size))
    return _percentiles(x[idx].mean(axis=1), confidence)


def paired_bootstrap_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, seed: int = 0,
                              samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """Interval of mean(b - a) with goals resampled together (a[i] and b[i]: the same goal)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return bootstrap_mean_interval([y - x for x, y in zip(a, b)], confidence, seed, samples)


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n fair coin flips (the sign test)."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """McNemar's exact test on paired successes: counts of goals only `a` / only `b` solved, and p."""
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b))
    return {"only_base": only_a, "only_method": only_b, "p": binomial_two_sided_p(only_a, only_a + only_b)}


def outcome_summary(rewards: Sequence[float], successes: Sequence[bool], seed: int = 0) -> dict:
    """Success rate (0-1) and score (0-100) with their 95% intervals."""
    n = len(rewards)
    wins = sum(bool(s) for s in successes)
    lo, hi = bootstrap_mean_interval(rewards, seed=seed)
    return {"episodes": n, "success_rate": wins / n if n else 0.0,
            "success_rate_ci95": list(wilson_interval(wins, n)),
            "score": 100.0 * sum(rewards) / n if n else 0.0, "score_ci95": [100.0 * lo, 100.0 * hi]}


def per_goal(result: Mapping) -> dict[int, tuple[float, bool]]:
    """goal id -> (reward, success) from a results JSON (`goal_ids`, `rewards`, `successes`)."""
    return {g: (r, s) for g, r, s in zip(result["goal_ids"], result["rewards"], result["successes"])}


def paired_comparison(base: Mapping, method: Mapping, seed: int = 0) -> dict:
    """`method` minus `base` on the goals both ran: differences of success rate (0-1) and
    score (0-100), their paired-bootstrap 95% intervals, and McNemar's exact p for success.

    Raises:
        ValueError: the two results share no goal.
    """
    a, b = per_goal(base), per_goal(method)
    goals = sorted(set(a) & set(b))
    if not goals:
        raise ValueError("the two results share no goal: a paired comparison needs the same goals")
    sa, sb = [float(a[g][1]) for g in goals], [float(b[g][1]) for g in goals]
    ra, rb = [a[g][0] for g in goals], [b[g][0] for g in goals]
    d_lo, d_hi = paired_bootstrap_interval(sa, sb, seed=seed)
    s_lo, s_hi = paired_bootstrap_interval(ra, rb, seed=seed)
    n = len(goals)
    return {"goals": n, "success_diff": (sum(sb) - sum(sa)) / n, "success_diff_ci95": [d_lo, d_hi],
            "score_diff": 100.0 * (sum(rb) - sum(ra)) / n, "score_diff_ci95": [100.0 * s_lo, 100.0 * s_hi],
            "mcnemar": mcnemar_exact([bool(x) for x in sa], [bool(x) for x in sb])}
