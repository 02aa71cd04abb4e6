"""Small registered model versions for serving and deployment tests (trained in milliseconds)."""

import json
import uuid

import numpy as np
import xgboost as xgb

from mining_platform.training import registry


def unique_model_name() -> str:
    return f"served_{uuid.uuid4().hex[:8]}"


def synthetic_rows(features: list[str], rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 3.0, size=(rows, len(features))).round(2)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def register_version(tracking_uri: str, artifact_location: str | None, model_name: str, features: list[str], *,
                     seed: int, gate: str = registry.PASSED, trained_features: dict | None = None) -> registry.LoggedVersion:
    """Train a tiny booster (its scores depend on `seed`), log and register it, record its gate verdict."""
    X = synthetic_rows(features, 300, seed)
    y = (np.nan_to_num(X[:, 0], nan=6.0) + np.random.default_rng(seed + 1).normal(0, 3, len(X)) > 6).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": seed}, xgb.DMatrix(X, y), 5 + seed % 7)
    logged = registry.log_and_register(
        tracking_uri=tracking_uri, experiment=f"tests_{model_name}", artifact_location=artifact_location,
        model_name=model_name, run_name=f"seed {seed}", booster=booster, features=features,
        X_example=X[:20], scores_example=booster.inplace_predict(X[:20]), params={"seed": seed}, metrics={"auc": 0.8},
        figures={}, tags={"mining.project": "tests", "mining.features": json.dumps(trained_features or {})},
        extra_artifacts={},
    )
    with registry.tracking(tracking_uri) as client:
        registry.record_gate(client, logged, passed=gate == registry.PASSED, reason=f"test: {gate}")
    return logged
