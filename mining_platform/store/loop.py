"""The one partition run loop: feature sets and samples are both run, audited and published by it.

For the partitions of one execution, in order:

1. reconcile: runs of the pipeline whose process is gone are marked FAILED and their
   documents swept, and so are publications superseded longer than the grace period ago;
2. refuse what cannot be built yet (no run record, nothing written);
3. enqueue one `pipeline_runs` record per remaining partition (a partition another live
   run is building is refused), then `prepare` once (a `Refused` there fails every
   partition before anything is written);
4. per partition, while a heartbeat keeps this process's leases alive: start, run the
   job's aggregations (the last ends in the `$merge`) on the analytics connection,
   `verify` what it wrote, and commit the marker in one transaction with the run's SUCCEEDED.
   A job that can compute consecutive days in one pass (tiles) gets them as one group:
   every day's run starts, one pass writes all of them (each document tagged with its
   day's run), and each day is then verified and committed on its own.

A failing partition is recorded (FAILED, the reason, whether it was a passing outage)
and the loop goes on with the next; an interrupt stops it after recording. Either way
no record stays unfinished and unreachable documents are swept.
"""

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator

from pymongo.database import Database

from mining_platform.store import leases, markers, runs
from mining_platform.store.job import Aggregation, ClientStep, Log, LoopResult, PartitionJob, PartitionOutcome
from mining_platform.store.runs import Refused
from mining_platform.store.traffic import measure_reply_bytes
from mining_platform.transient import is_transient


def run_partitions(
    job: PartitionJob,
    *,
    db: Database,
    analytics: Database,
    partitions: list[tuple[str, dt.datetime]],
    dagster_run_id: str | None,
    max_time_ms: int,
    log: Log = logging.getLogger(__name__),
    dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None,
) -> LoopResult:
    """Run and publish each (partition key, as_of); raises only on `Refused` or an interrupt."""
    pipeline = job.pipeline
    lease = leases.LEASE
    runs.ensure_run_indexes(db)
    job.ensure_indexes(db)
    result = LoopResult(outcomes=[job.new_outcome(key, as_of) for key, as_of in partitions])
    for record in runs.reconcile_abandoned(db, pipeline.name, dagster_run_finished=dagster_run_finished):
        result.abandoned_runs.append(record["_id"])
        removed = markers.sweep(db, pipeline, record["trigger"]["as_of"], markers=job.markers)
        _drop_scratch(db, job, record["_id"])
        log.warning(f"{pipeline.name}: run {record['_id']} ({record['trigger']['partition']}) was abandoned; "
                    f"marked FAILED, {removed} unpublished documents removed")
    markers.sweep_superseded(db, pipeline)

    accepted = []
    for outcome in result.outcomes:
        outcome.error = job.refusal(db, outcome)
        if outcome.error:
            log.error(f"{pipeline.name} {outcome.partition}: refused, nothing written: {outcome.error}")
            continue
        try:
            outcome.run_id = runs.enqueue(
                db, pipeline, project=job.project, partition=outcome.partition, as_of=outcome.as_of,
                window_start=job.window_start(outcome.as_of), dagster_run_id=dagster_run_id, lease=lease)
        except runs.PartitionBusy as exc:
            outcome.error = str(exc)
            log.error(f"{pipeline.name} {outcome.partition}: refused, nothing written: {outcome.error}")
            continue
        accepted.append(outcome)
    try:
        # The partitions still queued, and the one running, wait on this process: the heartbeat keeps their
        # leases alive while it lives.
        with leases.heartbeat(db, [o.run_id for o in accepted], lease=lease):
            if accepted:
                job.prepare(db, analytics, accepted)
            for group in _ranges(job, accepted):
                if len(group) == 1:
                    _run_partition(job, group[0], db=db, analytics=analytics, max_time_ms=max_time_ms, lease=lease,
                                   log=log)
                else:
                    _run_range(job, group, db=db, analytics=analytics, max_time_ms=max_time_ms, lease=lease, log=log)
    except Refused as exc:
        for outcome in accepted:
            outcome.error = f"refused before writing: {exc}"
            runs.fail(db, outcome.run_id, error_message=outcome.error)
        raise
    finally:
        # Whatever stopped the loop (a refusal, an interrupt), no record stays unfinished.
        for outcome in accepted:
            if not outcome.committed and outcome.error is None:
                outcome.error = "not run: the execution stopped before this partition"
                runs.fail(db, outcome.run_id, error_message=outcome.error)
    return result


def _ranges(job: PartitionJob, outcomes: list[PartitionOutcome]) -> Iterator[list[PartitionOutcome]]:
    """The outcomes in runs of consecutive days, at most `job.range_days` long, for a job that computes a range of
    days in one pass (`range_aggregations`); one at a time for any other job."""
    most = getattr(job, "range_days", 1) if hasattr(job, "range_aggregations") else 1
    group: list[PartitionOutcome] = []
    for outcome in outcomes:
        if group and (len(group) == most or outcome.as_of - group[-1].as_of != dt.timedelta(days=1)):
            yield group
            group = []
        group.append(outcome)
    if group:
        yield group


