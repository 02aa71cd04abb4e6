"""Building sample partitions with the partition loop: refuse what cannot be labelled yet, join, count, publish."""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.database import Database

from mining_platform.samples.pipeline import (
    SamplesPipeline, SamplesRefused, feature_markers, immature_label_problem, label_counts, sample_stages,
)
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import SAMPLE_MARKERS
from mining_platform.store import markers
from mining_platform.store.loop import PartitionOutcome, run_partitions


@dataclass
class SampleOutcome(PartitionOutcome):
    positives: int = 0
    feature_runs: dict[str, dict] = field(default_factory=dict)  # feature set -> run id, version, hash joined

    @property
    def rows(self) -> int:
        return self.documents_written


class SampleJob:
    """A project's sample partitions for the partition loop."""

    markers = SAMPLE_MARKERS

    def __init__(self, spec: ProjectSpec, loaded_raw_days: set[str]):
        self.spec = spec
        self.pipeline = SamplesPipeline(spec)
        self.project = spec.name
        self.loaded_raw_days = loaded_raw_days

    def ensure_indexes(self, db: Database) -> None:
        markers.ensure_partition_index(db, self.pipeline.target, entity=self.spec.entity)
        markers.ensure_marker_index(db, self.markers)

    def new_outcome(self, partition: str, as_of: dt.datetime) -> SampleOutcome:
        return SampleOutcome(partition=partition, as_of=as_of)

    def refusal(self, db: Database, outcome: SampleOutcome) -> str | None:
        """An immature label window, or a feature set not committed at as_of."""
        problem = immature_label_problem(self.spec, partition=outcome.partition, as_of=outcome.as_of,
                                         loaded_days=self.loaded_raw_days)
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
        pass

    def aggregation(self, db: Database, outcome: SampleOutcome) -> tuple[str, list[dict]]:
        # The markers as they are now: a feature partition recommitted since the refusal check is read new.
        found = feature_markers(db, self.spec, partition=outcome.partition, as_of=outcome.as_of)
        outcome.feature_runs = {
            name: {"run_id": m["run_id"], "version": m["pipeline_version"], "hash": m["pipeline_hash"]}
            for name, m in found.items()
        }
        stages = sample_stages(self.spec, as_of=outcome.as_of, markers_at=found, run_id=outcome.run_id)
        return self.spec.definitions[0].target, stages

    def verify(self, db: Database, outcome: SampleOutcome, *, max_time_ms: int) -> None:
        outcome.documents_written, outcome.positives = label_counts(db, self.spec, as_of=outcome.as_of,
                                                                    run_id=outcome.run_id)

    def marker_fields(self, outcome: SampleOutcome) -> dict:
        label_start, label_end = self.spec.label_window(outcome.as_of)
        return {
            "features": outcome.feature_runs,
            "label": {"name": self.spec.label, "window_start": label_start, "window_end": label_end},
            "positives": outcome.positives,
        }

    def summary(self, outcome: SampleOutcome) -> str:
        return (f"samples {outcome.partition}: {outcome.rows} rows, {outcome.positives} positive "
                f"(run {outcome.run_id})")


def build_sample_partitions(
    *,
    db: Database,
    analytics: Database,
    spec: ProjectSpec,
    partitions: list[tuple[str, dt.datetime]],
    loaded_raw_days: set[str],
    dagster_run_id: str | None,
    max_time_ms: int,
    log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
    dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None,
) -> list[SampleOutcome]:
    """Build and publish each (partition key, as_of); a refused or failed partition does not stop the rest.

    `loaded_raw_days` are the raw event days (ISO dates) known to be complete; a partition
    whose label window reaches past them is refused before anything is written.
    """
    job = SampleJob(spec, loaded_raw_days)
    return run_partitions(job, db=db, analytics=analytics, partitions=partitions, dagster_run_id=dagster_run_id,
                          max_time_ms=max_time_ms, log=log, dagster_run_finished=dagster_run_finished).outcomes
