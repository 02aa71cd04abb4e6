"""Building sample partitions with the partition loop: refuse what cannot be labelled yet, label, join, count, publish."""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.database import Database

from mining_platform.samples.pipeline import (
    SamplesPipeline,
    SamplesRefused,
    feature_markers,
    immature_label_problem,
    label_counts,
    label_stages,
    sample_stages,
)
from mining_platform.sources.observe import source_database, watermark
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.definition import OutputBoundExceeded
from mining_platform.spec.names import SAMPLE_MARKERS
from mining_platform.spec.stages import expansion_problems
from mining_platform.store import markers
from mining_platform.store.job import Aggregation, PartitionOutcome
from mining_platform.store.loop import run_partitions
from mining_platform.store.versions import register


class LabelViolation(RuntimeError):
    """A run's labels are not valid for the task (a binary label other than 0/1, a non-numeric value)."""


@dataclass
class SampleOutcome(PartitionOutcome):
    positives: int = 0  # binary: rows labelled 1
    label_mean: float | None = None
    entity_types: tuple[str, ...] = ()  # BSON types of the entity ids: training reads them as one column type
    feature_runs: dict[str, dict] = field(default_factory=dict)  # feature set -> run id, version, hash joined

    @property
    def rows(self) -> int:
        return self.documents_written


class SampleJob:
    """A project's sample partitions for the partition loop."""

    markers = SAMPLE_MARKERS

    def __init__(self, spec: ProjectSpec, sources: Database):
        self.spec = spec
        self.sources = sources  # the platform database: the default database of sources
        self.pipeline = SamplesPipeline(spec)
        self.project = spec.name
        self.scratch = (names.labels_collection(spec.name),)
        self._newest: tuple[dt.datetime | None] | None = None  # the label source's watermark, read once per build

    def newest_event(self) -> dt.datetime | None:
        if self._newest is None:
            self._newest = (watermark(self.sources, self.spec.label_source),)
        return self._newest[0]

    def ensure_indexes(self, db: Database) -> None:
        markers.ensure_partition_index(db, self.pipeline.target, entity=self.spec.entity)
        markers.ensure_partition_index(db, self.scratch[0], entity=self.spec.entity)
        markers.ensure_marker_index(db, self.markers)

    def new_outcome(self, partition: str, as_of: dt.datetime) -> SampleOutcome:
        return SampleOutcome(partition=partition, as_of=as_of)

    def refusal(self, db: Database, outcome: SampleOutcome) -> str | None:
        """An immature label window (judged from the source's watermark), or a feature set not committed at as_of."""
        problem = immature_label_problem(self.spec, partition=outcome.partition, as_of=outcome.as_of,
                                         newest=self.newest_event(), sources=self.sources)
        if problem:
            return problem
        try:
            feature_markers(db, self.spec, partition=outcome.partition, as_of=outcome.as_of)
        except SamplesRefused as exc:
            return str(exc)
        return None

    def window_start(self, as_of: dt.datetime) -> dt.datetime:
        return self.spec.label_window(as_of)[0]

    def prepare(self, db: Database, analytics: Database, outcomes: list[SampleOutcome]) -> None:
        """Register the label definition's version (a conflict refuses the whole run)."""
        register(db, self.spec.label_definition, project=self.project)

    def aggregations(self, db: Database, outcome: SampleOutcome) -> list[Aggregation]:
        # The markers as they are now: a feature partition recommitted since the refusal check is read new.
        found = feature_markers(db, self.spec, partition=outcome.partition, as_of=outcome.as_of)
        outcome.feature_runs = {
            name: {"run_id": m["run_id"], "version": m["pipeline_version"], "hash": m["pipeline_hash"]}
            for name, m in found.items()
        }
        source = self.spec.label_source
        label = label_stages(self.spec, as_of=outcome.as_of, run_id=outcome.run_id, namespace=db.name)
        problems = expansion_problems(label)
        if problems:
            raise OutputBoundExceeded(f"labels/{self.spec.label}.yaml at {outcome.partition}: " + "; ".join(problems))
        return [
            Aggregation(collection=source.collection, database=source_database(self.sources, source).name,
                        stages=label),
            Aggregation(collection=self.spec.definitions[0].target, primary=True,  # reads this run's label documents
                        stages=sample_stages(self.spec, as_of=outcome.as_of, markers_at=found, run_id=outcome.run_id)),
        ]

    def verify(self, db: Database, outcome: SampleOutcome, *, max_time_ms: int) -> None:
        labelled = db[self.scratch[0]].count_documents({"as_of": outcome.as_of, "run_id": outcome.run_id},
                                                      maxTimeMS=max_time_ms)
        over = self.spec.label_definition.bounds.exceeded(documents=labelled)
        if over:
            raise OutputBoundExceeded(f"labels/{self.spec.label}.yaml: {over}")
        counts = label_counts(db, self.spec, as_of=outcome.as_of, run_id=outcome.run_id, max_time_ms=max_time_ms)
        outcome.documents_written = counts.rows
        if counts.invalid:
            raise LabelViolation(
                f"{counts.invalid} of {counts.rows} rows have a {self.spec.label!r} label that is not "
                f"{self.spec.task_type.label_wanted} "
                f"(e.g. {counts.example!r}); fix labels/{self.spec.label}.yaml (its `value`, or `default`)")
        outcome.label_mean = counts.label_mean
        outcome.entity_types = counts.entity_types
        outcome.positives = int(counts.label_sum) if self.spec.task_type.label_summary == "positive_rate" else 0

    def marker_fields(self, outcome: SampleOutcome) -> dict:
        label_start, label_end = self.spec.label_window(outcome.as_of)
        label = self.spec.label_definition
        return {
            "features": outcome.feature_runs,
            "label": {"name": label.name, "version": label.version, "hash": label.content_hash,
                      "window_start": label_start, "window_end": label_end},
            "positives": outcome.positives,
            "label_mean": outcome.label_mean,
            "entity_types": list(outcome.entity_types),
        }

    def summary(self, outcome: SampleOutcome) -> str:
        labelled = (f"{outcome.positives} positive" if self.spec.task_type.label_summary == "positive_rate"
                    else f"mean label {outcome.label_mean if outcome.label_mean is not None else '-'}")
        return f"samples {outcome.partition}: {outcome.rows} rows, {labelled} (run {outcome.run_id})"


def build_sample_partitions(
    *,
    db: Database,
    analytics: Database,
    sources: Database,
    spec: ProjectSpec,
    partitions: list[tuple[str, dt.datetime]],
    dagster_run_id: str | None,
    max_time_ms: int,
    log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
    dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None,
) -> list[SampleOutcome]:
    """Build and publish each (partition key, as_of); a refused or failed partition does not stop the rest.

    A partition whose label window the label source's watermark has not passed yet is
    refused before anything is written (the watermark is read from the source, once).
    `db`/`analytics`: the project's namespace on the write/analytics connection; `sources`:
    the platform database (the default database of sources) on the analytics connection.
    """
    job = SampleJob(spec, sources)
    return run_partitions(job, db=db, analytics=analytics, partitions=partitions, dagster_run_id=dagster_run_id,
                          max_time_ms=max_time_ms, log=log, dagster_run_finished=dagster_run_finished).outcomes
