"""`pipeline_runs`: the audit record of every partition run (feature sets and samples).

ENQUEUED -> RUNNING -> SUCCEEDED | FAILED. A RUNNING record holds a lease that the run
renews before each phase; every phase's database work is bounded by maxTimeMS, so a
record whose lease ran out (or whose Dagster run has finished) belongs to a process
that died, and the next run of the pipeline marks it FAILED.
"""

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.database import Database

from mining_platform.spec.names import PIPELINE_RUNS

RUNS = PIPELINE_RUNS
ENQUEUED, RUNNING, SUCCEEDED, FAILED = "ENQUEUED", "RUNNING", "SUCCEEDED", "FAILED"
UNFINISHED = (ENQUEUED, RUNNING)


class Refused(RuntimeError):
    """The pipeline may not run at all (e.g. a definition version conflict); its runs fail before writing."""


class Pipeline(Protocol):
    """What an audited pipeline is: a feature definition, or a project's samples."""

    name: str
    version: int
    content_hash: str
    target: str

    def trigger_parameters(self) -> dict: ...


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ensure_run_indexes(db: Database) -> None:
    runs = db[RUNS]
    runs.create_index([("pipeline.name", ASCENDING), ("trigger.as_of", ASCENDING), ("status", ASCENDING)],
                      name="pipeline_as_of_status")
    runs.create_index([("status", ASCENDING), ("pipeline.name", ASCENDING)], name="status_pipeline")


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
    """Create the ENQUEUED record of one partition's execution; returns its run id."""
    run_id = str(ObjectId())
    now = _now()
    db[RUNS].insert_one({
        "_id": run_id,
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
    return run_id


def start(db: Database, run_id: str, *, lease: dt.timedelta) -> None:
    now = _now()
    result = db[RUNS].update_one(
        {"_id": run_id, "status": ENQUEUED},
        {"$set": {"status": RUNNING, "execution_stats.start_time": now, "lease_expires_at": now + lease},
         "$push": {"status_history": {"status": RUNNING, "at": now}}},
    )
    if not result.modified_count:
        raise RuntimeError(f"pipeline run {run_id} is no longer ENQUEUED; another process changed it")


def renew_lease(db: Database, run_id: str, *, lease: dt.timedelta) -> None:
    """Extend a RUNNING record's lease before a phase; fails if the run was already declared dead."""
    result = db[RUNS].update_one({"_id": run_id, "status": RUNNING}, {"$set": {"lease_expires_at": _now() + lease}})
    if not result.matched_count:
        raise RuntimeError(f"pipeline run {run_id} is no longer RUNNING (marked FAILED as abandoned?)")


def renew_leases(db: Database, run_ids: list[str], *, lease: dt.timedelta) -> None:
    """Extend the leases of this process's unfinished records."""
    db[RUNS].update_many(
        {"_id": {"$in": run_ids}, "status": {"$in": list(UNFINISHED)}}, {"$set": {"lease_expires_at": _now() + lease}}
    )


def succeeded_update(*, documents_written: int, bytes_returned: int, started: dt.datetime) -> dict:
    """The update that completes a RUNNING record; applied inside the commit transaction."""
    now = _now()
    return {
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
    now = _now()
    record = db[RUNS].find_one({"_id": run_id}, {"execution_stats.start_time": 1})
    started = (record or {}).get("execution_stats", {}).get("start_time")
    result = db[RUNS].update_one(
        {"_id": run_id, "status": {"$in": list(UNFINISHED)}},
        {"$set": {
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
    now = _now()
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


def terminal_run_ids(db: Database, pipeline_name: str, as_of: dt.datetime) -> list[str]:
    """Runs of one partition that can no longer write: their documents are garbage unless committed."""
    return db[RUNS].distinct(
        "_id", {"pipeline.name": pipeline_name, "trigger.as_of": as_of, "status": {"$in": [SUCCEEDED, FAILED]}}
    )
