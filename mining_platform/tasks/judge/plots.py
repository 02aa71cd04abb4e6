"""The evaluation plots a version is logged with, drawn for the task judges: ROC and calibration, predicted against
actual and residuals, feature importance."""

import numpy as np
import xgboost as xgb
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from mining_platform.figures import plt


def roc_figure(y: np.ndarray, scores: np.ndarray, auc: float) -> Figure:
    fpr, tpr, _ = roc_curve(y, scores)
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (validation)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def calibration_figure(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> Figure:
    observed, predicted = calibration_curve(y, scores, n_bins=bins, strategy="quantile")
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.plot(predicted, observed, marker="o", label="model")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axes.set(xlabel="mean predicted probability", ylabel="observed rate", title="Calibration (validation)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def importance_figure(booster: xgb.Booster, top: int = 20) -> Figure:
    gain = booster.get_score(importance_type="gain")
    ranked = sorted(gain.items(), key=lambda item: item[1])[-top:]
    figure, axes = plt.subplots(figsize=(5, 0.3 * max(len(ranked), 3) + 1))
    axes.barh([name for name, _ in ranked], [value for _, value in ranked])
    axes.set(xlabel="total gain / splits (XGBoost 'gain')", title="Feature importance")
    figure.tight_layout()
    return figure


def predicted_figure(y: np.ndarray, predicted: np.ndarray, rmse: float, max_points: int = 5_000) -> Figure:
    shown = np.random.default_rng(0).choice(len(y), size=max_points, replace=False) if len(y) > max_points else slice(None)
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.scatter(y[shown], predicted[shown], s=6, alpha=0.4, label=f"model (RMSE {rmse:.3g})")
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    axes.set(xlabel="actual", ylabel="predicted", title="Predicted against actual (validation)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def residuals_figure(y: np.ndarray, predicted: np.ndarray) -> Figure:
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.hist(predicted - y, bins=50)
    axes.axvline(0, linestyle="--", color="grey")
    axes.set(xlabel="predicted − actual", ylabel="rows", title="Residuals (validation)")
    figure.tight_layout()
    return figure


def confusion_figure(matrix: np.ndarray, classes: tuple[str, ...], accuracy: float) -> Figure:
    """Rows: the realised class; columns: the predicted one; each row's shares sum to 1."""
    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.55 * len(classes)))
    shown = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    axes.set_yticks(range(len(classes)), classes, fontsize=7)
    if len(classes) <= 12:
        for (row, column), share in np.ndenumerate(matrix):
            axes.text(column, row, f"{share:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if share > 0.5 else "black")
    axes.set(xlabel="predicted", ylabel="realised", title=f"Confusion (validation, accuracy {accuracy:.3f})")
    figure.colorbar(shown, ax=axes, fraction=0.046)
    figure.tight_layout()
    return figure


def one_vs_rest_roc_figure(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], top: int = 10) -> Figure:
    """One ROC curve per class (its probability against the other classes), the most common classes first."""
    figure, axes = plt.subplots(figsize=(4.5, 4))
    for c in np.argsort(-np.bincount(y, minlength=len(classes)))[:top]:
        positive = y == c
        if 0 < positive.sum() < len(y):
            fpr, tpr, _ = roc_curve(positive, scores[:, c])
            axes.plot(fpr, tpr, label=str(classes[c]))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="One-vs-rest ROC (validation)")
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    return figure
