"""Project configuration: `projects/<p>/project.yaml`, validated with pydantic."""

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from mining_platform.spec.alerts_config import AlertsConfig
from mining_platform.spec.model_config import ModelConfig
from mining_platform.spec.names import collection_problem, database_problem, max_project_name_bytes
from mining_platform.spec.source_config import KEY_NAME, PROJECT_NAME, SourceConfig, platform_of
from mining_platform.spec.strict import Strict, UnreadableFile, describe_validation_error, read_mapping

# A project name is an asset-key prefix, a Python attribute of
# sensors.definitions and part of database names.
PROJECT_FILE = "project.yaml"
# Names a code location cannot be looked up by: `-a <p>` resolves a module attribute of
# sensors.definitions, and these are attributes it has (tests/dagster/test_definitions.py keeps the list whole).
RESERVED_PROJECT_NAMES = frozenset({
    "build_definitions", "project_definitions", "dg", "functools", "warnings", "settings", "load_spec",
    "plan_sized_executor", "build_jobs", "platform_resources", "build_demo_asset", "build_deployment_asset",
    "build_drift_report_asset", "build_feature_assets", "build_model_asset", "build_performance_asset",
    "build_predictions_asset", "build_samples_asset", "build_source_assets", "build_champion_sensor",
    "build_drift_sensor", "build_performance_sensor", "build_observe_sensor", "sensor_name", "build_alert_sensors",
})


class ProjectConfigError(ValueError):
    """A project file is missing or invalid; the message names the file and the keys."""


class DriftConfig(Strict):
    psi_threshold: float = Field(gt=0.0)
    min_drifted_features: int = Field(ge=1)


class DemoConfig(Strict):
    """The opt-in demo event generator: it writes only into this source, a collection it created itself."""

    source: str = Field(pattern=KEY_NAME)
    users: int = Field(default=2000, ge=1, le=1_000_000)
    seed: int = Field(default=7, ge=0)


class ChallengerConfig(Strict):
    """How the endpoint runs a version aliased `challenger` next to the champion."""

    mode: Literal["shadow", "canary"] = Field(
        default="shadow", description="shadow: scored on every request, never the answer; canary: the answer for "
        "`traffic` of the entities (sticky per entity) and of keyed row requests.")
    traffic: float = Field(default=0.1, gt=0.0, lt=1.0, description="The canary's share of entities and request keys.")


class ServingSettings(Strict):
    """What the endpoint runs next to each project's champion."""

    challenger: ChallengerConfig = ChallengerConfig()


class PerformanceConfig(Strict):
    """When realised performance decides: promote a better challenger, retire a worse one, retrain a failing champion."""

    min_days: int = Field(default=3, ge=1, le=90, description="Matured days of evidence a decision needs.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0,
                              description="Level of the interval that must clear zero (or the floor).")


class AutomationConfig(Strict):
    """Which days the platform follows by itself; the rest of the history is backfilled when the user asks."""

    follow_days: int | Literal["all"] = Field(
        default=3, description="The last this many daily partitions (ending at end_date, or today) are observed "
        "every minute, and their tiles and features recomputed by automation when their events change; `all`: every "
        "day (for a small bounded dataset such as a demo). Older days are observed by a slower full pass and "
        "computed when backfilled.")

    @field_validator("follow_days", mode="before")
    @classmethod
    def _days(cls, value):
        if isinstance(value, bool) or isinstance(value, int) and not 1 <= value <= 3650:
            raise ValueError("follow_days is a number of days from 1 to 3650, or `all`")
        return value


