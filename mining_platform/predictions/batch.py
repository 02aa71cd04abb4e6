"""Batch scoring of a day: every entity with committed features at as_of T, scored by the champion (and the
challenger), published as partition T of `predictions_<p>`.

The models are loaded as the endpoint loads them (`serving.served_model.load_version`:
gate, signature, smoke prediction), and each model's matrix is built from the feature
sets' committed documents at T the way the endpoint's online lookup builds it (columns
in signature order, an entity missing from a set gets missing values). A version
trained on other feature definitions than the ones committed at T is refused, as the
endpoint refuses it.

A run writes one document per (entity, role): `entity`, `as_of`, `run_id`, `role`,
`model {name, version}`, `score` (what the task scores: the probability of the label, the predicted value,
or a probability per class), tagged with the run's id and published through a
commit marker in `prediction_partitions`, audited in `pipeline_runs` as
`<p>/predictions`, like every other partition the platform writes.
"""

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
from pymongo.database import Database

from mining_platform.predictions.features import PredictionsRefused, committed_features, read_features
from mining_platform.serving.served_model import ServedModel
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.names import CHAMPION, PREDICTION_MARKERS
from mining_platform.store import markers
from mining_platform.store.job import ClientStep, PartitionOutcome
from mining_platform.store.loop import run_partitions

# Bump when what a prediction document holds, or how it is computed, changes: it is part of the hash.
PREDICTIONS_FORMAT = 1
WRITE_BATCH = 10_000


