"""How a regression version is judged: RMSE (its interval the square root of MSE's), MAE, R², calibration by
quantile bins of the predictions."""

import numpy as np
import xgboost as xgb
from matplotlib.figure import Figure
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from mining_platform.tasks.judge import plots
from mining_platform.tasks.judge.base import Judge, importance_only
from mining_platform.tasks.judge.statistics import Interval, Realised, calibration, mean_interval


class RegressionJudge(Judge):
    # R² and RMSE are compared on MSE, which ranks versions on the same rows identically.
    compared_on = {"r2": "mse", "rmse": "mse", "mae": "mae"}

    def evaluate(self, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return {
            "rmse": float(root_mean_squared_error(y, scores)),
            "mae": float(mean_absolute_error(y, scores)),
            "r2": float(r2_score(y, scores)),
            "label_mean": float(np.mean(y)),
        }

    def figures(self, booster: xgb.Booster, y: np.ndarray, scores: np.ndarray,
                metrics: dict[str, float]) -> dict[str, Figure]:
        return {
            "predicted_vs_actual.png": plots.predicted_figure(y, scores, metrics["rmse"]),
            "residuals.png": plots.residuals_figure(y, scores),
            **importance_only(booster),
        }

    def row_losses(self, metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if metric == "mae":
            return np.abs(y - scores)
        if metric == "mse":
            return (y - scores) ** 2
        return super().row_losses(metric, y, scores)

    def realised(self, y: np.ndarray, scores: np.ndarray, *, confidence: float) -> Realised:
        y, scores = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
        if len(y) == 0:
            return Realised(0, {}, {}, [])
        metrics = self.evaluate(y, scores) if len(y) > 1 else {"mae": float(np.abs(y - scores).mean())}
        metrics["mse"] = float(np.mean((y - scores) ** 2))
        mse = mean_interval(self.row_losses("mse", y, scores), confidence)
        intervals = {
            "mae": mean_interval(self.row_losses("mae", y, scores), confidence),
            "mse": mse,
            "rmse": Interval(float(np.sqrt(mse.estimate)), float(np.sqrt(max(mse.low, 0.0))),
                             float(np.sqrt(max(mse.high, 0.0))), float("nan")),
        }
        return Realised(len(y), metrics, intervals, calibration(y, scores))
