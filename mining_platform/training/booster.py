"""XGBoost training with early stopping, and the evaluation every version is judged by."""

import functools
import json
import warnings
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from mining_platform.training.dataset import Split, TrainingData, TrainingDataError

DEFAULT_ROUNDS = 100
# Scoring every training row costs seconds at 1M rows and says no more than a large sample.
TRAIN_AUC_ROWS = 100_000


@dataclass(frozen=True)
class BoosterSettings:
    """Everything that determines the booster, given the data (logged as the run's params)."""

    params: dict
    num_boost_round: int
    early_stopping_rounds: int

    @classmethod
    def from_model_params(cls, model_params: dict, *, seed: int, device: str, early_stopping_rounds: int) -> "BoosterSettings":
        params = {key: value for key, value in model_params.items() if key != "n_estimators"}
        return cls(
            params={
                "objective": "binary:logistic",
                "eval_metric": ["logloss", "auc"],  # the last one drives early stopping
                "tree_method": "hist",
                **params,
                "seed": seed,
                "device": device,
            },
            num_boost_round=int(model_params.get("n_estimators", DEFAULT_ROUNDS)),
            early_stopping_rounds=early_stopping_rounds,
        )


@functools.cache
def cuda_available() -> bool:
    """True when this XGBoost build has CUDA and a one-round fit actually ran on a GPU."""
    if not xgb.build_info().get("USE_CUDA"):
        return False
    try:
        with warnings.catch_warnings():  # the probe's "no visible GPU" warnings are the expected answer
            warnings.simplefilter("ignore", UserWarning)
            booster = xgb.train({"device": "cuda", "tree_method": "hist"}, xgb.DMatrix(np.zeros((2, 1)), label=[0, 1]), 1)
    except xgb.core.XGBoostError:
        return False
    # Without a visible GPU XGBoost only warns and falls back to the CPU; its config tells.
    device = json.loads(booster.save_config())["learner"]["generic_param"].get("device", "cpu")
    return device.startswith("cuda")


def resolve_device(requested: str) -> tuple[str, str | None]:
    """(device to use, a note when the request could not be honoured)."""
    if requested == "cuda" and not cuda_available():
        return "cpu", "device 'cuda' was requested but no CUDA GPU is usable by XGBoost here; trained on the CPU"
    return requested, None


def _matrix(split: Split, features: list[str]) -> xgb.DMatrix:
    return xgb.DMatrix(split.X, label=split.y, feature_names=features, missing=np.nan)


def check_trainable(data: TrainingData) -> None:
    for side, split in (("training", data.train), ("validation", data.validation)):
        classes = np.unique(split.y)
        if len(classes) < 2:
            first, last = split.partitions() if split.rows else ("-", "-")
            raise TrainingDataError(
                f"the {side} rows ({split.rows}, {first} .. {last}) all have label {classes.tolist()}; "
                "AUC needs both classes"
            )


def train_booster(data: TrainingData, settings: BoosterSettings) -> xgb.Booster:
    """Train on the training split, stop early on the validation split, keep only the best rounds."""
    check_trainable(data)
    validation = _matrix(data.validation, data.features)
    booster = xgb.train(
        settings.params,
        _matrix(data.train, data.features),
        num_boost_round=settings.num_boost_round,
        evals=[(validation, "validation")],
        early_stopping_rounds=settings.early_stopping_rounds,
        verbose_eval=False,
    )
    # Slicing leaves exactly the best model, so every consumer (MLflow, the endpoint's
    # inplace_predict) scores the same trees without knowing about early stopping.
    best = booster.best_iteration + 1
    trimmed = booster[:best]
    trimmed.set_attr(best_iteration=str(booster.best_iteration), rounds_trained=str(booster.num_boosted_rounds()))
    return trimmed


def predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(X, missing=np.nan)


def evaluate(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The metrics every version is logged with (auc, logloss, pr_auc) plus the base rate they should be read against."""
    return {
        "auc": float(roc_auc_score(y, scores)),
        "logloss": float(log_loss(y, scores, labels=[0, 1])),
        "pr_auc": float(average_precision_score(y, scores)),
        "positive_rate": float(np.mean(y)),
    }


def train_auc(booster: xgb.Booster, data: TrainingData, *, seed: int) -> float:
    """AUC on the training rows (a fixed sample of at most TRAIN_AUC_ROWS): the overfitting yardstick."""
    rows = data.train.rows
    chosen = np.sort(np.random.default_rng(seed).choice(rows, size=TRAIN_AUC_ROWS, replace=False)) \
        if rows > TRAIN_AUC_ROWS else slice(None)
    return float(roc_auc_score(data.train.y[chosen], predict(booster, np.ascontiguousarray(data.train.X[chosen]))))
