"""The MLflow side of a model version: logging the run, registering it, tags, aliases and promotion.

Names follow DESIGN: the registered model is the project's `model.name`; runs and
versions carry `mining.*` tags; `champion` is what the endpoint serves and only a
version whose `mining.gate` is `passed` may hold it; the one it replaced is `previous`.
"""

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

GATE_TAG = "mining.gate"
GATE_REASON_TAG = "mining.gate_reason"
CHAMPION = "champion"
PREVIOUS = "previous"
PASSED, FAILED = "passed", "failed"
MODEL_ARTIFACT = "model"
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


class PromotionRefused(RuntimeError):
    """The version may not become champion (its gate did not pass)."""


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


@contextlib.contextmanager
def tracking(tracking_uri: str):
    """Point MLflow's fluent API (which log_model needs) at this server for the block."""
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    # set_*_uri also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI for subprocesses; restoring
    # through them would leave MLflow's *default* URIs in the environment of everything started later.
    previous_environment = {name: os.environ.get(name) for name in URI_VARIABLES}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)
        for name, value in previous_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def experiment_id(client: MlflowClient, name: str, *, artifact_location: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently by another run
        return client.get_experiment_by_name(name).experiment_id


def run_url(tracking_uri: str, experiment: str, run_id: str) -> str | None:
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
    return None


def input_frame(X: np.ndarray, features: list[str]) -> pd.DataFrame:
    return pd.DataFrame(X, columns=features)


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
        example = input_frame(X_example, features)
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


def aliased_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The model version holding `alias`, or None (also when the model is not registered yet)."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def alias_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version number holding `alias`, or None."""
    held = aliased_version(client, model_name, alias)
    return None if held is None else str(held.version)


def model_feature_names(tracking_uri: str, model_uri: str) -> list[str]:
    """The input columns of a logged model, in order, from its signature."""
    with tracking(tracking_uri):
        signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None:
        raise ValueError(f"{model_uri} has no signature")
    return signature.inputs.input_names()


def load_booster(tracking_uri: str, model_uri: str) -> xgb.Booster:
    with tracking(tracking_uri), tempfile.TemporaryDirectory() as scratch:
        return mlflow.xgboost.load_model(model_uri, dst_path=scratch)


def record_gate(client: MlflowClient, logged: LoggedVersion, *, passed: bool, reason: str) -> None:
    """Write the gate's verdict to the version and its run (the run shows it in the MLflow UI)."""
    verdict = PASSED if passed else FAILED
    for key, value in ((GATE_TAG, verdict), (GATE_REASON_TAG, reason)):
        client.set_model_version_tag(logged.name, logged.version, key, value)
        client.set_tag(logged.run_id, key, value)


def promote_to_champion(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Give `version` the champion alias (the old champion becomes `previous`); returns the old champion.

    Refused unless the version's gate passed: a failed version stays registered for
    inspection and can never be served.
    """
    tags = client.get_model_version(model_name, version).tags
    if tags.get(GATE_TAG) != PASSED:
        raise PromotionRefused(
            f"{model_name} version {version} cannot become {CHAMPION}: its quality gate is "
            f"{tags.get(GATE_TAG, 'not evaluated')!r}" + (f" ({tags[GATE_REASON_TAG]})" if GATE_REASON_TAG in tags else "")
        )
    current = alias_version(client, model_name, CHAMPION)
    if current == version:
        return current
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, current)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return current
