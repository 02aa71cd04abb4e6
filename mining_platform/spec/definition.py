"""Feature definitions: `projects/<p>/features/<name>.yaml`, validated before anything runs.

Two kinds: a pipeline definition (`kind: pipeline`, the default) gives the aggregation
stages over its window; a windowed definition (`kind: windowed`) declares aggregations
over day windows that the platform computes from daily tiles (described below).
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
    ValidationError,
    field_validator,
    model_validator,
)

from mining_platform.spec import names
from mining_platform.spec.parameters import BUILTIN_PARAMETERS, parameter_values, substitute
from mining_platform.spec.project import FIELD_PATH, ProjectConfig
from mining_platform.spec.stages import expansion_problems, pipeline_problems
from mining_platform.spec.strict import Strict, UnreadableFile, describe_validation_error, read_mapping

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

    A definition without `limits` hashes as it did before `limits` existed, so adding the key
    to the platform changed no registered version.
    """
    dumped = definition.model_dump(mode="json")
    if dumped.get("limits", "set") is None:
        del dumped["limits"]
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


# Windowed feature definitions (`kind: windowed`): declared aggregations over day windows, computed from daily tiles.
#
# ```yaml
# name: activity
# version: 1
# kind: windowed
# description: Events, spend and active days over 7 and 30 days.
# owner: growth-ds
# source: user_events
# filter: {event_type: {$in: [app_launch, click, purchase]}}   # optional $match on the source's documents
# aggregations:                     # output feature = <name>_<window>d
#   events:      {op: count, windows_days: [7, 30]}
#   spend:       {op: sum, field: payload.amount, windows_days: [30]}
# post:                             # optional $addFields/$set/$project/$unset stages over the window document
#   - $addFields: {spend_per_event_30d: {$divide: ["$spend_30d", "$events_30d"]}}
# features:
#   events_30d: {type: int, min: 1}
# ```
#
# Every op is exactly decomposable over days: a day's events become one tile per entity
# holding partial aggregates (counts, sums, minima, maxima, first and last event times,
# counts per value), computed once; a window partition combines the committed tiles of
# its days. The definition is versioned, registered, audited, published and
# contract-checked exactly like a pipeline definition, and its `filter` and `post` get
# the same safety walk.

Op = Literal["count", "sum", "min", "max", "mean", "active_days", "days_since_last", "days_since_first", "count_by"]
OPS: tuple[str, ...] = Op.__args__
FIELD_OPS = frozenset({"sum", "min", "max", "mean", "count_by"})  # ops over a field of the events
MAX_WINDOW_DAYS = 365
POST_STAGES = frozenset({"$addFields", "$set", "$project", "$unset"})
# What `post` may use: the partition's end; `filter` runs per source day and may use only declared parameters.
POST_PARAMETERS = ("as_of",)


class WindowAggregation(Strict):
    op: Op
    field: str | None = Field(default=None, pattern=FIELD_PATH,
                              description="A field path of the events (no $): what sum/min/max/mean/count_by read.")
    windows_days: list[StrictInt] = Field(min_length=1)
    where: dict | None = Field(default=None, description=(
        "An aggregation expression over one event (e.g. {$eq: [$event_type, purchase]}): only the events for "
        "which it is true count towards this aggregation; the definition's `filter` applies first."))

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, windows: list[int]) -> list[int]:
        wrong = [w for w in windows if not 1 <= w <= MAX_WINDOW_DAYS]
        if wrong:
            raise ValueError(f"windows of 1 to {MAX_WINDOW_DAYS} days, got {wrong}")
        if len(set(windows)) != len(windows):
            raise ValueError(f"a window appears twice in {windows}")
        return sorted(windows)

    @model_validator(mode="after")
    def _field_fits_op(self) -> "WindowAggregation":
        if self.op in FIELD_OPS and self.field is None:
            raise ValueError(f"op {self.op} needs `field` (the events' field it aggregates)")
        if self.op not in FIELD_OPS and self.field is not None:
            raise ValueError(f"op {self.op} takes no `field`")
        return self


