"""XGBoost training with early stopping, and the evaluation every version is judged by."""

import functools
import json
import warnings
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from mining_platform.tasks import Task
from mining_platform.tasks.judge import judge_of
from mining_platform.training.dataset import Split, TrainingData, TrainingDataError

__all__ = ["BoosterSettings", "predict", "resolve_device", "train_booster", "train_metric"]

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
    def from_model_params(cls, model_params: dict, *, task: Task, seed: int, device: str,
                          early_stopping_rounds: int) -> "BoosterSettings":
        params = {key: value for key, value in model_params.items() if key != "n_estimators"}
        return cls(
            params={
                **task.booster_params(),
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


def check_trainable(data: TrainingData, task: Task) -> None:
    for side, split in (("training", data.train), ("validation", data.validation)):
        first, last = split.partitions() if split.rows else ("-", "-")
        if not np.all(np.isfinite(split.y)):
            raise TrainingDataError(f"the {side} rows ({first} .. {last}) hold labels that are not finite numbers")
        problem = task.training_problem(split.y)
        if problem:
            raise TrainingDataError(f"the {side} rows ({split.rows}, {first} .. {last}) {problem}")


def train_booster(data: TrainingData, settings: BoosterSettings, task: Task) -> xgb.Booster:
    """Train on the training split, stop early on the validation split, keep only the best rounds."""
    check_trainable(data, task)
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


def train_metric(booster: xgb.Booster, data: TrainingData, *, task: Task, seed: int) -> tuple[str, float]:
    """(name, value) of the task's headline metric on the training rows (a fixed sample of at most
    TRAIN_AUC_ROWS): the overfitting yardstick (train_auc for binary, train_rmse for regression)."""
    rows = data.train.rows
    chosen = np.sort(np.random.default_rng(seed).choice(rows, size=TRAIN_AUC_ROWS, replace=False)) \
        if rows > TRAIN_AUC_ROWS else slice(None)
    y, scores = data.train.y[chosen], predict(booster, np.ascontiguousarray(data.train.X[chosen]))
    return judge_of(task).train_metric(y, scores)
