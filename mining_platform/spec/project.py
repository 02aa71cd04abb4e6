"""Project configuration: `projects/<p>/project.yaml`, validated with pydantic."""

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from mining_platform import settings
from mining_platform.spec.names import collection_problem, database_problem, demo_database, max_project_name_bytes
from mining_platform.spec.strict import Strict, UnreadableFile, describe_validation_error, read_mapping
from mining_platform.tasks import TASKS, gate_metric

# A project name is an asset-key prefix, a Python attribute of
# sensors.definitions and part of database names.
PROJECT_NAME = r"^[a-z][a-z0-9_]*$"
PROJECT_FILE = "project.yaml"
# Names a code location cannot be looked up by: `-a <p>` resolves a module attribute of
# sensors.definitions, and these are attributes it has (tests/dagster/test_definitions.py keeps the list whole).
RESERVED_PROJECT_NAMES = frozenset({
    "build_definitions", "project_definitions", "dg", "functools", "warnings", "settings", "load_spec",
    "plan_sized_executor", "build_jobs", "platform_resources", "build_demo_asset", "build_deployment_asset",
    "build_drift_report_asset", "build_feature_assets", "build_model_asset", "build_performance_asset",
    "build_predictions_asset", "build_samples_asset", "build_source_assets", "build_champion_sensor",
    "build_drift_sensor", "build_performance_sensor", "build_observe_sensor", "sensor_name",
})


class ProjectConfigError(ValueError):
    """A project file is missing or invalid; the message names the file and the keys."""


# A field path of a source document (dots for nesting): no `$`, no empty parts.
FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
COLLECTION_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
DATABASE_NAME = r"^[A-Za-z0-9_-]{1,63}$"
KEY_NAME = r"^[a-z][a-z0-9_]*$"


def _platform(info: ValidationInfo) -> str:
    """The platform database a project file is checked against: `load_project(platform=…)`, else MINING_MONGO_DB."""
    return (info.context or {}).get("platform") or settings.setting("MINING_MONGO_DB")


class SourceConfig(Strict):
    """A collection of events the platform observes and never writes (except a demo source it created)."""

    collection: str = Field(pattern=COLLECTION_NAME, max_length=120)
    database: str | None = Field(default=None, pattern=DATABASE_NAME,
                                 description="Another database of the same cluster (default MINING_MONGO_DB).")
    demo_of: str | None = Field(
        default=None, pattern=PROJECT_NAME,
        description="The demo events of this project or another one: the collection in that project's demo database "
        "`<MINING_MONGO_DB>_<demo_of>-demo`, which only its demo generator writes. Set by the platform for the source "
        "a `demo:` block names.")
    timestamp: str = Field(pattern=FIELD_PATH, description="The event-time field (a BSON date).")
    lateness_days: int = Field(default=0, ge=0, le=365,
                               description="A day is complete once the source holds events this many days past its end.")

    @field_validator("collection")
    @classmethod
    def _not_platform(cls, collection: str) -> str:
        problem = collection_problem(collection)
        if problem:
            raise ValueError(problem)
        return collection

    @field_validator("database")
    @classmethod
    def _not_server(cls, database: str | None, info: ValidationInfo) -> str | None:
        problem = database_problem(_platform(info), database)
        if problem:
            raise ValueError(problem)
        return database

    @model_validator(mode="after")
    def _one_database(self) -> "SourceConfig":
        if self.database is not None and self.demo_of is not None:
            raise ValueError(f"set database or demo_of, not both: demo events live in their project's demo database "
                             f"(<MINING_MONGO_DB>_{self.demo_of}-demo)")
        return self

    def database_name(self, platform: str) -> str:
        """The database this source lives in, given the platform database (MINING_MONGO_DB)."""
        if self.demo_of is not None:
            return demo_database(platform, self.demo_of)
        return self.database or platform


# The tasks and gate metrics as the YAML names them (their meaning: mining_platform.tasks).
TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]
GateMetricName = Literal[tuple(dict.fromkeys(m.name for t in TASKS.values() for m in t.gate_metrics))]  # type: ignore[valid-type]

# Set by the platform from `model.training` or fixed by `model.task`.
PLATFORM_OWNED_PARAMS = {
    "objective": "set by model.task (" + ", ".join(t.objective for t in TASKS.values()) + ")",
    "eval_metric": "the platform evaluates the metrics of model.task",
    "seed": "use model.training.seed",
    "random_state": "use model.training.seed",
    "device": "use model.training.device",
    "early_stopping_rounds": "use model.training.early_stopping_rounds",
    "num_boost_round": "use n_estimators",
}


class TrainingConfig(Strict):
    """Defaults of the model asset's run config; every key can be overridden per run."""

    samples_from: dt.date | None = Field(default=None, description="First sample partition (default: the first committed).")
    samples_to: dt.date | None = Field(default=None, description="Last sample partition (default: the last committed).")
    validation_days: int = Field(default=1, ge=1, le=365)
    embargo_days: int | None = Field(default=None, ge=0, le=365)
    early_stopping_rounds: int = Field(default=20, ge=1)
    seed: int = Field(default=0, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"


class GateConfig(Strict):
    """The blocking gate: an absolute bound on one validation metric, and no loss against the champion.

    `min` for a higher-is-better metric (auc, pr_auc, r2), `max` for a lower-is-better one
    (logloss, rmse, mae); `max_regression` is the loss allowed against the champion on the
    same rows, in the metric's units.
    """

    metric: GateMetricName
    min: float | None = None
    max: float | None = None
    max_regression: float = Field(ge=0.0)

    @property
    def higher_is_better(self) -> bool:
        return gate_metric(self.metric).higher_is_better

    @property
    def bound(self) -> float:
        return self.min if self.higher_is_better else self.max  # type: ignore[return-value]

    @model_validator(mode="after")
    def _one_bound(self) -> "GateConfig":
        wanted, other = ("min", "max") if self.higher_is_better else ("max", "min")
        if getattr(self, other) is not None:
            raise ValueError(f"{self.metric} is {'higher' if wanted == 'min' else 'lower'}-is-better: give "
                             f"`{wanted}`, not `{other}`")
        if getattr(self, wanted) is None:
            raise ValueError(f"give `{wanted}`: the {'lowest' if wanted == 'min' else 'highest'} {self.metric} "
                             "a version may have to pass")
        return self


class ModelConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", max_length=120)
    task: TaskName = "binary"
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    gate: GateConfig
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, raw):
        if isinstance(raw, dict) and ("min_auc" in raw or ("max_regression" in raw and "gate" not in raw)):
            raise ValueError("min_auc and max_regression moved into model.gate: "
                             "{metric: auc, min: <floor>, max_regression: <allowed loss>}")
        return raw

    @field_validator("params")
    @classmethod
    def _platform_owned(cls, params: dict) -> dict:
        taken = [f"{key} ({PLATFORM_OWNED_PARAMS[key]})" for key in params if key in PLATFORM_OWNED_PARAMS]
        if taken:
            raise ValueError(f"set by the platform, not in model.params: {', '.join(taken)}")
        return params

    @model_validator(mode="after")
    def _gate_fits_task(self) -> "ModelConfig":
        metrics = [m.name for m in TASKS[self.task].gate_metrics]
        if self.gate.metric not in metrics:
            raise ValueError(f"gate.metric {self.gate.metric!r} does not apply to a {self.task} model "
                             f"(choose {', '.join(metrics)})")
        return self


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
        problems = boundary_problems(self, _platform(info))
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
