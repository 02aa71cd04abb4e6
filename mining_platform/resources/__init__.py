"""Typed resources for every external system, configured from the environment."""

from mining_platform.resources.endpoint import EndpointResource
from mining_platform.resources.mlflow import MlflowResource
from mining_platform.resources.mongo import MongoResource
from mining_platform.settings import env_or_default


def platform_resources() -> dict:
    """The resources every project's Definitions binds, from MINING_* / MLFLOW_* variables."""
    return {
        "mongo": MongoResource(
            uri=env_or_default("MINING_MONGO_URI"),
            analytics_uri=env_or_default("MINING_MONGO_ANALYTICS_URI"),
            database=env_or_default("MINING_MONGO_DB"),
        ),
        "mlflow": MlflowResource(tracking_uri=env_or_default("MLFLOW_TRACKING_URI")),
        "endpoint": EndpointResource(
            url=env_or_default("MINING_ENDPOINT_URL"),
            admin_token=env_or_default("MINING_ADMIN_TOKEN"),
        ),
    }


__all__ = ["EndpointResource", "MlflowResource", "MongoResource", "platform_resources"]
