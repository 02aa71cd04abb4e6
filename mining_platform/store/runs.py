"""`pipeline_runs`: the audit record of every partition run (feature sets and samples).

ENQUEUED -> RUNNING -> SUCCEEDED | FAILED. An unfinished record holds a short lease
(`store.leases`), so a record whose lease ran out (or whose Dagster run has finished)
belongs to a process that died; the next run of the pipeline marks it FAILED. A
SIGKILLed run is therefore reclaimed about a minute after it died, whatever its
maxTimeMS.

A partition has at most one live run: an unfinished record carries `live: true`, and a
unique partial index on (pipeline, as_of) over live records refuses a second one
(`PartitionBusy`) until the first finishes or is reclaimed.
"""

import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from mining_platform.spec.names import PIPELINE_RUNS

log = logging.getLogger(__name__)

RUNS = PIPELINE_RUNS
ENQUEUED, RUNNING, SUCCEEDED, FAILED = "ENQUEUED", "RUNNING", "SUCCEEDED", "FAILED"
UNFINISHED = (ENQUEUED, RUNNING)


class Refused(RuntimeError):
    """The pipeline may not run at all (e.g. a definition version conflict); its runs fail before writing."""


class PartitionBusy(RuntimeError):
    """Another live run is building the partition; this one is refused before writing anything."""


class Pipeline(Protocol):
    """What an audited pipeline is: a feature definition, or a project's samples."""

    name: str
    version: int
    content_hash: str
    target: str

    def trigger_parameters(self) -> dict: ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ensure_run_indexes(db: Database) -> None:
    runs = db[RUNS]
    runs.create_index([("pipeline.name", ASCENDING), ("trigger.as_of", ASCENDING), ("status", ASCENDING)],
                      name="pipeline_as_of_status")
    runs.create_index([("status", ASCENDING), ("pipeline.name", ASCENDING)], name="status_pipeline")
    runs.create_index([("pipeline.name", ASCENDING), ("trigger.as_of", ASCENDING)], name="one_live_run_per_partition",
                      unique=True, partialFilterExpression={"live": True})
    runs.create_index([("pipeline.name", ASCENDING), ("superseded_at", ASCENDING)], name="pipeline_superseded_at",
                      partialFilterExpression={"superseded_at": {"$exists": True}})


def enqueue(
    db: Database,
    pipeline: Pipeline,
    *,
    project: str,
    partition: str,
    as_of: dt.datetime,
    window_start: dt.datetime,
    dagster_run_id: str | None,
    lease: dt.timedelta,
) -> str:
    """Create the ENQUEUED record of one partition's execution; returns its run id.

    Raises PartitionBusy when another run of the partition is live (enqueued or running).
    """
    run_id = str(ObjectId())
    now = utc_now()
    try:
        _insert_live(db, run_id, pipeline, project=project, partition=partition, as_of=as_of,
                     window_start=window_start, dagster_run_id=dagster_run_id, lease=lease, now=now)
    except DuplicateKeyError:
        other = db[RUNS].find_one({"pipeline.name": pipeline.name, "trigger.as_of": as_of, "live": True},
                                  {"status": 1, "dagster_run_id": 1, "lease_expires_at": 1})
        if other is None:  # it finished in between: try once more
            return enqueue(db, pipeline, project=project, partition=partition, as_of=as_of,
                           window_start=window_start, dagster_run_id=dagster_run_id, lease=lease)
        raise PartitionBusy(
            f"{pipeline.name} {partition} is being built by run {other['_id']} ({other['status']}"
            + (f", Dagster run {other['dagster_run_id']}" if other.get("dagster_run_id") else "")
            + f", lease until {other['lease_expires_at']:%Y-%m-%d %H:%M:%S} UTC); not started twice. If that process "
            "died, it is reclaimed once its lease runs out (about a minute)") from None
    return run_id


