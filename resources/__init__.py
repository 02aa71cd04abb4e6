"""Typed resources for every external system, configured from the environment."""

import os

import dagster as dg

from mining_platform.settings import DEFAULTS
from resources.endpoint import EndpointResource
from resources.mlflow import MlflowResource
from resources.mongo import MongoResource


def env_or_default(name: str) -> dg.EnvVar | str | None:
    """For resource config: `EnvVar(name)` when set (resolved at run time, shown in the UI), else the
    documented default (None for a variable whose default is another setting, which the resource applies)."""
    if os.environ.get(name):
        return dg.EnvVar(name)
    return DEFAULTS.get(name)


def project_setting(name: str, project: str) -> str:
    """`<name>_<PROJECT>` when set (the dev stack gives each project's code location its own MongoDB user
    that way), else `<name>` itself (production: each project's deployment has its own environment)."""
    specific = f"{name}_{project.upper()}"
    return specific if os.environ.get(specific) else name


def platform_resources(project: str) -> dict:
    """The resources a project's Definitions binds, from MINING_* / MLFLOW_* variables."""
    return {
        "mongo": MongoResource(
            uri=env_or_default(project_setting("MINING_MONGO_URI", project)),
            analytics_uri=env_or_default(project_setting("MINING_MONGO_ANALYTICS_URI", project)),
            database=env_or_default("MINING_MONGO_DB"),
        ),
        "mlflow": MlflowResource(tracking_uri=env_or_default("MLFLOW_TRACKING_URI")),
        "endpoint": EndpointResource(
            url=env_or_default("MINING_ENDPOINT_URL"),
            admin_token=env_or_default("MINING_ADMIN_TOKEN"),
            converge_timeout_seconds=float(os.environ.get("MINING_DEPLOY_CONVERGE_SECONDS")
                                           or DEFAULTS["MINING_DEPLOY_CONVERGE_SECONDS"]),
        ),
    }


__all__ = ["EndpointResource", "MlflowResource", "MongoResource", "env_or_default", "platform_resources",
           "project_setting"]
