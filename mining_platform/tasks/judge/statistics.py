"""The statistics of realised performance: analytic confidence intervals, the paired comparison of two versions
scored on the same rows, several days pooled, calibration bins. The task judges compute their metrics with them.

Intervals are analytic, so they cost one pass over the rows however many there are:

- AUC: DeLong's variance (the fast midrank form of Sun & Xu, 2014), which also gives the
  covariance of two versions' AUCs on the same rows, hence the variance of their difference.
- Log loss, MAE, MSE: means of per-row losses, so a normal interval on the mean (and, for
  two versions, on the mean of the per-row loss differences: a paired comparison).
  RMSE's interval is the square root of MSE's; R² compares exactly as MSE does on the same rows.

A comparison is oriented so that a positive difference means the challenger is better.
Several days combine by inverse-variance weighting (`pool`): entities recur across days,
so days are not independent and the pooled interval is too narrow; the sensor therefore
also asks every day to point the same way.
"""

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    variance: float

    def as_dict(self) -> dict:
        """JSON-safe: an undefined or unbounded value is null."""
        return {k: round(v, 6) if np.isfinite(v) else None for k, v in asdict(self).items()}


def interval(estimate: float, variance: float, confidence: float) -> Interval:
    z = stats.norm.ppf(0.5 + confidence / 2)
    half = z * np.sqrt(max(variance, 0.0))
    return Interval(float(estimate), float(estimate - half), float(estimate + half), float(max(variance, 0.0)))


def _delong_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per version (rows of `scores`): the AUC, and DeLong's structural components of positives and negatives."""
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    pos, neg = scores[:, positive], scores[:, ~positive]
    tx = stats.rankdata(pos, axis=1)
    ty = stats.rankdata(neg, axis=1)
    tz = stats.rankdata(np.hstack([pos, neg]), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v01, v10


def delong(y: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of one or more versions scored on the same rows, and their covariance matrix (DeLong)."""
    matrix = np.vstack(scores).astype(np.float64)
    aucs, v01, v10 = _delong_components(np.asarray(y), matrix)
    m, n = v01.shape[1], v10.shape[1]
    sx = np.atleast_2d(np.cov(v01)) if m > 1 else np.zeros((len(scores), len(scores)))
    sy = np.atleast_2d(np.cov(v10)) if n > 1 else np.zeros((len(scores), len(scores)))
    return aucs, sx / m + sy / n


def mean_interval(values: np.ndarray, confidence: float) -> Interval:
    variance = float(np.var(values, ddof=1) / len(values)) if len(values) > 1 else float("inf")
    return interval(float(np.mean(values)), variance, confidence)


def calibration(y: np.ndarray, scores: np.ndarray, *, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Per bin of predictions (equal width for probabilities, quantiles for values): rows, mean prediction, mean
    realised label: a calibrated version has the two equal."""
    binary = set(np.unique(y)).issubset({0, 1}) and scores.min() >= 0 and scores.max() <= 1
    edges = np.linspace(0, 1, bins + 1) if binary else np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, len(edges) - 2)
    table = []
    for b in range(len(edges) - 1):
        chosen = which == b
        if chosen.any():
            table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "rows": int(chosen.sum()),
                          "predicted": float(scores[chosen].mean()), "realised": float(y[chosen].mean())})
    return table


@dataclass(frozen=True)
class Realised:
    """One version's realised metrics on one set of rows."""

    rows: int
    metrics: dict[str, float]  # every metric of the task (a metric that is undefined on these rows is absent)
    intervals: dict[str, Interval]
    calibration: list[dict]
    expected_calibration_error: float | None = None  # binary: the rows-weighted |predicted - realised|


def pool(days: list[Interval], *, confidence: float) -> Interval:
    """Several days' differences as one inverse-variance-weighted estimate."""
    finite = [d for d in days if np.isfinite(d.variance)]
    if not finite:
        return Interval(float("nan"), float("-inf"), float("inf"), float("inf"))
    if any(d.variance == 0 for d in finite):  # identical scores: nothing to weigh
        estimate = float(np.mean([d.estimate for d in finite]))
        return interval(estimate, 0.0, confidence)
    weights = np.array([1.0 / d.variance for d in finite])
    estimate = float(np.sum(weights * np.array([d.estimate for d in finite])) / weights.sum())
    return interval(estimate, float(1.0 / weights.sum()), confidence)
