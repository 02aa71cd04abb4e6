"""Synthetic registered model versions, trained in moments, for serving tests and benchmarks.

Each version is a real XGBoost booster logged and registered through the same path as
a trained one (`registry.log_and_register`, signature, input example, `mining.*` tags,
gate verdict), so the endpoint and the deployment asset load it as they load any other.
"""

import json

import numpy as np
import xgboost as xgb

from mining_platform.monitoring.reference import REFERENCE_ARTIFACT, build_reference
from mining_platform.training import registry


def synthetic_rows(features: list[str], rows: int, seed: int) -> np.ndarray:
    """Feature rows like real ones: positive, skewed, about 5 % missing."""
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 3.0, size=(rows, len(features))).round(2)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def register_synthetic_version(
    *, tracking_uri: str, artifact_location: str | None, model_name: str, features: list[str], seed: int,
    project: str, rows: int = 300, max_depth: int = 3, rounds: int | None = None, gate: str = registry.PASSED,
    trained_features: dict | None = None, reference_rows: np.ndarray | None = None,
) -> registry.LoggedVersion:
    """Train a booster whose scores depend on `seed` (rounds default to 5 + seed % 7), register it, record its gate.

    Its drift reference is built from `reference_rows` (default: its training rows).
    """
    X = synthetic_rows(features, rows, seed)
    y = (np.nan_to_num(X[:, 0], nan=6.0) + np.random.default_rng(seed + 1).normal(0, 3, len(X)) > 6).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": max_depth, "seed": seed}, xgb.DMatrix(X, y),
                        rounds if rounds is not None else 5 + seed % 7)
    logged = registry.log_and_register(
        tracking_uri=tracking_uri, experiment=f"synthetic_{model_name}", artifact_location=artifact_location,
        model_name=model_name, run_name=f"synthetic seed {seed}", booster=booster, features=features,
        X_example=X[:20], scores_example=booster.inplace_predict(X[:20]), params={"seed": seed}, metrics={},
        figures={}, tags={"mining.project": project, "mining.features": json.dumps(trained_features or {})},
        extra_artifacts={REFERENCE_ARTIFACT: build_reference(
            X=X if reference_rows is None else reference_rows, features=features, boolean_features=set(),
            validation_scores=booster.inplace_predict(X), sample_partitions=[], seed=seed,
        ).to_json()},
    )
    with registry.tracking(tracking_uri) as client:
        registry.record_gate(client, logged, passed=gate == registry.PASSED, reason=f"synthetic: {gate}")
    return logged