class WindowedDefinition(VersionedDefinition):
    kind: Literal["windowed"]
    filter: dict = Field(default_factory=dict, description="A $match on the source's documents (per source day).")
    aggregations: dict[str, WindowAggregation] = Field(min_length=1)
    post: list[dict] = Field(default_factory=list)
    features: dict[str, FeatureContract] = Field(min_length=1)

    @property
    def windows(self) -> list[int]:
        """Every declared window length, shortest first."""
        return sorted({w for a in self.aggregations.values() for w in a.windows_days})

    @property
    def window_days(self) -> int:
        """The longest window: how many source days a partition reads."""
        return self.windows[-1]

    @property
    def outputs(self) -> dict[str, tuple[str, WindowAggregation, int]]:
        """`<name>_<w>d` -> (aggregation name, aggregation, window) for every declared window."""
        return {f"{name}_{w}d": (name, agg, w) for name, agg in self.aggregations.items() for w in agg.windows_days}

    @property
    def target(self) -> str:
        return names.feature_collection(self.name)

    @property
    def tiles_target(self) -> str:
        """Where its daily tiles live: `tiles_<name>`."""
        return names.tiles_collection(self.name)

    def trigger_parameters(self) -> dict:
        return self.model_dump(mode="json")["parameters"]


def _post_touches(operator: str, spec) -> set[str]:
    """The top-level fields a `post` stage sets ($addFields/$set, $project with a computed value) or removes
    ($unset, $project exclusion)."""
    if operator == "$unset":
        fields = [spec] if isinstance(spec, str) else spec if isinstance(spec, list) else []
        return {str(f).split(".")[0] for f in fields}
    if not isinstance(spec, dict):
        return set()
    if operator == "$project":
        return {str(f).split(".")[0] for f, value in spec.items() if value not in (1, True)}
    return {str(f).split(".")[0] for f in spec}


def _windowed_problems(raw: dict, path: Path, project: ProjectConfig) -> list[str]:
    problems = common_problems(raw, path, project, BUILTIN_PARAMETERS) + feature_name_problems(raw, project)
    declared = {str(k) for k in raw.get("parameters", {})} if isinstance(raw.get("parameters"), dict) else set()
    if isinstance(raw.get("filter"), dict):
        problems += [f"filter: {p}" for p in pipeline_problems([{"$match": raw["filter"]}], declared)]
    post = raw.get("post")
    if isinstance(post, list):
        for number, stage in enumerate(post, start=1):
            operator = next(iter(stage)) if isinstance(stage, dict) and len(stage) == 1 else None
            if operator not in POST_STAGES:
                problems.append(f"post stage {number}: only {', '.join(sorted(POST_STAGES))} may follow the windows "
                                f"(got {operator or stage!r})")
                continue
            reserved = sorted(_post_touches(operator, stage[operator]) & (names.RESERVED_FEATURE_FIELDS
                                                                        | {project.entity}))
            if reserved:
                problems.append(f"post stage {number} ({operator}): sets or removes {', '.join(reserved)}, which the "
                                f"platform writes ({project.entity}, as_of, run_id, pipeline_version, _id)")
        problems += [f"post: {p}" for p in pipeline_problems(post, declared | set(POST_PARAMETERS))]
    aggregations = raw.get("aggregations") if isinstance(raw.get("aggregations"), dict) else {}
    for name, spec in aggregations.items():
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"aggregations.{name}: an aggregation name must be an identifier")
        elif isinstance(spec, dict) and spec.get("op") is not None and spec.get("op") not in OPS:
            problems.append(f"aggregations.{name}.op: unknown op {spec.get('op')!r} (ops: {', '.join(OPS)})")
        elif isinstance(spec, dict) and isinstance(spec.get("field"), str) and "$" in spec["field"]:
            problems.append(f"aggregations.{name}.field: {spec['field']!r} is a field path without $ "
                            "(payload.amount, not $payload.amount)")
        if isinstance(spec, dict) and isinstance(spec.get("where"), dict):
            # Walked as the $expr of a $match: the same refusals as any expression (JavaScript, other collections).
            problems += [f"aggregations.{name}.where: {p}"
                         for p in pipeline_problems([{"$match": {"$expr": spec["where"]}}], declared)]
    return problems


