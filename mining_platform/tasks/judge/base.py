"""How a task's versions are judged: the metrics they are logged and gated with, the metrics and intervals of
realised performance on matured labels, the paired comparison of two versions, the evaluation plots.

One definition for training (validation rows, the gate) and after deployment (realised performance), so the
numbers compare. Every loss-like metric is the mean of a per-row loss, which gives the paired interval.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import xgboost as xgb
from matplotlib.figure import Figure

from mining_platform.tasks.base import Task
from mining_platform.tasks.judge import plots
from mining_platform.tasks.judge.statistics import Interval, Realised, delong, interval, mean_interval


class Judge:
    # The metric two versions are compared on, per gate metric: one with an analytic paired interval that orders
    # versions as the gate metric does.
    compared_on: ClassVar[dict[str, str]]

    def __init__(self, task: Task):
        self.task = task

    def evaluate(self, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """The metrics every version is logged with, plus the base they should be read against."""
        raise NotImplementedError

    def train_metric(self, y: np.ndarray, scores: np.ndarray) -> tuple[str, float]:
        """(name, value) of the headline metric on training rows: the overfitting yardstick."""
        return f"train_{self.task.headline}", self.evaluate(y, scores)[self.task.headline]

    def figures(self, booster: xgb.Booster, y: np.ndarray, scores: np.ndarray,
                metrics: dict[str, float]) -> dict[str, Figure]:
        """Artifact file name -> figure."""
        raise NotImplementedError

    def realised(self, y: np.ndarray, scores: np.ndarray, *, confidence: float) -> Realised:
        """The task's metrics (those `evaluate` logs at training) and their intervals, on matured labels."""
        raise NotImplementedError

    def row_losses(self, metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Per-row losses whose mean is the metric."""
        raise ValueError(f"no per-row loss for {metric!r}")

    def compare(self, gate_metric: str, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, *,
                confidence: float) -> Interval | None:
        """challenger − champion on the same rows, on the metric `gate_metric` is compared on, oriented so that
        positive means the challenger is better; None when it is undefined on these rows (one class)."""
        y = np.asarray(y, dtype=np.float64)
        metric = self.compared_on[gate_metric]
        if len(y) < 2:
            return None
        if metric == "auc":
            if len(np.unique(y)) < 2:
                return None
            aucs, covariance = delong(y, champion, challenger)
            variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
            return interval(float(aucs[1] - aucs[0]), float(variance), confidence)
        # Losses: champion's minus challenger's, per row (positive: the challenger lost less).
        return mean_interval(self.row_losses(metric, y, champion) - self.row_losses(metric, y, challenger), confidence)


def importance_only(booster: xgb.Booster) -> dict[str, Figure]:
    return {"feature_importance.png": plots.importance_figure(booster)}
