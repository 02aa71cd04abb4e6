"""One matured day's realised performance: day T's predictions joined with the labels that matured after T.

The labels are the project's label definition run over its source for as_of T, exactly
as a sample partition labels T (same stages, same `default`, same maturity rule): the
run writes them into the scratch collection `labels_<p>` under its own id, reads them
back (entity and value), and removes them. The predictions are the batch predictions
committed for T (every entity with features at T, per role) and the endpoint's logged
entity predictions made from T's features (`as_of` T in `prediction_log`).

Metrics are computed per (source, role, version); the challenger is compared with the
champion on the batch rows both scored. The version hit rate is measured on the
predictions the endpoint logged during day T: the share answered by the version its role
named at that moment (from the deployment history).
"""

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from bson import ObjectId
from pymongo.database import Database

from mining_platform.samples.pipeline import immature_label_problem, label_stages
from mining_platform.sources.observe import source_database, watermark
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.clock import as_utc
from mining_platform.spec.committed import committed_rows
from mining_platform.spec.names import CHALLENGER, CHAMPION, PREDICTION_LOG, PREDICTION_MARKERS, endpoint_database_of
from mining_platform.store import markers
from mining_platform.tasks.judge import Interval, Realised, judge_of

MAX_LOGGED = 1_000_000  # logged predictions read per day, at most


class PerformanceInputMissing(ValueError):
    """The day cannot be judged yet (labels not matured, no committed predictions) or its labels are invalid."""


@dataclass(frozen=True)
class Served:
    """From `since` on, the endpoint was meant to answer with `champion` (and run `challenger`)."""

    since: dt.datetime
    champion: str | None
    challenger: str | None = None


@dataclass(frozen=True)
class Group:
    source: str  # "batch" or "logged"
    role: str
    version: str
    realised: Realised


@dataclass(frozen=True)
class HitRate:
    logged: int  # answered predictions logged during the day whose expected version is known
    hits: int
    misses: dict[str, int] = field(default_factory=dict)  # "served v3 as champion, expected v4" -> count
    unattributed: int = 0  # logged before the first recorded deployment

    @property
    def rate(self) -> float | None:
        return self.hits / self.logged if self.logged else None


@dataclass(frozen=True)
class PerformanceDay:
    partition: str
    labelled: int  # entities with a label (after `default`)
    groups: list[Group]
    comparison: Interval | None  # challenger − champion on the batch rows (positive: challenger better)
    compared_on: str
    hit_rate: HitRate
    models: dict[str, str]  # role -> version that scored the batch

    def group(self, source: str, role: str) -> Group | None:
        return next((g for g in self.groups if g.source == source and g.role == role), None)

    def evidence(self, spec: ProjectSpec) -> dict:
        """What the performance sensor decides on (the asset's `evidence` metadata)."""
        gate = spec.project.model.gate
        value = {}
        for role in (CHAMPION, CHALLENGER):
            group = self.group("batch", role)
            if group is not None:
                value[role] = {"version": group.version, "rows": group.realised.rows,
                               "value": group.realised.metrics.get(gate.metric)}
        return {
            "partition": self.partition,
            "metric": gate.metric,
            "higher_is_better": gate.higher_is_better,
            "floor": gate.bound,
            "compared_on": self.compared_on,
            **value,
            "difference": self.comparison.as_dict() if self.comparison else None,
        }


def require_matured(sources: Database, spec: ProjectSpec, *, partition: str, as_of: dt.datetime) -> None:
    """PerformanceInputMissing while T's label window has not elapsed in the label source (its watermark)."""
    source = spec.label_source
    problem = immature_label_problem(spec, partition=partition, as_of=as_of, newest=watermark(sources, source),
                                     sources=sources)
    if problem:
        raise PerformanceInputMissing(problem)


def day_labels(db: Database, sources: Database, spec: ProjectSpec, *, partition: str, as_of: dt.datetime,
               max_time_ms: int) -> dict:
    """Entity -> label at as_of, by the label definition (entities without a label document are absent; the
    caller applies `default`). Refused while the label window has not elapsed in the source."""
    source = spec.label_source
    require_matured(sources, spec, partition=partition, as_of=as_of)
    run_id = f"performance-{ObjectId()}"
    scratch = db[names.labels_collection(spec.name)]
    markers.ensure_partition_index(db, scratch.name, entity=spec.entity)  # the key the label stages' $merge writes on
    try:
        stages = label_stages(spec, as_of=as_of, run_id=run_id, namespace=db.name)
        list(source_database(sources, source)[source.collection].aggregate(
            stages, allowDiskUse=True, maxTimeMS=max_time_ms,
            comment=f"mining-platform {spec.name}/performance {partition}"))
        labelled = list(scratch.find({"as_of": as_of, "run_id": run_id}, {"_id": 0, spec.entity: 1, "value": 1}))
    finally:
        scratch.delete_many({"run_id": run_id})
    if len(labelled) > spec.label_definition.bounds.max_documents:
        raise PerformanceInputMissing(f"labels/{spec.label}.yaml at {partition}: more than "
                                      f"{spec.label_definition.bounds.max_documents} label documents")
    return {doc[spec.entity]: doc.get("value") for doc in labelled}