def _contract_problems(definition: WindowedDefinition) -> list[str]:
    problems = []
    outputs = definition.outputs
    for feature in definition.features:
        if feature in outputs and outputs[feature][1].op == "count_by":
            problems.append(f"features.{feature}: a count_by output is a map of counts, not a model input; derive "
                            "numbers from it in `post` (a share, an entropy, how many values)")
        elif feature not in outputs and not definition.post:
            problems.append(f"features.{feature}: no aggregation produces it (outputs: {', '.join(outputs)}); "
                            "add the window, or compute it in `post`")
    return problems


def load_windowed_definition(raw: dict, path: Path, project: ProjectConfig) -> WindowedDefinition:
    """Validate a `kind: windowed` file already read; raises FeatureDefinitionError listing all its problems."""
    problems = _windowed_problems(raw, path, project)
    definition = None
    try:
        definition = WindowedDefinition.model_validate(raw)
    except ValidationError as exc:
        # Where the platform's own check names a field's problem (an unknown op, listing the ops), pydantic's
        # message about the same field would only repeat it.
        named = {p.split(": ", 1)[0] for p in problems}
        problems = [p for p in describe_validation_error(exc) if p.split(": ", 1)[0] not in named] + problems
    if definition is not None:
        problems += _contract_problems(definition)
    if problems:
        raise FeatureDefinitionError(path, list(dict.fromkeys(problems)))
    return definition


KINDS = ("pipeline", "windowed")


def load_feature_definition(path: Path, project: ProjectConfig) -> FeatureDefinition:
    """Read and validate one definition (either kind); raises FeatureDefinitionError listing all its problems."""
    try:
        raw = read_mapping(path)
    except UnreadableFile as exc:
        raise FeatureDefinitionError(path, [str(exc)]) from None
    kind = raw.get("kind", "pipeline")
    if kind not in KINDS:
        raise FeatureDefinitionError(path, [f"kind: {kind!r} is not a kind of feature definition ({', '.join(KINDS)})"])
    if kind == "windowed":
        return load_windowed_definition(raw, path, project)
    problems = _semantic_problems(raw, path, project)
    try:
        definition = FeatureDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = describe_validation_error(exc) + problems
    if problems:
        raise FeatureDefinitionError(path, problems)
    problems = partition_expansion_problems(definition.pipeline, lambda as_of: parameter_values(
        as_of=as_of, window_days=definition.window_days, declared=definition.parameters), project)
    if problems:
        raise FeatureDefinitionError(path, problems)
    return definition


def feature_files(project_dir: Path) -> list[Path]:
    features_dir = project_dir / FEATURES_DIR
    return sorted([*features_dir.glob("*.yaml"), *features_dir.glob("*.yml")])


def load_feature_files(project_dir: Path, project: ProjectConfig) -> list[tuple[Path, FeatureDefinition]]:
    """Every definition of a project with its file, sorted; the first invalid file raises.

    Two sets may not produce the same feature: training joins them side by side.
    """
    loaded, owner_of = [], {}
    for path in feature_files(project_dir):
        definition = load_feature_definition(path, project)
        clashes = [f"features.{f}: also produced by {owner_of[f].name}" for f in definition.features if f in owner_of]
        if clashes:
            raise FeatureDefinitionError(path, clashes)
        owner_of.update({f: path for f in definition.features})
        loaded.append((path, definition))
    return loaded


def load_feature_definitions(project_dir: Path, project: ProjectConfig) -> list[FeatureDefinition]:
    """Every definition of a project, sorted by name; see `load_feature_files`."""
    return [definition for _, definition in load_feature_files(project_dir, project)]
