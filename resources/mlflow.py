"""MlflowResource: where the tracking server and model registry live."""

import dagster as dg
from pydantic import Field


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking server and model registry (thin: the registry kernel does the talking)."""

    tracking_uri: str = Field(
        description="Tracking and registry URI (MLFLOW_TRACKING_URI): an http(s) server, "
        "or a database URI such as sqlite:///path for local use."
    )
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root of experiments the platform creates (a path or URI). Leave unset with a "
        "tracking server, which decides; set it with a local database URI, where MLflow would use ./mlruns.",
    )

    def client(self):
        """An `MlflowClient` for this server's tracking store and registry."""
        # Imported here: mlflow is heavy and a code location should load fast.
        from mining_platform.registry.client import client

        return client(self.tracking_uri)
