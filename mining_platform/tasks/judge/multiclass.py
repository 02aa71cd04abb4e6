"""How a multiclass version is judged: log loss, accuracy, macro one-vs-rest AUC; per class its share, mean
probability, one-vs-rest AUC with DeLong's interval, precision and recall; calibration of the top class's
probability against how often it is right."""

import numpy as np
import xgboost as xgb
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

from mining_platform.tasks.judge import plots
from mining_platform.tasks.judge.base import Judge, importance_only
from mining_platform.tasks.judge.statistics import Realised, calibration, delong, interval, mean_interval

EPSILON = 1e-15  # log loss clips probabilities as scikit-learn does


def _labels(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.float64).astype(np.int64)


class MulticlassJudge(Judge):
    # Macro AUC has no paired interval of its own (it averages correlated per-class AUCs): versions are compared
    # on log loss, which has one, as PR AUC is compared on AUC.
    compared_on = {"mlogloss": "mlogloss", "accuracy": "accuracy", "macro_auc": "mlogloss"}

    @property
    def k(self) -> int:
        return len(self.task.classes)

    def one_vs_rest_auc(self, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Class name -> AUC of its probability against the other classes, for every class present and absent in y."""
        y = _labels(y)
        return {name: float(roc_auc_score(y == c, scores[:, c])) for c, name in enumerate(self.task.classes)
                if 0 < (y == c).sum() < len(y)}

    def evaluate(self, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        y = _labels(y)
        aucs = self.one_vs_rest_auc(y, scores)
        return {
            "mlogloss": float(log_loss(y, scores, labels=list(range(self.k)))),
            "accuracy": float(np.mean(scores.argmax(axis=1) == y)),
            "macro_auc": float(np.mean(list(aucs.values()))) if aucs else float("nan"),
            # The naive yardstick accuracy is read against: always answering the most common class.
            "majority_rate": float(np.bincount(y, minlength=self.k).max() / len(y)) if len(y) else float("nan"),
        }

    def figures(self, booster: xgb.Booster, y: np.ndarray, scores: np.ndarray,
                metrics: dict[str, float]) -> dict[str, Figure]:
        y = _labels(y)
        matrix = confusion_matrix(y, scores.argmax(axis=1), labels=list(range(self.k)), normalize="true")
        return {
            "confusion_matrix.png": plots.confusion_figure(matrix, self.task.classes, metrics["accuracy"]),
            "roc.png": plots.one_vs_rest_roc_figure(y, scores, self.task.classes),
            **importance_only(booster),
        }

    def row_losses(self, metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
        y = _labels(y)
        if metric == "mlogloss":
            return -np.log(np.clip(scores[np.arange(len(y)), y], EPSILON, 1.0))
        if metric == "accuracy":  # the error: 1 where the most likely class is wrong
            return (scores.argmax(axis=1) != y).astype(np.float64)
        return super().row_losses(metric, y, scores)

    def realised(self, y: np.ndarray, scores: np.ndarray, *, confidence: float) -> Realised:
        y = np.asarray(y, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64).reshape(len(y), self.k)
        if len(y) == 0:
            return Realised(0, {}, {}, [])
        labels, predicted = _labels(y), scores.argmax(axis=1)
        losses, correct = self.row_losses("mlogloss", y, scores), (predicted == labels).astype(np.float64)
        metrics = {"mlogloss": float(losses.mean()), "accuracy": float(correct.mean())}
        intervals = {"mlogloss": mean_interval(losses, confidence), "accuracy": mean_interval(correct, confidence)}
        aucs = []
        for c, name in enumerate(self.task.classes):  # per class, as `<class>.<metric>`
            actual, chosen = labels == c, predicted == c
            metrics[f"{name}.share"] = float(actual.mean())
            metrics[f"{name}.mean_probability"] = float(scores[:, c].mean())
            if chosen.any():
                metrics[f"{name}.precision"] = float(actual[chosen].mean())
            if actual.any():
                metrics[f"{name}.recall"] = float(chosen[actual].mean())
            if 0 < actual.sum() < len(y):
                auc, covariance = delong(actual.astype(np.float64), scores[:, c])
                intervals[f"{name}.auc"] = interval(float(auc[0]), float(covariance[0, 0]), confidence)
                metrics[f"{name}.auc"] = float(auc[0])
                aucs.append(float(auc[0]))
        if aucs:
            metrics["macro_auc"] = float(np.mean(aucs))
        # Calibration of the top class: its probability against how often it is the realised class.
        top = scores.max(axis=1)
        table = calibration(correct, top)
        ece = sum(b["rows"] * abs(b["predicted"] - b["realised"]) for b in table) / len(y)
        return Realised(len(y), metrics, intervals, table, float(ece))
