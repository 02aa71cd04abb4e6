"""Windowed feature definitions (`kind: windowed`): declared aggregations over day windows, computed from
daily tiles."""

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from mining_platform.spec import names
from mining_platform.spec.definition import (
    FeatureContract,
    FeatureDefinitionError,
    VersionedDefinition,
    common_problems,
    feature_name_problems,
)
from mining_platform.spec.parameters import BUILTIN_PARAMETERS
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.source_config import FIELD_PATH
from mining_platform.spec.stages import pipeline_problems
from mining_platform.spec.strict import Strict, describe_validation_error

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