def _label_array(spec: ProjectSpec, labels: dict, entities: list, partition: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels of `entities` (default applied) and which entities have one."""
    default = spec.label_definition.default
    values = [labels.get(e, default) for e in entities]
    known = np.array([v is not None for v in values], dtype=bool)
    y = np.array([float(v) if v is not None else np.nan for v in values], dtype=np.float64)
    invalid = known & spec.task_type.invalid_labels(y)
    if invalid.any():
        raise PerformanceInputMissing(f"{partition}: {int(invalid.sum())} labels of {spec.label!r} are not "
                                      f"{spec.task_type.label_wanted}; "
                                      f"fix labels/{spec.label}.yaml")
    return y, known


def _expected(timeline: list[Served], at: dt.datetime) -> Served | None:
    current = None
    for served in timeline:
        if served.since <= at:
            current = served
        else:
            break
    return current


def hit_rate(logged: list[dict], timeline: list[Served]) -> HitRate:
    """Of the answered predictions logged, the share answered by the version their role named at that moment."""
    timeline = sorted(timeline, key=lambda s: s.since)
    hits = total = unattributed = 0
    misses: dict[str, int] = {}
    for doc in logged:
        expected = _expected(timeline, as_utc(doc["time"]))
        if expected is None:
            unattributed += 1
            continue
        role = doc.get("role", CHAMPION)
        wanted = expected.champion if role == CHAMPION else expected.challenger
        version = (doc.get("model") or {}).get("version")
        total += 1
        if version == wanted:
            hits += 1
        else:
            key = f"served v{version} as {role}, expected {f'v{wanted}' if wanted else 'none'}"
            misses[key] = misses.get(key, 0) + 1
    return HitRate(logged=total, hits=hits, misses=misses, unattributed=unattributed)


def evaluate_performance(db: Database, sources: Database, spec: ProjectSpec, *, partition: str, as_of: dt.datetime,
                         timeline: list[Served], confidence: float, max_time_ms: int = 300_000) -> PerformanceDay:
    """Day T's realised metrics per version and role, the challenger's comparison, and the day's hit rate.

    `db`: the project's namespace; `sources`: the platform database (default database of sources)."""
    require_matured(sources, spec, partition=partition, as_of=as_of)
    marker = markers.committed_partition(db, names.predictions_pipeline(spec.name), as_of, markers=PREDICTION_MARKERS)
    if marker is None:
        raise PerformanceInputMissing(f"{partition}: no committed predictions; materialise "
                                      f"{names.shown(spec.asset_path('predictions'))} for {partition} first")
    labels = day_labels(db, sources, spec, partition=partition, as_of=as_of, max_time_ms=max_time_ms)
    entity = spec.entity
    batch: dict[str, dict] = {}  # role -> {"version", "entities", "scores"}
    for doc in db[names.predictions_collection(spec.name)].find(
            committed_rows(marker), {"_id": 0, entity: 1, "role": 1, "model": 1, "score": 1},
            batch_size=10_000, max_time_ms=max_time_ms):
        group = batch.setdefault(doc["role"], {"version": doc["model"]["version"], "entities": [], "scores": []})
        group["entities"].append(doc[entity])
        group["scores"].append(doc["score"])
    logged_by: dict[tuple[str, str], dict] = {}
    log = db.client[endpoint_database_of(db.name)][PREDICTION_LOG]  # written by the endpoint, beside the namespace
    for doc in log.find(
            {"as_of": as_of, "project": spec.name, "entity": {"$exists": True}}, {"_id": 0, "entity": 1, "role": 1, "model": 1, "score": 1},
            max_time_ms=max_time_ms).limit(MAX_LOGGED):
        key = (doc.get("role", CHAMPION), (doc.get("model") or {}).get("version"))
        group = logged_by.setdefault(key, {"entities": [], "scores": []})
        group["entities"].append(doc["entity"])
        group["scores"].append(doc["score"])

    groups, paired = [], {}
    judge = judge_of(spec.task_type)
    for role, found in sorted(batch.items()):
        y, known = _label_array(spec, labels, found["entities"], partition)
        scores = np.asarray(found["scores"], dtype=np.float64)
        paired[role] = dict(zip((e for e, k in zip(found["entities"], known) if k), scores[known]))
        groups.append(Group("batch", role, found["version"],
                            judge.realised(y[known], scores[known], confidence=confidence)))
    for (role, version), found in sorted(logged_by.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        y, known = _label_array(spec, labels, found["entities"], partition)
        groups.append(Group("logged", role, str(version), judge.realised(
            y[known], np.asarray(found["scores"], dtype=np.float64)[known], confidence=confidence)))

    comparison = None
    gate_metric = spec.project.model.gate.metric
    if CHAMPION in paired and CHALLENGER in paired:
        common = [e for e in paired[CHAMPION] if e in paired[CHALLENGER]]
        y, _ = _label_array(spec, labels, common, partition)
        comparison = judge.compare(gate_metric, y, np.array([paired[CHAMPION][e] for e in common]),
                             np.array([paired[CHALLENGER][e] for e in common]), confidence=confidence)

    # The day's answers: entity predictions made from T's features, and row predictions made during day T.
    day_start = as_of - dt.timedelta(days=1)
    answered = list(log.find(
        {"project": spec.name, "answered": {"$ne": False},
         "$or": [{"as_of": as_of}, {"as_of": {"$exists": False}, "time": {"$gte": day_start, "$lt": as_of}}]},
        {"_id": 0, "time": 1, "role": 1, "model": 1}, max_time_ms=max_time_ms).limit(MAX_LOGGED))
    return PerformanceDay(
        partition=partition, labelled=sum(v is not None for v in labels.values()), groups=groups,
        comparison=comparison, compared_on=judge.compared_on[gate_metric], hit_rate=hit_rate(answered, timeline),
        models={role: found["version"] for role, found in batch.items()},
    )