def _aggregate(step: Aggregation | ClientStep, *, db: Database, analytics: Database, max_time_ms: int,
               comment: str) -> int:
    """Run one step; the bytes its replies took."""
    with measure_reply_bytes() as replies:
        if isinstance(step, ClientStep):
            step.run(db, analytics, max_time_ms)
        else:
            connection = db if step.primary else analytics
            database = connection if step.database in (None, connection.name) else connection.client[step.database]
            # The $merge runs server-side: the cursor comes back empty.
            list(database[step.collection].aggregate(step.stages, allowDiskUse=True, maxTimeMS=max_time_ms,
                                                     comment=comment))
    return replies.total


def _publish(job: PartitionJob, outcome: PartitionOutcome, *, db: Database, max_time_ms: int, lease: dt.timedelta,
             started: dt.datetime, log: Log) -> None:
    """Verify what the partition's run wrote and commit its marker with the run's SUCCEEDED, in one transaction."""
    job.verify(db, outcome, max_time_ms=max_time_ms)
    leases.renew_lease(db, outcome.run_id, lease=lease)
    outcome.replaced_run_id = markers.commit(
        db, job.pipeline, partition=outcome.partition, as_of=outcome.as_of, run_id=outcome.run_id,
        documents=outcome.documents_written, markers=job.markers, marker_fields=job.marker_fields(outcome),
        succeeded_update=runs.succeeded_update(
            documents_written=outcome.documents_written, bytes_returned=outcome.bytes_returned, started=started),
    )
    outcome.committed = True
    log.info(job.summary(outcome))


def _run_partition(job: PartitionJob, outcome: PartitionOutcome, *, db: Database, analytics: Database,
                   max_time_ms: int, lease: dt.timedelta, log: Log) -> None:
    pipeline = job.pipeline
    with _attempt(job, outcome, db=db, log=log):
        leases.start(db, outcome.run_id, lease=lease)
        started = dt.datetime.now(dt.timezone.utc)
        for step in job.aggregations(db, outcome):
            outcome.bytes_returned += _aggregate(
                step, db=db, analytics=analytics, max_time_ms=max_time_ms,
                comment=f"mining-platform {pipeline.name} v{pipeline.version} run {outcome.run_id}")
            leases.renew_lease(db, outcome.run_id, lease=lease)
        _publish(job, outcome, db=db, max_time_ms=max_time_ms, lease=lease, started=started, log=log)


def _run_range(job: PartitionJob, group: list[PartitionOutcome], *, db: Database, analytics: Database,
               max_time_ms: int, lease: dt.timedelta, log: Log) -> None:
    """Consecutive days in one pass over the source: every day's run is started, one set of aggregations writes
    the documents of all of them (each tagged with its own day's run id), then each day is verified and committed
    on its own, with its own marker and audit record. A failing pass fails every day of the group, publishing none;
    a day failing its own checks fails alone."""
    pipeline = job.pipeline
    began, error, replied = time.perf_counter(), None, 0
    try:
        for outcome in group:
            leases.start(db, outcome.run_id, lease=lease)
        started = dt.datetime.now(dt.timezone.utc)
        for step in job.range_aggregations(db, group):
            replied += _aggregate(step, db=db, analytics=analytics, max_time_ms=max_time_ms, comment=(
                f"mining-platform {pipeline.name} v{pipeline.version} runs {group[0].run_id} .. {group[-1].run_id} "
                f"({group[0].partition} .. {group[-1].partition})"))
            for outcome in group:
                leases.renew_lease(db, outcome.run_id, lease=lease)
        job.verify_range(db, group, max_time_ms=max_time_ms)
    except BaseException as exc:  # recorded on every day of the group below (an interrupt is re-raised there)
        error = exc
    shared = (time.perf_counter() - began) / len(group)
    for outcome in group:
        outcome.bytes_returned = replied // len(group)
        with _attempt(job, outcome, db=db, log=log):
            if error is not None:
                raise error
            _publish(job, outcome, db=db, max_time_ms=max_time_ms, lease=lease, started=started, log=log)
        outcome.duration_seconds = round(outcome.duration_seconds + shared, 3)


@contextlib.contextmanager
def _attempt(job: PartitionJob, outcome: PartitionOutcome, *, db: Database, log: Log) -> Iterator[None]:
    """The frame of one partition's run: a failure marks the run FAILED and is recorded on the
    outcome (with whether it was a passing outage) instead of raised (an interrupt is re-raised
    after that); either way the partition's unreachable documents are swept and the time recorded."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.transient = is_transient(exc)
        runs.fail(db, outcome.run_id, error_message=outcome.error, documents_written=outcome.documents_written)
        log.error(f"{job.pipeline.name} {outcome.partition}: FAILED, previous publication kept: {outcome.error}")
        if not isinstance(exc, Exception):
            raise  # interrupted: stop here, after recording it
    finally:
        outcome.duration_seconds = round(time.perf_counter() - started, 3)
        markers.sweep(db, job.pipeline, outcome.as_of, markers=job.markers)
        _drop_scratch(db, job, outcome.run_id)


def _drop_scratch(db: Database, job: PartitionJob, run_id: str | None) -> None:
    for collection in job.scratch:
        if run_id is not None:
            db[collection].delete_many({"run_id": run_id})