@dataclass(frozen=True)
class PredictionsPipeline:
    """A project's batch scoring as an audited pipeline: `<p>/predictions` into `predictions_<p>`."""

    spec: ProjectSpec
    models: dict[str, ServedModel]  # role -> the version scoring as it

    @property
    def name(self) -> str:
        return names.predictions_pipeline(self.spec.name)

    @property
    def version(self) -> int:
        return PREDICTIONS_FORMAT

    @property
    def target(self) -> str:
        return names.predictions_collection(self.spec.name)

    @property
    def content_hash(self) -> str:
        """What defines a prediction: the feature definitions it reads and the versions that score."""
        canonical = json.dumps({
            "format": PREDICTIONS_FORMAT,
            "entity": self.spec.entity,
            "features": {d.name: d.content_hash for d in self.spec.definitions},
            "models": {role: {"name": m.name, "version": m.version} for role, m in self.models.items()},
        }, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def trigger_parameters(self) -> dict:
        return {"models": {role: {"name": m.name, "version": m.version, "run_id": m.run_id}
                           for role, m in self.models.items()}}


@dataclass
class PredictionOutcome(PartitionOutcome):
    entities: int = 0
    mean_score: dict[str, float] = field(default_factory=dict)  # role -> mean score of the day
    feature_runs: dict[str, dict] = field(default_factory=dict)  # feature set -> run id, version, hash read
    read_seconds: float = 0.0
    score_seconds: float = 0.0
    write_seconds: float = 0.0


class PredictionJob:
    """A project's batch scoring of days, for the partition loop."""

    markers = PREDICTION_MARKERS
    scratch: tuple[str, ...] = ()

    def __init__(self, spec: ProjectSpec, models: dict[str, ServedModel]):
        if CHAMPION not in models:
            raise ValueError("batch scoring needs the champion")
        self.spec = spec
        self.models = models
        self.pipeline = PredictionsPipeline(spec, models)
        self.project = spec.name

    def ensure_indexes(self, db: Database) -> None:
        markers.ensure_partition_index(db, self.pipeline.target, entity=self.spec.entity, extra=("role",))
        markers.ensure_marker_index(db, self.markers)

    def new_outcome(self, partition: str, as_of: dt.datetime) -> PredictionOutcome:
        return PredictionOutcome(partition=partition, as_of=as_of)

    def refusal(self, db: Database, outcome: PredictionOutcome) -> str | None:
        try:
            committed_features(db, self.spec, self.models, partition=outcome.partition, as_of=outcome.as_of)
        except PredictionsRefused as exc:
            return str(exc)
        return None

    def window_start(self, as_of: dt.datetime) -> dt.datetime:
        return as_of - dt.timedelta(days=1)

    def prepare(self, db: Database, analytics: Database, outcomes: list[PredictionOutcome]) -> None:
        pass

    def aggregations(self, db: Database, outcome: PredictionOutcome) -> list[ClientStep]:
        return [ClientStep(lambda db, analytics, max_time_ms: self._score(db, outcome, max_time_ms),
                           description="read the day's committed features, score, write")]

    def _score(self, db: Database, outcome: PredictionOutcome, max_time_ms: int) -> None:
        # The markers as they are now (read on the primary: a day may have been committed a moment ago).
        found = committed_features(db, self.spec, self.models, partition=outcome.partition, as_of=outcome.as_of)
        outcome.feature_runs = {name: {"run_id": m["run_id"], "version": m["pipeline_version"],
                                       "hash": m["pipeline_hash"]} for name, m in found.items()}
        columns = list(dict.fromkeys(f for model in self.models.values() for f in model.features))
        clock = time.perf_counter()
        entities, X = read_features(db, self.spec, found, columns, max_time_ms=max_time_ms)
        outcome.read_seconds = round(time.perf_counter() - clock, 3)
        outcome.entities = len(entities)
        target = db[self.pipeline.target]
        for role, model in self.models.items():
            clock = time.perf_counter()
            matrix = np.ascontiguousarray(X[:, [columns.index(f) for f in model.features]])
            scores = model.predict(matrix) if len(entities) else np.empty((0, *model.task.score_shape))
            outcome.score_seconds += time.perf_counter() - clock
            outcome.mean_score[role] = model.task.mean_score(scores)
            clock = time.perf_counter()
            model_ref = {"name": model.name, "version": model.version}
            for start in range(0, len(entities), WRITE_BATCH):
                target.insert_many([
                    {self.spec.entity: e, "as_of": outcome.as_of, "run_id": outcome.run_id, "role": role,
                     "model": model_ref, "score": s}
                    for e, s in zip(entities[start:start + WRITE_BATCH], scores[start:start + WRITE_BATCH].tolist())
                ], ordered=False)
            outcome.write_seconds += time.perf_counter() - clock
        outcome.score_seconds = round(outcome.score_seconds, 3)
        outcome.write_seconds = round(outcome.write_seconds, 3)

    def verify(self, db: Database, outcome: PredictionOutcome, *, max_time_ms: int) -> None:
        written = db[self.pipeline.target].count_documents({"as_of": outcome.as_of, "run_id": outcome.run_id},
                                                           maxTimeMS=max_time_ms)
        expected = outcome.entities * len(self.models)
        if written != expected:
            raise RuntimeError(f"predictions {outcome.partition}: {written} documents written, {expected} expected")
        outcome.documents_written = written

    def marker_fields(self, outcome: PredictionOutcome) -> dict:
        return {
            "models": {role: {"name": m.name, "version": m.version, "run_id": m.run_id}
                       for role, m in self.models.items()},
            "features": outcome.feature_runs,
            "entities": outcome.entities,
        }

    def summary(self, outcome: PredictionOutcome) -> str:
        scored = ", ".join(f"{role} v{m.version} (mean {outcome.mean_score.get(role, 0.0):.4f})"
                           for role, m in self.models.items())
        return f"predictions {outcome.partition}: {outcome.entities} entities scored by {scored} (run {outcome.run_id})"


def score_partitions(*, db: Database, analytics: Database, spec: ProjectSpec, models: dict[str, ServedModel],
                     partitions: list[tuple[str, dt.datetime]], dagster_run_id: str | None, max_time_ms: int,
                     log=None, dagster_run_finished=lambda run_id: None) -> list[PredictionOutcome]:
    """Score and publish each (partition key, as_of); a refused or failed day does not stop the others."""
    kwargs = {"log": log} if log is not None else {}
    return run_partitions(PredictionJob(spec, models), db=db, analytics=analytics, partitions=partitions,
                          dagster_run_id=dagster_run_id, max_time_ms=max_time_ms,
                          dagster_run_finished=dagster_run_finished, **kwargs).outcomes


def committed_predictions(db: Database, spec: ProjectSpec, as_of: dt.datetime) -> dict | None:
    """The marker of a committed prediction partition, or None."""
    return markers.committed_partition(db, names.predictions_pipeline(spec.name), as_of, markers=PREDICTION_MARKERS)