def _insert_live(db: Database, run_id: str, pipeline: Pipeline, *, project: str, partition: str, as_of: dt.datetime,
                 window_start: dt.datetime, dagster_run_id: str | None, lease: dt.timedelta, now: dt.datetime) -> None:
    db[RUNS].insert_one({
        "_id": run_id,
        "live": True,
        "project": project,
        "pipeline": {"name": pipeline.name, "version": pipeline.version, "hash": pipeline.content_hash},
        "target_collection": pipeline.target,
        "status": ENQUEUED,
        "status_history": [{"status": ENQUEUED, "at": now}],
        "trigger": {
            "partition": partition,
            "as_of": as_of,
            "window_start": window_start,
            "parameters": pipeline.trigger_parameters(),
        },
        "dagster_run_id": dagster_run_id,
        "lease_expires_at": now + lease,
        "execution_stats": {
            "start_time": None, "end_time": None, "duration_seconds": None,
            "documents_written": None, "bytes_returned": None, "error_message": None,
        },
        "created_at": now,
    })


def succeeded_update(*, documents_written: int, bytes_returned: int, started: dt.datetime) -> dict:
    """The update that completes a RUNNING record; applied inside the commit transaction."""
    now = utc_now()
    return {
        "$unset": {"live": ""},
        "$set": {
            "status": SUCCEEDED,
            "lease_expires_at": None,
            "execution_stats.end_time": now,
            "execution_stats.duration_seconds": round((now - started).total_seconds(), 3),
            "execution_stats.documents_written": documents_written,
            "execution_stats.bytes_returned": bytes_returned,
        },
        "$push": {"status_history": {"status": SUCCEEDED, "at": now}},
    }


def fail(db: Database, run_id: str, *, error_message: str, documents_written: int | None = None) -> bool:
    """Mark an unfinished run FAILED; False if it had already finished."""
    now = utc_now()
    record = db[RUNS].find_one({"_id": run_id}, {"execution_stats.start_time": 1})
    started = (record or {}).get("execution_stats", {}).get("start_time")
    result = db[RUNS].update_one(
        {"_id": run_id, "status": {"$in": list(UNFINISHED)}},
        {"$unset": {"live": ""},
         "$set": {
            "status": FAILED,
            "lease_expires_at": None,
            "execution_stats.end_time": now,
            "execution_stats.duration_seconds": round((now - started).total_seconds(), 3) if started else None,
            "execution_stats.documents_written": documents_written,
            "execution_stats.error_message": error_message,
        },
         "$push": {"status_history": {"status": FAILED, "at": now}}},
    )
    return bool(result.modified_count)


def reconcile_abandoned(
    db: Database,
    pipeline_name: str,
    *,
    dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None,
) -> list[dict]:
    """Mark FAILED every unfinished run of the pipeline whose process is gone; returns them.

    Gone means its lease ran out, or Dagster knows its run and says it has finished
    (`dagster_run_finished` returns None when it does not know the run).
    """
    now = utc_now()
    abandoned = []
    for record in db[RUNS].find({"pipeline.name": pipeline_name, "status": {"$in": list(UNFINISHED)}}):
        lease = record.get("lease_expires_at")
        expired = lease is not None and lease < now
        finished = bool(record.get("dagster_run_id")) and dagster_run_finished(record["dagster_run_id"]) is True
        if not (expired or finished):
            continue
        why = "its lease expired" if expired else f"its Dagster run {record['dagster_run_id']} has finished"
        message = f"abandoned: the run stopped without finishing ({why}); marked FAILED by a later run"
        if fail(db, record["_id"], error_message=message):
            abandoned.append(record)
    return abandoned


def terminal_runs(db: Database, pipeline_name: str, as_of: dt.datetime) -> list[dict]:
    """Runs of one partition that can no longer write (id and when a newer publication superseded them):
    their documents are garbage unless committed, or superseded less than the grace period ago."""
    return list(db[RUNS].find(
        {"pipeline.name": pipeline_name, "trigger.as_of": as_of, "status": {"$in": [SUCCEEDED, FAILED]},
         "swept_at": {"$exists": False}},
        {"superseded_at": 1},
    ))


def superseded_before(db: Database, pipeline_name: str, cutoff: dt.datetime) -> list[dict]:
    """Publications of the pipeline superseded before `cutoff` whose documents are still there."""
    return list(db[RUNS].find(
        {"pipeline.name": pipeline_name, "superseded_at": {"$lt": cutoff}, "swept_at": {"$exists": False}},
        {"trigger.as_of": 1},
    ))


def mark_swept(db: Database, run_ids: list[str]) -> None:
    if run_ids:
        db[RUNS].update_many({"_id": {"$in": run_ids}}, {"$set": {"swept_at": utc_now()}})
