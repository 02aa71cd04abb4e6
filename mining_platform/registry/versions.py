"""A trained version into the registry: its run (params, metrics, plots, artifacts, tags), the
model with signature and input example, the registered version, and the gate's verdict."""

import json
from dataclasses import dataclass

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import xgboost as xgb
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.models import infer_signature

from mining_platform.registry.aliases import FAILED, GATE_REASON_TAG, GATE_TAG, PASSED
from mining_platform.registry.client import experiment_id, run_url, tracking

MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class LoggedVersion:
    name: str
    version: str
    run_id: str
    experiment_id: str
    run_url: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def log_and_register(
    *,
    tracking_uri: str,
    experiment: str,
    artifact_location: str | None,
    model_name: str,
    run_name: str,
    booster: xgb.Booster,
    features: list[str],
    X_example: np.ndarray,
    scores_example: np.ndarray,
    params: dict,
    metrics: dict[str, float],
    figures: dict[str, Figure],
    tags: dict[str, str],
    extra_artifacts: dict[str, dict],
) -> LoggedVersion:
    """Log one training run (params, metrics, plots, model with signature and example) and register it."""
    with tracking(tracking_uri) as client:
        experiment_key = experiment_id(client, experiment, artifact_location=artifact_location)
        example = pd.DataFrame(X_example, columns=features)
        with mlflow.start_run(experiment_id=experiment_key, run_name=run_name, tags=tags) as run:
            mlflow.log_params({key: json.dumps(value) if isinstance(value, list | dict) else value
                               for key, value in params.items()})
            mlflow.log_metrics(metrics)
            for file_name, figure in figures.items():
                mlflow.log_figure(figure, f"plots/{file_name}")
            for file_name, content in extra_artifacts.items():
                mlflow.log_dict(content, file_name)
            info = mlflow.xgboost.log_model(
                booster,
                name=MODEL_ARTIFACT,
                signature=infer_signature(example, scores_example),
                # Rows without missing values: a JSON example cannot hold NaN.
                input_example=example.dropna().head(5) if example.notna().all(axis=1).any() else None,
                registered_model_name=model_name,
                model_format="ubj",
                # Known exactly; MLflow's inference would load the model in a subprocess to guess it.
                pip_requirements=mlflow.xgboost.get_default_pip_requirements(),
            )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
        return LoggedVersion(
            name=model_name, version=version, run_id=run.info.run_id, experiment_id=experiment_key,
            run_url=run_url(tracking_uri, experiment_key, run.info.run_id),
        )


def record_gate(client: MlflowClient, logged: LoggedVersion, *, passed: bool, reason: str) -> None:
    """Write the gate's verdict to the version and its run (the run shows it in the MLflow UI)."""
    verdict = PASSED if passed else FAILED
    for key, value in ((GATE_TAG, verdict), (GATE_REASON_TAG, reason)):
        client.set_model_version_tag(logged.name, logged.version, key, value)
        client.set_tag(logged.run_id, key, value)
