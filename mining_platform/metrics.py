"""The metrics a version is judged by, in training (validation rows, the gate) and after deployment (realised
performance on matured labels): one definition for both, so the numbers compare."""

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)


def evaluate(task: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The metrics every version is logged with, plus the base they should be read against.

    binary: auc, logloss, pr_auc and positive_rate; regression: rmse, mae, r2 and label_mean.
    """
    if task == "binary":
        return {
            "auc": float(roc_auc_score(y, scores)),
            "logloss": float(log_loss(y, scores, labels=[0, 1])),
            "pr_auc": float(average_precision_score(y, scores)),
            "positive_rate": float(np.mean(y)),
        }
    return {
        "rmse": float(root_mean_squared_error(y, scores)),
        "mae": float(mean_absolute_error(y, scores)),
        "r2": float(r2_score(y, scores)),
        "label_mean": float(np.mean(y)),
    }
