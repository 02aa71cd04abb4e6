"""MLflow clients: built here and nowhere else, for one tracking URI that is also the registry URI."""

import contextlib
import os
from collections.abc import Iterator

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# What an MLflow call raises, for callers outside `registry/` (which never import MLflow themselves).
RegistryError = MlflowException
__all__ = ["MlflowClient", "RegistryError", "client", "experiment_id", "run_url", "tracking"]


def client(tracking_uri: str) -> MlflowClient:
    """A client of this server's tracking store and model registry."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextlib.contextmanager
def tracking(tracking_uri: str) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API (which log_model needs) at this server for the block; yields a client."""
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    # set_*_uri also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI for subprocesses; restoring
    # through them would leave MLflow's *default* URIs in the environment of everything started later.
    previous_environment = {name: os.environ.get(name) for name in URI_VARIABLES}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield client(tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)
        for name, value in previous_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def experiment_id(mlflow_client: MlflowClient, name: str, *, artifact_location: str | None) -> str:
    """The experiment called `name`, created on first use."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently by another run
        return mlflow_client.get_experiment_by_name(name).experiment_id


def run_url(tracking_uri: str, experiment: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI, when the tracking URI is a server."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
    return None
