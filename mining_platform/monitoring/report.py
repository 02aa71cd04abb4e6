"""A day's drift report: the committed features of one partition (and the scores logged that day)
against the champion's reference."""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pymongo.database import Database

from mining_platform.monitoring.decision import drifted_features, needs_retrain
from mining_platform.monitoring.distributions import Comparison, compare
from mining_platform.registry.aliases import Champion
from mining_platform.registry.reference import ModelReference
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.committed import committed_rows
from mining_platform.spec.names import PREDICTION_LOG, endpoint_database_of
from mining_platform.spec.project import DriftConfig
from mining_platform.store import markers
from mining_platform.store.columns import NUMERIC_TYPES, Schema, find_arrow_all
from mining_platform.tasks import Task

# Fewer logged predictions than this in a day say nothing about the score distribution.
MIN_LOGGED_SCORES = 100
MAX_LOGGED_SCORES = 200_000


class DriftInputMissing(ValueError):
    """The day cannot be compared: a feature set is not committed, or the champion's features are gone."""


@dataclass(frozen=True)
class DriftReport:
    partition: str
    champion: Champion
    rows: int
    features: tuple[Comparison, ...]  # largest PSI first
    scores: Comparison | None
    scores_logged: int
    feature_runs: dict[str, str]  # feature set -> the pipeline run whose partition was read
    drift: DriftConfig

    @property
    def psi(self) -> dict[str, float]:
        return {c.name: round(c.psi, 4) for c in self.features}

    @property
    def drifted(self) -> dict[str, float]:
        return drifted_features(self.psi, self.drift)

    @property
    def retrain(self) -> bool:
        return needs_retrain(self.drifted, self.drift)


def read_day(db: Database, spec: ProjectSpec, features: list[str], *, partition: str,
             as_of: dt.datetime) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every entity's committed values of `features` at as_of, like a sample row: missing = NaN.

    An entity present in any feature set is a row (as in `<p>/samples`); the feature
    sets are outer-joined on the entity. Returns (column per feature, run id per set).
    """
    entity = spec.project.entity
    owner = spec.owner_of()
    gone = [name for name in features if name not in owner]
    if gone:
        raise DriftInputMissing(f"{', '.join(gone)}: used by the champion but produced by no current feature "
                                f"definition of {spec.project.name}; retrain on the current features")
    joined, runs = None, {}
    for definition in spec.definitions:
        wanted = [name for name in features if owner[name] is definition]
        if not wanted:
            continue
        marker = markers.committed_partition(db, definition.name, as_of)
        if marker is None:
            raise DriftInputMissing(f"{partition}: no committed partition of features/{definition.name}; "
                                    f"materialise {names.shown(spec.feature_path(definition.name))} for {partition}")
        runs[definition.name] = marker["run_id"]
        schema = Schema({entity: pa.string(), **{name: NUMERIC_TYPES[definition.features[name].type] for name in wanted}})
        table = find_arrow_all(db[definition.target], committed_rows(marker),
                               schema=schema, projection={entity: 1, **{name: 1 for name in wanted}})
        joined = table if joined is None else joined.join(table, keys=entity, join_type="full outer",
                                                           coalesce_keys=True)
    columns = {name: joined.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False) for name in features}
    return columns, runs


def logged_scores(db: Database, project: str, model: Champion, *, start: dt.datetime, end: dt.datetime,
                  task: Task) -> np.ndarray:
    """What the score drift compares (`Task.drift_values`) of the scores the endpoint answered with this version
    in [start, end); a score of another shape (logged while the project had another task) is left out."""
    cursor = db.client[endpoint_database_of(db.name)][PREDICTION_LOG].find(
        {"project": project, "model.name": model.name, "model.version": model.version,
         "time": {"$gte": start, "$lt": end}, "answered": {"$ne": False}},  # not its scores as a shadow challenger
        {"_id": 0, "score": 1},
    ).limit(MAX_LOGGED_SCORES)
    width = len(task.classes)  # a score per class, or one number
    scores = [doc["score"] for doc in cursor if (
        isinstance(doc.get("score"), list) and len(doc["score"]) == width if width
        else isinstance(doc.get("score"), (int, float)))]
    return task.drift_values(np.array(scores, dtype=np.float64).reshape(len(scores), width) if width
                             else np.array(scores, dtype=np.float64))


def evaluate_day(db: Database, spec: ProjectSpec, model: Champion, reference: ModelReference, *,
                 partition: str, as_of: dt.datetime) -> DriftReport:
    """Compare partition `partition` (features as of `as_of`) with the champion's reference."""
    features = list(reference.features)
    columns, runs = read_day(db, spec, features, partition=partition, as_of=as_of)
    rows = len(next(iter(columns.values()))) if columns else 0
    if not rows:
        raise DriftInputMissing(f"{partition}: the committed feature partitions hold no entity")
    comparisons = sorted((compare(name, reference.features[name], columns[name]) for name in features),
                         key=lambda c: -c.psi)
    scores = logged_scores(db, spec.project.name, model, start=as_of - dt.timedelta(days=1), end=as_of,
                           task=spec.task_type)
    return DriftReport(
        partition=partition, champion=model, rows=rows, features=tuple(comparisons),
        scores=compare("score", reference.scores, scores) if len(scores) >= MIN_LOGGED_SCORES else None,
        scores_logged=len(scores), feature_runs=runs, drift=spec.project.drift,
    )
