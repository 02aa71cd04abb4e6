"""How a binary version is judged: AUC (with DeLong's interval), PR AUC, log loss, Brier score, calibration."""

import numpy as np
import xgboost as xgb
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from mining_platform.tasks.judge import plots
from mining_platform.tasks.judge.base import Judge, importance_only
from mining_platform.tasks.judge.statistics import Realised, calibration, delong, interval, mean_interval

EPSILON = 1e-15  # log loss clips probabilities as scikit-learn does


class BinaryJudge(Judge):
    # PR AUC is compared on AUC, which has DeLong's paired interval.
    compared_on = {"auc": "auc", "pr_auc": "auc", "logloss": "logloss"}

    def evaluate(self, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return {
            "auc": float(roc_auc_score(y, scores)),
            "logloss": float(log_loss(y, scores, labels=[0, 1])),
            "pr_auc": float(average_precision_score(y, scores)),
            "positive_rate": float(np.mean(y)),
        }

    def figures(self, booster: xgb.Booster, y: np.ndarray, scores: np.ndarray,
                metrics: dict[str, float]) -> dict[str, Figure]:
        return {
            "roc.png": plots.roc_figure(y, scores, metrics["auc"]),
            "calibration.png": plots.calibration_figure(y, scores),
            **importance_only(booster),
        }

    def row_losses(self, metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if metric == "logloss":
            p = np.clip(scores, EPSILON, 1 - EPSILON)
            return -(y * np.log(p) + (1 - y) * np.log(1 - p))
        return super().row_losses(metric, y, scores)

    def realised(self, y: np.ndarray, scores: np.ndarray, *, confidence: float) -> Realised:
        y, scores = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
        rows = len(y)
        if rows == 0:
            return Realised(0, {}, {}, [])
        losses = self.row_losses("logloss", y, scores)
        metrics = {"positive_rate": float(y.mean()), "logloss": float(np.mean(losses)),
                   "brier": float(np.mean((scores - y) ** 2))}
        intervals = {}
        if len(np.unique(y)) > 1:  # AUC and PR AUC need both classes
            metrics.update({k: v for k, v in self.evaluate(y.astype(int), scores).items() if k in ("auc", "pr_auc")})
            aucs, covariance = delong(y, scores)
            intervals["auc"] = interval(float(aucs[0]), float(covariance[0, 0]), confidence)
        intervals["logloss"] = mean_interval(losses, confidence)
        table = calibration(y, scores)
        ece = sum(b["rows"] * abs(b["predicted"] - b["realised"]) for b in table) / rows
        return Realised(rows, metrics, intervals, table, float(ece))
