"""Evaluation plots of a model version: ROC, calibration and feature importance (matplotlib, headless)."""

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: run workers have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


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


def evaluation_figures(booster: xgb.Booster, y: np.ndarray, scores: np.ndarray, auc: float) -> dict[str, Figure]:
    """Artifact file name -> figure."""
    return {
        "roc.png": roc_figure(y, scores, auc),
        "calibration.png": calibration_figure(y, scores),
        "feature_importance.png": importance_figure(booster),
    }


def png_markdown(figure: Figure, title: str) -> str:
    """The figure inline as Markdown, for a Dagster metadata entry."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"


def close(figures: dict[str, Figure]) -> None:
    for figure in figures.values():
        plt.close(figure)
