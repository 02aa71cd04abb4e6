"""Realised performance: the metrics of scores against labels that matured, with confidence intervals, and the
comparison of two versions scored on the same rows.

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

from mining_platform.metrics import evaluate

# The metric two versions are compared on, per gate metric: one with an analytic paired interval that orders
# versions as the gate metric does (PR AUC is compared on AUC; R² and RMSE on MSE, which ranks them identically).
COMPARED_ON = {"auc": "auc", "pr_auc": "auc", "logloss": "logloss", "r2": "mse", "rmse": "mse", "mae": "mae"}
EPSILON = 1e-15  # log loss clips probabilities as scikit-learn does
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


def _interval(estimate: float, variance: float, confidence: float) -> Interval:
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


def row_losses(task: str, metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-row losses whose mean is the metric: log loss, absolute error, squared error."""
    if metric == "logloss":
        p = np.clip(scores, EPSILON, 1 - EPSILON)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if metric == "mae":
        return np.abs(y - scores)
    if metric == "mse":
        return (y - scores) ** 2
    raise ValueError(f"no per-row loss for {metric!r}")


def _mean_interval(values: np.ndarray, confidence: float) -> Interval:
    variance = float(np.var(values, ddof=1) / len(values)) if len(values) > 1 else float("inf")
    return _interval(float(np.mean(values)), variance, confidence)


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


def realised(task: str, y: np.ndarray, scores: np.ndarray, *, confidence: float) -> Realised:
    """The task's metrics (those `evaluate` logs at training) and their intervals, on matured labels."""
    y, scores = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    rows = len(y)
    if rows == 0:
        return Realised(0, {}, {}, [])
    intervals: dict[str, Interval] = {}
    if task == "binary":
        one_class = len(np.unique(y)) < 2
        metrics = {"positive_rate": float(y.mean()),
                   "logloss": float(np.mean(row_losses(task, "logloss", y, scores))),
                   "brier": float(np.mean((scores - y) ** 2))}
        if not one_class:  # AUC and PR AUC need both classes
            metrics.update({k: v for k, v in evaluate(task, y.astype(int), scores).items() if k in ("auc", "pr_auc")})
            aucs, covariance = delong(y, scores)
            intervals["auc"] = _interval(float(aucs[0]), float(covariance[0, 0]), confidence)
        intervals["logloss"] = _mean_interval(row_losses(task, "logloss", y, scores), confidence)
        table = calibration(y, scores)
        ece = sum(b["rows"] * abs(b["predicted"] - b["realised"]) for b in table) / rows
        return Realised(rows, metrics, intervals, table, float(ece))
    metrics = evaluate(task, y, scores) if rows > 1 else {"mae": float(np.abs(y - scores).mean())}
    metrics["mse"] = float(np.mean((y - scores) ** 2))
    intervals["mae"] = _mean_interval(row_losses(task, "mae", y, scores), confidence)
    mse = _mean_interval(row_losses(task, "mse", y, scores), confidence)
    intervals["mse"] = mse
    intervals["rmse"] = Interval(float(np.sqrt(mse.estimate)), float(np.sqrt(max(mse.low, 0.0))),
                                 float(np.sqrt(max(mse.high, 0.0))), float("nan"))
    return Realised(rows, metrics, intervals, calibration(y, scores))


def compare(task: str, gate_metric: str, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, *,
            confidence: float) -> Interval | None:
    """challenger − champion on the same rows, on the metric `gate_metric` is compared on, oriented so that
    positive means the challenger is better; None when it is undefined on these rows (one class)."""
    y = np.asarray(y, dtype=np.float64)
    metric = COMPARED_ON[gate_metric]
    if len(y) < 2:
        return None
    if metric == "auc":
        if len(np.unique(y)) < 2:
            return None
        aucs, covariance = delong(y, champion, challenger)
        variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
        return _interval(float(aucs[1] - aucs[0]), float(variance), confidence)
    # Losses: champion's minus challenger's, per row (positive: the challenger lost less).
    return _mean_interval(row_losses(task, metric, y, champion) - row_losses(task, metric, y, challenger), confidence)


def pool(days: list[Interval], *, confidence: float) -> Interval:
    """Several days' differences as one inverse-variance-weighted estimate."""
    finite = [d for d in days if np.isfinite(d.variance)]
    if not finite:
        return Interval(float("nan"), float("-inf"), float("inf"), float("inf"))
    if any(d.variance == 0 for d in finite):  # identical scores: nothing to weigh
        estimate = float(np.mean([d.estimate for d in finite]))
        return _interval(estimate, 0.0, confidence)
    weights = np.array([1.0 / d.variance for d in finite])
    estimate = float(np.sum(weights * np.array([d.estimate for d in finite])) / weights.sum())
    return _interval(estimate, float(1.0 / weights.sum()), confidence)
