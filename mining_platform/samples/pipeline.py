"""What a sample row is, and the aggregation that builds one sample partition in MongoDB.

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

from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.store import markers

# Bump when the join or the label rule's implementation changes: it is part of the hash.
SAMPLES_FORMAT = 1


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
        """What defines a sample row: the feature definitions' hashes, the entity and the label rule."""
        project = self.spec.project
        canonical = json.dumps({
            "format": SAMPLES_FORMAT,
            "entity": project.entity,
            "events": project.events,
            "label": project.label.model_dump(),
            "features": {d.name: d.content_hash for d in self.spec.definitions},
        }, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def trigger_parameters(self) -> dict:
        return {"label": self.spec.label, "horizon_days": self.spec.project.label.horizon_days}


def immature_label_problem(spec: ProjectSpec, *, partition: str, as_of: dt.datetime, loaded_days: set[str]) -> str | None:
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
        f"{names.shown(spec.raw_path())} for those days first."
    )


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


def sample_stages(spec: ProjectSpec, *, as_of: dt.datetime, markers_at: dict[str, dict], run_id: str) -> list[dict]:
    """The aggregation, run on the first feature set's collection, that writes one sample partition.

    Each feature set contributes its committed rows at as_of; the events of the label
    window contribute one marker row per active entity; grouping by entity lines them up.
    Entities without features (only active after T) are not samples.
    """
    entity = spec.entity
    label_start, label_end = spec.label_window(as_of)

    def committed_rows(definition: FeatureDefinition) -> list[dict]:
        return [
            {"$match": {"as_of": as_of, "run_id": markers_at[definition.name]["run_id"]}},
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
            "feature_versions": {"$literal": {d.name: markers_at[d.name]["pipeline_version"] for d in spec.definitions}},
        }]}},
        {"$unset": ["_has_features", "_active_after"]},
        markers.merge_stage(spec.samples_collection, entity=entity),
    ]


def label_counts(db: Database, spec: ProjectSpec, *, as_of: dt.datetime, run_id: str) -> tuple[int, int]:
    """(rows, positives) of one run's partition, counted in the database."""
    counted = list(db[spec.samples_collection].aggregate([
        {"$match": {"as_of": as_of, "run_id": run_id}},
        {"$group": {"_id": None, "rows": {"$sum": 1}, "positives": {"$sum": f"${spec.label}"}}},
    ]))
    return (counted[0]["rows"], counted[0]["positives"]) if counted else (0, 0)


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
