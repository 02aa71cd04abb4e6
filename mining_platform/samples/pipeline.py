"""What a sample row is, and the aggregations that build one sample partition in MongoDB.

A sample partition T holds one row per entity that has features at as_of T (the end
of day T): the committed features of every feature set at T, side by side, and the
label from the project's label definition, run over the label window [T, horizon_end)
of its source. Features only saw events before T (their pipelines end at as_of), the
label only events from T on. An entity with features but no label document gets the
definition's `default` (or is not a sample when that is null).

A build runs two aggregations: the label definition on its source (which may live in
another database) into the scratch collection `labels_<p>`, tagged with the run, then
the join into `samples_<p>`. Rows are written with `$merge` tagged with the run's id
and published with a commit marker in `sample_partitions`, exactly as feature
partitions are, and every build is audited in `pipeline_runs` as `<p>/samples`.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pymongo import ASCENDING
from pymongo.database import Database

from mining_platform.sources.observe import complete_through, ignored_future, shown
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.parameters import label_parameter_values, substitute
from mining_platform.store import markers

# Bump when the join or the label rule's implementation changes: it is part of the hash.
SAMPLES_FORMAT = 2


class SamplesRefused(RuntimeError):
    """A sample partition cannot be built correctly yet (immature label, missing features)."""


@dataclass(frozen=True)
class SamplesPipeline:
    """A project's samples as an audited pipeline: `<p>/samples` into `samples_<p>`."""

    spec: ProjectSpec

    def __post_init__(self) -> None:
        if not self.spec.definitions:
            raise ValueError(f"project {self.spec.name}: samples need at least one feature definition")

    @property
    def name(self) -> str:
        return names.samples_pipeline(self.spec.name)

    @property
    def version(self) -> int:
        return SAMPLES_FORMAT

    @property
    def target(self) -> str:
        return self.spec.samples_collection

    @property
    def content_hash(self) -> str:
        """What defines a sample row: the feature definitions' hashes, the entity, the label definition and its source."""
        project = self.spec.project
        label = self.spec.label_definition
        # `demo_of` only where it is set, so a source that is no project's demo keeps the hash it always had.
        source = self.spec.label_source.model_dump(mode="json", exclude=None if self.spec.label_source.demo_of
                                                   else {"demo_of"})
        canonical = json.dumps({
            "format": SAMPLES_FORMAT,
            "entity": project.entity,
            "task": project.model.task,
            "label": {"name": label.name, "hash": label.content_hash,
                      "source": source},
            "features": {d.name: d.content_hash for d in self.spec.definitions},
        }, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def trigger_parameters(self) -> dict:
        label = self.spec.label_definition
        return {"label": label.name, "label_version": label.version, "label_hash": label.content_hash,
                "horizon_days": label.horizon_days}


def immature_label_problem(spec: ProjectSpec, *, partition: str, as_of: dt.datetime,
                           newest: dt.datetime | None, sources: Database) -> str | None:
    """Why partition T cannot be labelled yet (its label window is not complete in the source), or None.

    The window [T, horizon_end) is complete once the source's watermark (its newest event
    time) reaches horizon_end plus the source's lateness_days. `sources` is the platform
    database the label source is read from; a refusal also says which far-future events the
    watermark ignored.
    """
    start, end = spec.label_window(as_of)
    lateness = spec.label_source.lateness_days
    needed = end + dt.timedelta(days=lateness)
    if newest is not None and newest >= needed:
        return None
    last_day = (end - dt.timedelta(days=1)).date().isoformat()
    seen = ("holds no events" if newest is None else
            f"holds events up to {newest.isoformat()} (complete through {complete_through(newest, lateness)})")
    source_name = f"{spec.label_definition.source} ({shown(spec.label_source, sources)})"
    problem = (
        f"{partition}: the label window [{start.date().isoformat()}, {end.date().isoformat()}) has not fully "
        f"elapsed in source {source_name}: it {seen}; the window is complete once it holds an event at or after "
        f"{needed.isoformat()} (the end of {last_day}" + (f" plus lateness_days {lateness}" if lateness else "")
        + "). Labelling now would judge entities on a partial window."
    )
    ignored = ignored_future(sources, spec.label_source)
    return f"{problem} ({ignored}.)" if ignored else problem


def feature_markers(db: Database, spec: ProjectSpec, *, partition: str, as_of: dt.datetime) -> dict[str, dict]:
    """The committed marker of every feature set at as_of; refuses when one is missing."""
    found = {d.name: markers.committed_partition(db, d.name, as_of) for d in spec.definitions}
    missing = [name for name, marker in found.items() if marker is None]
    if missing:
        raise SamplesRefused(
            f"{partition}: no committed features for {', '.join(missing)}; materialise "
            + ", ".join(names.shown(spec.feature_path(name)) for name in missing) + f" for {partition} first"
        )
    return found


def label_stages(spec: ProjectSpec, *, as_of: dt.datetime, run_id: str, namespace: str) -> list[dict]:
    """The label definition over its source, written into the scratch collection `labels_<p>` of the project's
    database (named: the source may live in another one) for this run. A
    boolean value is stored as 0/1; a missing value as null (the join then applies `default`).
    """
    label = spec.label_definition
    values = label_parameter_values(as_of=as_of, horizon_days=label.horizon_days, declared=label.parameters)
    return [
        *substitute(label.pipeline, values),
        {"$limit": label.bounds.max_documents + 1},  # one past the bound: `verify` refuses a run over it
        {"$project": {
            "_id": 0,
            spec.entity: "$_id",
            "value": spec.task_type.label_value("$value"),
            "as_of": {"$literal": as_of},
            "run_id": {"$literal": run_id},
        }},
        markers.merge_stage(names.labels_collection(spec.name), entity=spec.entity, database=namespace),
    ]


def sample_stages(spec: ProjectSpec, *, as_of: dt.datetime, markers_at: dict[str, dict], run_id: str) -> list[dict]:
    """The aggregation, run on the first feature set's collection, that writes one sample partition.

    Each feature set contributes its committed rows at as_of; the run's label documents
    contribute one row per labelled entity; grouping by entity lines them up. Entities
    without features (only active after T) are not samples; entities without a label
    get the definition's default, or are dropped when it is null.
    """
    entity = spec.entity
    default = spec.label_definition.default

    def committed_rows(definition: FeatureDefinition) -> list[dict]:
        return [
            {"$match": {"as_of": as_of, "run_id": markers_at[definition.name]["run_id"]}},
            {"$project": {"_id": 0, entity: 1, **{f: 1 for f in definition.features}, "_has_features": {"$literal": True}}},
        ]

    first, *others = spec.definitions
    return [
        *committed_rows(first),
        *({"$unionWith": {"coll": d.target, "pipeline": committed_rows(d)}} for d in others),
        {"$unionWith": {"coll": names.labels_collection(spec.name), "pipeline": [
            {"$match": {"as_of": as_of, "run_id": run_id}},
            {"$project": {"_id": 0, entity: 1, "_label": "$value"}},
        ]}},
        {"$group": {"_id": f"${entity}", "row": {"$mergeObjects": "$$ROOT"}}},
        {"$match": {"row._has_features": True}},
        {"$replaceWith": {"$mergeObjects": ["$row", {
            spec.label: {"$ifNull": ["$row._label", {"$literal": default}]},
            "as_of": {"$literal": as_of},
            "run_id": {"$literal": run_id},
            "feature_versions": {"$literal": {d.name: markers_at[d.name]["pipeline_version"] for d in spec.definitions}},
        }]}},
        {"$unset": ["_has_features", "_label"]},
        *([{"$match": {spec.label: {"$ne": None}}}] if default is None else []),
        markers.merge_stage(spec.samples_collection, entity=entity),
    ]


@dataclass(frozen=True)
class LabelCounts:
    rows: int
    label_sum: float  # positives of a binary label
    invalid: int  # rows whose label is not a valid value for the task
    example: object = None  # one invalid value
    entity_types: tuple[str, ...] = ()  # the BSON types of the entity ids ("string", "int", "long", …)

    @property
    def label_mean(self) -> float | None:
        return self.label_sum / self.rows if self.rows else None


def label_counts(db: Database, spec: ProjectSpec, *, as_of: dt.datetime, run_id: str,
                 max_time_ms: int = 600_000) -> LabelCounts:
    """Rows, label sum, invalid labels and entity id types of one run's partition, counted in the database.

    Valid: what the task says (`Task.invalid_label`): 0 or 1 for a binary task, a finite number for regression.
    """
    label = f"${spec.label}"
    invalid = spec.task_type.invalid_label(label)
    counted = list(db[spec.samples_collection].aggregate([
        {"$match": {"as_of": as_of, "run_id": run_id}},
        {"$group": {
            "_id": None, "rows": {"$sum": 1},
            "label_sum": {"$sum": {"$cond": [invalid, 0, label]}},
            "invalid": {"$sum": {"$cond": [invalid, 1, 0]}},
            "example": {"$max": {"$cond": [invalid, {"$ifNull": [label, "null"]}, "$$REMOVE"]}},
            "entity_types": {"$addToSet": {"$type": f"${spec.entity}"}},
        }},
    ], maxTimeMS=max_time_ms))
    if not counted:
        return LabelCounts(0, 0.0, 0)
    c = counted[0]
    return LabelCounts(c["rows"], float(c["label_sum"]), c["invalid"], c.get("example"),
                       tuple(sorted(c["entity_types"])))


def committed_sample_markers(
    db: Database, spec: ProjectSpec, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[dict]:
    """Markers of the committed sample partitions with partition keys in [start, end], oldest first."""
    query: dict = {"name": names.samples_pipeline(spec.name)}
    keys = {}
    if start:
        keys["$gte"] = start.isoformat()
    if end:
        keys["$lte"] = end.isoformat()
    if keys:
        query["partition"] = keys
    return list(db[names.SAMPLE_MARKERS].find(query, sort=[("as_of", ASCENDING)]))
