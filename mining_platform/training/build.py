"""Building sample partitions: refuse what cannot be labelled yet, aggregate, audit, publish."""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mining_platform.features import publication, runs
from mining_platform.features.execution import LEASE_GRACE
from mining_platform.resources import MongoResource
from mining_platform.resources.mongo_traffic import measure_reply_bytes
from mining_platform.training.samples import (
    SAMPLE_PARTITIONS,
    SampleSpec,
    SamplesRefused,
    ensure_sample_indexes,
    feature_markers,
    immature_label_problem,
    label_counts,
    sample_stages,
)


@dataclass
class SampleOutcome:
    partition: str
    as_of: dt.datetime
    run_id: str | None = None
    committed: bool = False
    rows: int = 0
    positives: int = 0
    duration_seconds: float = 0.0
    bytes_returned: int = 0
    feature_runs: dict[str, dict] = field(default_factory=dict)
    error: str | None = None
    transient: bool = False  # the error was a passing outage (see resilience)

    @property
    def documents_written(self) -> int:
        return self.rows


def build_sample_partitions(
    *,
    mongo: MongoResource,
    spec: SampleSpec,
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
    db = mongo.db()
    lease = dt.timedelta(milliseconds=max_time_ms) + LEASE_GRACE
    runs.ensure_run_indexes(db)
    ensure_sample_indexes(db, spec)
    for record in runs.reconcile_abandoned(db, spec.name, dagster_run_finished=dagster_run_finished):
        removed = publication.sweep(db, spec, record["trigger"]["as_of"], markers=SAMPLE_PARTITIONS)
        log.warning(f"sample run {record['_id']} ({record['trigger']['partition']}) was abandoned; "
                    f"marked FAILED, {removed} unpublished rows removed")

    outcomes = []
    for key, as_of in partitions:
        outcome = SampleOutcome(partition=key, as_of=as_of)
        outcomes.append(outcome)
        problem = immature_label_problem(spec, partition=key, as_of=as_of, loaded_days=loaded_raw_days)
        try:
            if problem:
                raise SamplesRefused(problem)
            markers = feature_markers(db, spec, partition=key, as_of=as_of)
        except SamplesRefused as exc:
            outcome.error = str(exc)
            log.error(f"samples {key}: refused, nothing written: {exc}")
            continue
        _build_partition(mongo, spec, outcome, markers, dagster_run_id=dagster_run_id,
                         max_time_ms=max_time_ms, lease=lease, log=log)
    return outcomes


def _build_partition(
    mongo: MongoResource,
    spec: SampleSpec,
    outcome: SampleOutcome,
    markers: dict[str, dict],
    *,
    dagster_run_id: str | None,
    max_time_ms: int,
    lease: dt.timedelta,
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    db = mongo.db()
    label_start, label_end = spec.label_window(outcome.as_of)
    outcome.feature_runs = {
        name: {"run_id": m["run_id"], "version": m["pipeline_version"], "hash": m["pipeline_hash"]}
        for name, m in markers.items()
    }
    outcome.run_id = runs.enqueue(
        db, spec, project=spec.project.name, partition=outcome.partition, as_of=outcome.as_of,
        window_start=label_start, dagster_run_id=dagster_run_id, lease=lease,
    )
    with publication.attempt(db, spec, outcome, log=log, markers=SAMPLE_PARTITIONS):
        runs.start(db, outcome.run_id, lease=lease)
        started = dt.datetime.now(dt.timezone.utc)
        stages = sample_stages(spec, as_of=outcome.as_of, markers=markers, run_id=outcome.run_id)
        with measure_reply_bytes() as replies:
            # The $merge runs server-side: the cursor comes back empty.
            list(mongo.analytics_db()[spec.definitions[0].target].aggregate(
                stages, allowDiskUse=True, maxTimeMS=max_time_ms,
                comment=f"mining-platform {spec.name} run {outcome.run_id}",
            ))
        outcome.bytes_returned = replies.total
        runs.renew_lease(db, outcome.run_id, lease=lease)
        outcome.rows, outcome.positives = label_counts(db, spec, as_of=outcome.as_of, run_id=outcome.run_id)
        publication.commit(
            mongo.client(), db, spec,
            partition=outcome.partition, as_of=outcome.as_of, run_id=outcome.run_id, documents=outcome.rows,
            succeeded_update=runs.succeeded_update(
                documents_written=outcome.rows, bytes_returned=outcome.bytes_returned, started=started
            ),
            markers=SAMPLE_PARTITIONS,
            marker_fields={
                "features": outcome.feature_runs,
                "label": {"name": spec.label, "window_start": label_start, "window_end": label_end},
                "positives": outcome.positives,
            },
        )
        outcome.committed = True
        log.info(f"samples {outcome.partition}: {outcome.rows} rows, {outcome.positives} positive "
                 f"(run {outcome.run_id})")