class ProjectConfig(Strict):
    name: Annotated[str, Field(pattern=PROJECT_NAME)]
    entity: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    sources: dict[Annotated[str, Field(pattern=KEY_NAME, max_length=64)], SourceConfig] = Field(min_length=1)
    start_date: dt.date
    end_date: dt.date | None = Field(
        default=None, description="The last daily partition, when the data ends (a demo, a historical dump); "
        "default none: partitions run to today.")
    label: str = Field(pattern=KEY_NAME, max_length=64, description="The label definition: labels/<label>.yaml.")
    model: ModelConfig
    drift: DriftConfig
    demo: DemoConfig | None = None
    serving: ServingSettings = ServingSettings()
    performance: PerformanceConfig = PerformanceConfig()
    automation: AutomationConfig = AutomationConfig()
    alerts: AlertsConfig = AlertsConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, raw):
        if isinstance(raw, dict):
            if "events" in raw:
                raise ValueError("`events` is replaced by `sources`: sources: {<key>: {collection: <collection>, "
                                 "timestamp: <event-time field>}}; definitions name the key")
            if isinstance(raw.get("label"), dict):
                raise ValueError("label names a label definition (labels/<name>.yaml), e.g. `label: churned`; "
                                 "the horizon and the rule live in that file")
        return raw

    @model_validator(mode="after")
    def _boundary(self, info: ValidationInfo) -> "ProjectConfig":
        """What a project may name is decided here, when its file is loaded, not when a source is read: every
        command (validate, new, provision, a code location, the endpoint) refuses the same file the same way."""
        problems = boundary_problems(self, platform_of(info))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _dates(self) -> "ProjectConfig":
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self

    @model_validator(mode="after")
    def _demo_source(self) -> "ProjectConfig":
        if self.demo is not None:
            if self.demo.source not in self.sources:
                raise ValueError(f"demo.source {self.demo.source!r} is not a key of sources ({', '.join(self.sources)})")
            if self.sources[self.demo.source].timestamp != "timestamp":
                raise ValueError(f"demo.source {self.demo.source!r}: the demo generator writes its event time to "
                                 "`timestamp`; set that source's timestamp: timestamp")
            source = self.sources[self.demo.source]
            if source.database is not None or source.demo_of not in (None, self.name):
                raise ValueError(
                    f"demo.source {self.demo.source!r}: the demo generator writes only this project's demo database "
                    f"(<MINING_MONGO_DB>_{self.name}-demo), a database holding nothing but its events; remove "
                    f"sources.{self.demo.source}.database / demo_of (other projects read it with demo_of: {self.name})")
            sources = dict(self.sources)
            sources[self.demo.source] = source.model_copy(update={"demo_of": self.name})
            object.__setattr__(self, "sources", sources)  # frozen: the demo source's database is decided here, once
        return self

    def source(self, key: str) -> SourceConfig:
        return self.sources[key]


def boundary_problems(project: ProjectConfig, platform: str) -> list[str]:
    """Every way `project` reaches past its own namespace and declared sources on platform database `platform`."""
    problems = []
    if project.name in RESERVED_PROJECT_NAMES:
        problems.append(f"name {project.name!r} is reserved (an attribute of sensors.definitions, which a "
                        "code location is looked up in): choose another")
    limit = max_project_name_bytes(platform)
    if len(project.name.encode()) > limit:
        problems.append(f"name {project.name!r} is {len(project.name.encode())} bytes; with MINING_MONGO_DB "
                        f"{platform!r} a project name has at most {limit} (its databases {platform}_<name> and "
                        f"{platform}_<name>-endpoint must stay under 64 bytes)")
    for key, source in project.sources.items():
        for field, problem in [("collection", collection_problem(source.collection)),
                               ("database", database_problem(platform, source.database))]:
            if problem:
                problems.append(f"sources.{key}.{field}: {problem}")
        if source.demo_of is not None and len(source.demo_of.encode()) > limit:
            problems.append(f"sources.{key}.demo_of: {source.demo_of!r} is longer than a project name may be with "
                            f"MINING_MONGO_DB {platform!r} ({limit} bytes)")
    return problems


def load_project(project_dir: Path, *, platform: str | None = None) -> ProjectConfig:
    """Read and validate `<project_dir>/project.yaml`; the folder name must equal `name`.

    `platform` is the platform database the project is checked against (default MINING_MONGO_DB)."""
    path = project_dir / PROJECT_FILE
    try:
        raw = read_mapping(path)
    except UnreadableFile as exc:
        raise ProjectConfigError(f"{path}: {exc}") from None
    try:
        project = ProjectConfig.model_validate(raw, context={"platform": platform} if platform else None)
    except ValidationError as exc:
        listed = "\n".join(f"  {line}" for line in describe_validation_error(exc))
        raise ProjectConfigError(f"{path}: invalid project file:\n{listed}") from None
    if project.name != project_dir.name:
        raise ProjectConfigError(
            f"{path}: name: {project.name!r} must equal the project folder name {project_dir.name!r}"
        )
    return project


def project_names(projects_dir: Path) -> list[str]:
    """Every folder under `projects_dir` that holds a project file, sorted."""
    return sorted(p.parent.name for p in projects_dir.glob(f"*/{PROJECT_FILE}"))
