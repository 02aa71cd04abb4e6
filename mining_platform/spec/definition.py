"""Feature definitions: `projects/<p>/features/<name>.yaml`, validated before anything runs.

What every definition shares (versioned, owned, over one source; contracts, output limits, the content hash,
the problems checked when a file loads) and the pipeline kind (`kind: pipeline`, the default), which gives the
aggregation stages over its window. The windowed kind is `spec.windowed`; loading a project's files of either
kind is `spec.feature_files`.
"""

import datetime as dt
import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from mining_platform.spec import names
from mining_platform.spec.parameters import BUILTIN_PARAMETERS, substitute
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.stages import expansion_problems, pipeline_problems
from mining_platform.spec.strict import Strict

FEATURES_DIR = "features"


class DefinitionError(ValueError):
    """A definition file is invalid; the message names the file and every problem in it."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n{listed}")


class FeatureDefinitionError(DefinitionError):
    """A feature definition is invalid."""


def canonical_hash(definition: Strict) -> str:
    """sha256 of a definition's canonical JSON: the registry key and the asset's code_version.

    A definition without `limits` (or a label's `classes`) hashes as it did before the key existed, so adding
    it to the platform changed no registered version.
    """
    dumped = definition.model_dump(mode="json")
    for optional in ("limits", "classes"):  # keys added later: unset, the definition hashes as it did before
        if dumped.get(optional, "set") is None:
            del dumped[optional]
    for aggregation in (dumped.get("aggregations") or {}).values():  # likewise an aggregation without `where`
        if aggregation.get("where", "set") is None:
            del aggregation["where"]
    if dumped.get("kind") == "pipeline":  # the default kind: hashed as before kinds existed
        del dumped["kind"]
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class FeatureType(str, Enum):
    int = "int"
    float = "float"
    bool = "bool"
    string = "string"
    date = "date"

    @property
    def bson_types(self) -> list[str]:
        """The `$type` names a value of this feature type may have."""
        return {
            "int": ["int", "long"],
            "float": ["double", "int", "long", "decimal"],
            "bool": ["bool"],
            "string": ["string"],
            "date": ["date"],
        }[self.value]


class FeatureContract(Strict):
    """What every committed value of one feature must satisfy (checked in the database)."""

    type: FeatureType
    min: StrictInt | StrictFloat | None = None
    max: StrictInt | StrictFloat | None = None
    max_null_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    description: str | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "FeatureContract":
        numeric = self.type in (FeatureType.int, FeatureType.float)
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"min/max apply to int and float features, not {self.type.value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


# An email address or a team name (shown in Dagster as team:<name>).
OWNER = r"^([A-Za-z0-9_.+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|[A-Za-z0-9_.-]+)$"
SOURCE_KEY = r"^[a-z][a-z0-9_]*$"

ParameterValue = StrictBool | StrictInt | StrictFloat | StrictStr | dt.datetime | dt.date


DEFAULT_MAX_TIME_MS = 300_000  # a daily partition's aggregation on a production cluster


class OutputLimits(Strict):
    """What one partition run of a definition may produce; a run over a bound fails and publishes nothing."""

    max_documents: StrictInt = Field(default=10_000_000, ge=1, le=2_000_000_000,
                                     description="Documents one partition may write.")
    max_bytes: StrictInt = Field(default=8 * 2**30, ge=1, description="BSON bytes one partition may write.")
    max_time_ms: StrictInt = Field(default=DEFAULT_MAX_TIME_MS, ge=1_000, le=86_400_000,
                                   description="maxTimeMS of each aggregation (a run config value overrides it).")

    def exceeded(self, *, documents: int, written_bytes: int | None = None) -> str | None:
        """Why a run's output is over these limits, or None."""
        if documents > self.max_documents:
            return (f"the pipeline produced more than limits.max_documents = {self.max_documents:,} documents for "
                    "one partition (an exploding $unwind or $lookup?); raise the limit in a new version if expected")
        if written_bytes is not None and written_bytes > self.max_bytes:
            return (f"the pipeline wrote {written_bytes:,} bytes, over limits.max_bytes = {self.max_bytes:,}; raise "
                    "the limit in a new version if expected")
        return None


class OutputBoundExceeded(RuntimeError):
    """A run would produce more than its definition's `limits` allow; nothing is published."""


class VersionedDefinition(Strict):
    """What feature and label definitions share: a versioned, owned pipeline over one of the project's sources."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    version: StrictInt = Field(ge=1)
    description: str = Field(min_length=1)
    owner: str = Field(pattern=OWNER)
    source: str = Field(pattern=SOURCE_KEY, description="A key of the project's sources.")
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    limits: OutputLimits | None = None

    @property
    def bounds(self) -> OutputLimits:
        """The output limits in force: the declared ones, else the defaults."""
        return self.limits or OutputLimits()

    @property
    def registry_name(self) -> str:
        """The name its versions are registered under in `feature_pipelines`."""
        return self.name

    @property
    def content_hash(self) -> str:
        """sha256 of the definition's canonical JSON: the registry key and the asset's code_version."""
        return canonical_hash(self)


class FeatureDefinition(VersionedDefinition):
    """A pipeline definition: the aggregation stages over a window of the source, run for every partition."""

    kind: Literal["pipeline"] = "pipeline"
    window_days: StrictInt = Field(ge=1, le=3650)
    pipeline: list[dict[str, Any]] = Field(min_length=1)
    features: dict[str, FeatureContract] = Field(min_length=1)

    @property
    def target(self) -> str:
        """The collection the platform writes: `features_<name>`."""
        return names.feature_collection(self.name)

    def trigger_parameters(self) -> dict:
        """The declared parameters as recorded in a `pipeline_runs` trigger."""
        return self.model_dump(mode="json")["parameters"]


def common_problems(raw: dict, path: Path, project: ProjectConfig, builtins: tuple[str, ...]) -> list[str]:
    """What feature and label definitions share: the file name, the source key, the parameters, the safety walk."""
    problems = []
    if raw.get("name") is not None and raw.get("name") != path.stem:
        problems.append(f"name: {raw.get('name')!r} must equal the file name {path.stem!r}")
    source = raw.get("source")
    if isinstance(source, str) and source not in project.sources:
        problems.append(f"source: {source!r} is not a source of project {project.name} "
                        f"(its sources: {', '.join(project.sources)}); declare it under sources in project.yaml")
    declared = raw.get("parameters") if isinstance(raw.get("parameters"), dict) else {}
    for name in declared:
        if name in builtins:
            problems.append(f"parameters.{name}: shadows the built-in parameter {name!r}")
        elif not isinstance(name, str) or not name.isidentifier():
            problems.append(f"parameters.{name}: a parameter name must be an identifier")
    if "pipeline" in raw:
        known = set(builtins) | {str(name) for name in declared}
        problems += pipeline_problems(raw["pipeline"], known)
    return problems


def partition_expansion_problems(pipeline: list[dict], values_at, project: ProjectConfig) -> list[str]:
    """The bound a run applies to expanding stages (`$densify` steps, after parameters are substituted), checked
    when the file loads at the project's first and last partition, so `validate` refuses what a run would.

    `values_at(as_of)` gives the parameter values of a partition. A bound that grows with as_of (a literal lower
    bound and `as_of` as the upper) is largest at one of the two ends."""
    today = dt.datetime.now(dt.timezone.utc).date()
    ends = [project.start_date, project.end_date or max(today, project.start_date)]
    problems: list[str] = []
    for day in dict.fromkeys(ends):
        as_of = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        for problem in expansion_problems(substitute(pipeline, values_at(as_of))):
            problems.append(f"pipeline: {problem} (partition {day}, as a run substitutes its parameters)")
    return problems


def _semantic_problems(raw: dict, path: Path, project: ProjectConfig) -> list[str]:
    return common_problems(raw, path, project, BUILTIN_PARAMETERS) + feature_name_problems(raw, project)


def feature_name_problems(raw: dict, project: ProjectConfig) -> list[str]:
    """The declared features' names and types, for both kinds of feature definition."""
    problems = []
    features = raw.get("features") if isinstance(raw.get("features"), dict) else {}
    for name in features:
        if name in names.RESERVED_FEATURE_FIELDS or name == project.entity:
            problems.append(f"features.{name}: reserved field (the platform writes {project.entity}, as_of, run_id, pipeline_version)")
        elif not isinstance(name, str) or not name.isidentifier():
            problems.append(f"features.{name}: a feature name must be an identifier")
        elif isinstance(features[name], dict) and features[name].get("type") in ("string", "date"):
            problems.append(f"features.{name}: a {features[name]['type']} feature cannot be a model input (XGBoost "
                            "trains on int, float and bool); encode it as a number in the pipeline, or leave it out")
    return problems
