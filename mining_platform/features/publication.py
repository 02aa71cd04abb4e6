"""Writing a partition of `features_<name>` and publishing it with a commit marker.

A run `$merge`s its documents into `features_<name>` tagged with its own `run_id`,
next to the documents of the partition's current publication (the unique key is
(as_of, run_id, entity)). Only then does one transaction mark the run SUCCEEDED and
point the partition's marker in `feature_partitions` at it. Readers go through the
marker, so they see the previous publication until that commit and the new one
after it, never a mix; a run that dies halfway leaves documents nobody reads, which
`sweep` deletes once the run is known to have finished.
"""

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Protocol

from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.database import Database

from mining_platform.features.definition import FeatureDefinition
from mining_platform.features.runs import RUNNING, RUNS, Pipeline, fail, terminal_run_ids
from mining_platform.resilience import is_transient

# Commit markers of feature partitions; the sample builder keeps its own (`sample_partitions`).
PARTITIONS = "feature_partitions"


def ensure_target_indexes(db: Database, definition: FeatureDefinition, *, entity: str) -> None:
    # The $merge key; with equality on as_of and run_id it also serves every reader.
    db[definition.target].create_index(
        [("as_of", ASCENDING), ("run_id", ASCENDING), (entity, ASCENDING)],
        unique=True,
        name=f"as_of_1_run_id_1_{entity}_1",
    )
    ensure_marker_index(db, PARTITIONS)


def ensure_marker_index(db: Database, markers: str) -> None:
    db[markers].create_index([("name", ASCENDING), ("as_of", DESCENDING)], name="name_1_as_of_-1")


def write_stages(definition: FeatureDefinition, *, entity: str, as_of: dt.datetime, run_id: str) -> list[dict]:
    """The stages the platform appends: keep the declared features, tag them, `$merge` them."""
    return [
        {"$project": {
            "_id": 0,
            entity: "$_id",
            **{feature: 1 for feature in definition.features},
            "as_of": {"$literal": as_of},
            "run_id": {"$literal": run_id},
            "pipeline_version": {"$literal": definition.version},
        }},
        # whenMatched "fail": a pipeline that emits one entity twice is a bug, not a value to overwrite.
        {"$merge": {
            "into": definition.target,
            "on": ["as_of", "run_id", entity],
            "whenMatched": "fail",
            "whenNotMatched": "insert",
        }},
    ]


def _marker_id(name: str, as_of: dt.datetime) -> str:
    return f"{name}@{as_of.isoformat()}"


def commit(
    client: MongoClient,
    db: Database,
    pipeline: Pipeline,
    *,
    partition: str,
    as_of: dt.datetime,
    run_id: str,
    succeeded_update: dict,
    documents: int,
    markers: str = PARTITIONS,
    marker_fields: dict | None = None,
) -> str | None:
    """Atomically mark the run SUCCEEDED and publish its documents; returns the run it replaced.

    `marker_fields` adds pipeline-specific provenance to the marker (e.g. the feature runs a
    sample partition was built from).
    """

    def publish(session) -> str | None:
        marked = db[RUNS].update_one({"_id": run_id, "status": RUNNING}, succeeded_update, session=session)
        if not marked.modified_count:
            raise RuntimeError(f"pipeline run {run_id} is no longer RUNNING (marked FAILED as abandoned?); not published")
        previous = db[markers].find_one_and_update(
            {"_id": _marker_id(pipeline.name, as_of)},
            {"$set": {
                **(marker_fields or {}),
                "name": pipeline.name,
                "as_of": as_of,
                "partition": partition,
                "run_id": run_id,
                "pipeline_version": pipeline.version,
                "pipeline_hash": pipeline.content_hash,
                "documents": documents,
                "committed_at": dt.datetime.now(dt.timezone.utc),
            }},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
            session=session,
        )
        return previous["run_id"] if previous else None

    with client.start_session() as session:
        return session.with_transaction(publish)


def committed_partition(db: Database, name: str, as_of: dt.datetime, *, markers: str = PARTITIONS) -> dict | None:
    """The marker of a committed partition (run_id, version, documents, ...), or None."""
    return db[markers].find_one({"_id": _marker_id(name, as_of)})


def latest_committed_partition(db: Database, name: str, *, markers: str = PARTITIONS) -> dict | None:
    return db[markers].find_one({"name": name}, sort=[("as_of", DESCENDING)])


def read_committed(db: Database, definition: FeatureDefinition, as_of: dt.datetime) -> list[dict]:
    """The published documents of one partition; empty when it was never committed."""
    marker = committed_partition(db, definition.name, as_of)
    if marker is None:
        return []
    return list(db[definition.target].find({"as_of": as_of, "run_id": marker["run_id"]}, {"_id": 0}))


def sweep(db: Database, pipeline: Pipeline, as_of: dt.datetime, *, markers: str = PARTITIONS) -> int:
    """Delete the partition's documents that no reader can reach: those of finished, uncommitted runs."""
    # Finished runs first, the marker second: a run that commits in between is not in
    # the first list, so its documents are never taken for garbage.
    finished = terminal_run_ids(db, pipeline.name, as_of)
    marker = committed_partition(db, pipeline.name, as_of, markers=markers)
    garbage = [run_id for run_id in finished if not marker or run_id != marker["run_id"]]
    if not garbage:
        return 0
    return db[pipeline.target].delete_many({"as_of": as_of, "run_id": {"$in": garbage}}).deleted_count


class Attempt(Protocol):
    """What `attempt` records on a partition's outcome."""

    partition: str
    as_of: dt.datetime
    run_id: str
    documents_written: int
    duration_seconds: float
    error: str | None
    transient: bool


@contextlib.contextmanager
def attempt(
    db: Database, pipeline: Pipeline, outcome: Attempt, *, log: logging.Logger | logging.LoggerAdapter,
    markers: str = PARTITIONS,
) -> Iterator[None]:
    """The frame of one partition's run: a failure marks the run FAILED and is recorded on the
    outcome (with whether it was a passing outage) instead of raised (an interrupt is re-raised after that); either way the
    partition's unreachable documents are swept and the duration recorded."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.transient = is_transient(exc)
        fail(db, outcome.run_id, error_message=outcome.error, documents_written=outcome.documents_written)
        log.error(f"{pipeline.name} {outcome.partition}: FAILED, previous publication kept: {outcome.error}")
        if not isinstance(exc, Exception):
            raise  # interrupted: stop here, after recording it
    finally:
        outcome.duration_seconds = round(time.perf_counter() - started, 3)
        sweep(db, pipeline, outcome.as_of, markers=markers)
