"""Point-in-time training samples, built in MongoDB from committed feature partitions.

A sample partition T holds one row per entity that has features at as_of T (the end
of day T): the committed features of every feature set at T, side by side, and the
label from the events of the label window [T, T + horizon). Features only saw events
before T (their pipelines end at as_of), the label only events from T on; the label is
`1` (churned) when the entity has no event in the window.

Rows are written with `$merge` tagged with the run's id and published with a commit
marker in `sample_partitions`, exactly as feature partitions are, and every build is
audited in `pipeline_runs` under the pipeline name `<p>/samples`.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pymongo import ASCENDING
from pymongo.database import Database

from mining_platform.features import publication
from mining_platform.features.definition import RESERVED_FIELDS, FeatureDefinition
from mining_platform.project import ProjectConfig

SAMPLE_PARTITIONS = "sample_partitions"
# Fields a sample row carries besides the entity, the features and the label.
SAMPLE_FIELDS = frozenset({"feature_versions"})
# Bump when the join or the label rule's implementation changes: it is part of the hash.
SAMPLES_FORMAT = 1


class SamplesRefused(RuntimeError):
    """A sample partition cannot be built correctly yet (immature label, missing features)."""


@dataclass(frozen=True)
class SampleSpec:
    """How a project's samples are built: its feature sets and its label rule."""

    project: ProjectConfig
    definitions: tuple[FeatureDefinition, ...]

    def __post_init__(self) -> None:
        if not self.definitions:
            raise ValueError(f"project {self.project.name}: samples need at least one feature definition")
        label = self.project.label.name
        for definition in self.definitions:
            if SAMPLE_FIELDS & definition.features.keys():
                raise ValueError(f"features/{definition.name}.yaml: feature names {sorted(SAMPLE_FIELDS & definition.features.keys())} "
                                 "are reserved in samples")
        clash = [d.name for d in self.definitions if label in d.features]
        if clash or label in RESERVED_FIELDS | SAMPLE_FIELDS or label == self.project.entity:
            where = f"a feature of {', '.join(clash)}" if clash else "a reserved field"
            raise ValueError(f"project {self.project.name}: label.name {label!r} is {where}; rename one of them")

    @property
    def name(self) -> str:
        return f"{self.project.name}/samples"

    @property
    def version(self) -> int:
        return SAMPLES_FORMAT

    @property
    def target(self) -> str:
        return f"samples_{self.project.name}"

    @property
    def label(self) -> str:
        return self.project.label.name

    @property
    def horizon(self) -> dt.timedelta:
        return dt.timedelta(days=self.project.label.horizon_days)

    @property
    def feature_columns(self) -> list[str]:
        return [feature for d in self.definitions for feature in d.features]

    @property
    def content_hash(self) -> str:
        """What defines a sample row: the feature definitions' hashes, the entity and the label rule."""
        canonical = json.dumps({
            "format": SAMPLES_FORMAT,
            "entity": self.project.entity,
            "events": self.project.events,
            "label": self.project.label.model_dump(),
            "features": {d.name: d.content_hash for d in self.definitions},
        }, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def trigger_parameters(self) -> dict:
        return {"label": self.label, "horizon_days": self.project.label.horizon_days}

    def label_window(self, as_of: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        return as_of, as_of + self.horizon


def ensure_sample_indexes(db: Database, spec: SampleSpec) -> None:
    # The $merge key; with equality on as_of and run_id it also serves the training load.
    db[spec.target].create_index(
        [("as_of", ASCENDING), ("run_id", ASCENDING), (spec.project.entity, ASCENDING)],
        unique=True,
        name=f"as_of_1_run_id_1_{spec.project.entity}_1",
    )
    publication.ensure_marker_index(db, SAMPLE_PARTITIONS)


def immature_label_problem(spec: SampleSpec, *, partition: str, as_of: dt.datetime, loaded_days: set[str]) -> str | None:
    """Why partition T cannot be labelled yet (a raw day of its label window is not loaded), or None."""
    start, end = spec.label_window(as_of)
    days = [(start + dt.timedelta(days=i)).date().isoformat() for i in range((end - start).days)]
    missing = [day for day in days if day not in loaded_days]
    if not missing:
        return None
    span = missing[0] if len(missing) == 1 else f"{missing[0]} .. {missing[-1]} ({len(missing)} days)"
    return (
        f"{partition}: the label window [{days[0]}, {end.date().isoformat()}) has not fully elapsed: raw events "
        f"for {span} are not loaded; a label now would call active users churned. Materialise "
        f"{spec.project.name}/raw/{spec.project.events} for those days first."
    )


def feature_markers(db: Database, spec: SampleSpec, *, partition: str, as_of: dt.datetime) -> dict[str, dict]:
    """The committed marker of every feature set at as_of; refuses when one is missing."""
    markers = {d.name: publication.committed_partition(db, d.name, as_of) for d in spec.definitions}
    missing = [name for name, marker in markers.items() if marker is None]
    if missing:
        raise SamplesRefused(
            f"{partition}: no committed features for {', '.join(missing)}; materialise "
            + ", ".join(f"{spec.project.name}/features/{name}" for name in missing) + f" for {partition} first"
        )
    return markers


def sample_stages(spec: SampleSpec, *, as_of: dt.datetime, markers: dict[str, dict], run_id: str) -> list[dict]:
    """The aggregation, run on the first feature set's collection, that writes one sample partition.

    Each feature set contributes its committed rows at as_of; the events of the label
    window contribute one marker row per active entity; grouping by entity lines them up.
    Entities without features (only active after T) are not samples.
    """
    entity = spec.project.entity
    label_start, label_end = spec.label_window(as_of)

    def committed_rows(definition: FeatureDefinition) -> list[dict]:
        return [
            {"$match": {"as_of": as_of, "run_id": markers[definition.name]["run_id"]}},
            {"$project": {"_id": 0, entity: 1, **{f: 1 for f in definition.features}, "_has_features": {"$literal": True}}},
        ]

    first, *others = spec.definitions
    return [
        *committed_rows(first),
        *({"$unionWith": {"coll": d.target, "pipeline": committed_rows(d)}} for d in others),
        {"$unionWith": {"coll": spec.project.events, "pipeline": [
            {"$match": {"timestamp": {"$gte": label_start, "$lt": label_end}}},
            {"$group": {"_id": f"${entity}"}},
            {"$project": {"_id": 0, entity: "$_id", "_active_after": {"$literal": True}}},
        ]}},
        {"$group": {"_id": f"${entity}", "row": {"$mergeObjects": "$$ROOT"}}},
        {"$match": {"row._has_features": True}},
        {"$replaceWith": {"$mergeObjects": ["$row", {
            spec.label: {"$cond": [{"$eq": ["$row._active_after", True]}, 0, 1]},
            "as_of": {"$literal": as_of},
            "run_id": {"$literal": run_id},
            "feature_versions": {"$literal": {d.name: markers[d.name]["pipeline_version"] for d in spec.definitions}},
        }]}},
        {"$unset": ["_has_features", "_active_after"]},
        {"$merge": {
            "into": spec.target,
            "on": ["as_of", "run_id", entity],
            "whenMatched": "fail",
            "whenNotMatched": "insert",
        }},
    ]


def label_counts(db: Database, spec: SampleSpec, *, as_of: dt.datetime, run_id: str) -> tuple[int, int]:
    """(rows, positives) of one run's partition, counted in the database."""
    counted = list(db[spec.target].aggregate([
        {"$match": {"as_of": as_of, "run_id": run_id}},
        {"$group": {"_id": None, "rows": {"$sum": 1}, "positives": {"$sum": f"${spec.label}"}}},
    ]))
    return (counted[0]["rows"], counted[0]["positives"]) if counted else (0, 0)


def committed_sample_markers(
    db: Database, spec: SampleSpec, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[dict]:
    """Markers of the committed sample partitions with partition keys in [start, end], oldest first."""
    query: dict = {"name": spec.name}
    keys = {}
    if start:
        keys["$gte"] = start.isoformat()
    if end:
        keys["$lte"] = end.isoformat()
    if keys:
        query["partition"] = keys
    return list(db[SAMPLE_PARTITIONS].find(query, sort=[("as_of", ASCENDING)]))
