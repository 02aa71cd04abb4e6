"""What the endpoint serves and how: every project under MINING_PROJECTS_DIR and the MINING_* / MLFLOW_* settings."""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from mining_platform import settings
from mining_platform.spec import ProjectSpec, load_spec
from mining_platform.spec.project import ChallengerConfig, load_project, project_names

log = logging.getLogger("mining_platform.serving")


@dataclass(frozen=True)
class ServingConfig:
    projects: list[ProjectSpec]
    tracking_uri: str
    mongo_uri: str
    database: str
    admin_token: str
    predict_token: str | None = None  # MINING_PREDICT_TOKEN: with it, /predict needs `Authorization: Bearer <it>`
    unavailable: dict[str, str] = field(default_factory=dict)  # project -> why its files did not load
    log_sample_rate: float = 0.1
    log_retention_days: float = 30.0  # the prediction log's TTL
    log_max_rows: int = 100  # rows of one request logged at most (a random subset of a larger one)
    max_batch: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    mongo_timeout_ms: int = 2000
    body_timeout_seconds: float = 10.0  # a body that has not fully arrived by then answers 408
    heartbeat_seconds: float = 5.0  # sync with the serving records and report to them this often
    metrics: bool = True  # count requests and export them at /metrics (MINING_ENDPOINT_METRICS)
    # Reads a project's `serving.challenger` again (on a challenger reload): the mode and traffic change without a
    # restart. None: the settings the projects were loaded with.
    challenger_settings: Callable[[str], ChallengerConfig] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ValueError(f"MINING_PREDICTION_LOG_SAMPLE_RATE must be within [0, 1], got {self.log_sample_rate}")
        if not 1 / 24 <= self.log_retention_days <= 3650:
            raise ValueError(f"MINING_PREDICTION_LOG_RETENTION_DAYS must be within [1/24, 3650], got "
                             f"{self.log_retention_days}")
        if self.log_max_rows < 1:
            raise ValueError(f"MINING_PREDICTION_LOG_MAX_ROWS must be at least 1, got {self.log_max_rows}")
        if self.max_batch < 1:
            raise ValueError(f"MINING_MAX_BATCH must be at least 1, got {self.max_batch}")
        if not 0.05 <= self.heartbeat_seconds <= 300:
            raise ValueError(f"MINING_ENDPOINT_HEARTBEAT_SECONDS must be within [0.05, 300], got "
                             f"{self.heartbeat_seconds}")


def serving_config_from_environment() -> ServingConfig:
    """Every project under MINING_PROJECTS_DIR, with the MINING_* / MLFLOW_* settings (docs/configuration.md)."""
    root = settings.projects_dir()
    projects, unavailable = [], {}
    for name in project_names(root):
        # A broken project file stops only that project, as it fails only its own code location.
        try:
            projects.append(load_spec(root / name))
        except ValueError as exc:
            unavailable[name] = str(exc)
            log.error(f"project {name!r} is not served: {exc}")

    def number(name: str, kind):
        try:
            return kind(settings.setting(name))
        except ValueError:
            raise ValueError(f"{name}={settings.setting(name)!r} is not {'an integer' if kind is int else 'a number'}"
                             ) from None

    def switch(name: str) -> bool:
        value = settings.setting(name).strip().lower()
        if value not in ("on", "off"):
            raise ValueError(f"{name}={settings.setting(name)!r}: on or off")
        return value == "on"

    def challenger_settings(project: str) -> ChallengerConfig:
        return load_project(root / project).serving.challenger

    return ServingConfig(
        challenger_settings=challenger_settings,
        projects=projects,
        tracking_uri=settings.setting("MLFLOW_TRACKING_URI"),
        mongo_uri=settings.setting("MINING_MONGO_URI"),
        database=settings.setting("MINING_MONGO_DB"),
        admin_token=settings.admin_token(),
        predict_token=os.environ.get("MINING_PREDICT_TOKEN") or None,
        unavailable=unavailable,
        log_sample_rate=number("MINING_PREDICTION_LOG_SAMPLE_RATE", float),
        log_retention_days=number("MINING_PREDICTION_LOG_RETENTION_DAYS", float),
        log_max_rows=number("MINING_PREDICTION_LOG_MAX_ROWS", int),
        max_batch=number("MINING_MAX_BATCH", int),
        heartbeat_seconds=number("MINING_ENDPOINT_HEARTBEAT_SECONDS", float),
        metrics=switch("MINING_ENDPOINT_METRICS"),
    )
