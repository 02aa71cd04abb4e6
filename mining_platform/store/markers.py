"""Commit markers: a partition is published by pointing its marker at one run's documents.

A run writes its documents into the target collection tagged with its own `run_id`,
next to the documents of the partition's current publication (the unique key is
(as_of, run_id, entity)). Only then does one transaction mark the run SUCCEEDED and
point the partition's marker at it. Readers go through the marker, so they see the
previous publication until that commit and the new one after it, never a mix; a
run that dies halfway leaves documents nobody reads, which `sweep` deletes once the
run is known to have finished.

The publication a commit supersedes is not deleted at once: a reader that read the
old marker just before the commit may still be reading its documents (a sample build
joining features, a training read, the endpoint). It is kept for `GRACE` (an hour,
longer than any read is allowed to take) after it was superseded, then swept.

Feature partitions have their markers in `feature_partitions`, sample partitions in
`sample_partitions`; the documents are the same shape in both.
"""

import datetime as dt

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database

from mining_platform.spec.clock import as_utc
from mining_platform.spec.committed import committed_rows, marker_id
from mining_platform.spec.names import FEATURE_MARKERS
from mining_platform.store.runs import RUNNING, RUNS, Pipeline, mark_swept, superseded_before, terminal_runs

# How long a superseded publication stays readable: longer than any reader's read (aggregations are
# bounded by maxTimeMS, five minutes by default; the endpoint's reads by seconds).
GRACE = dt.timedelta(hours=1)


def ensure_marker_index(db: Database, markers: str) -> None:
    db[markers].create_index([("name", ASCENDING), ("as_of", DESCENDING)], name="name_1_as_of_-1")


def ensure_partition_index(db: Database, collection: str, *, entity: str, extra: tuple[str, ...] = ()) -> None:
    """The unique (as_of, run_id, entity[, extra…]) key a run's `$merge` writes on; with equality on as_of and
    run_id it also serves every reader. `extra`: more key fields, for collections with several documents per
    entity (tiles)."""
    db[collection].create_index(
        [("as_of", ASCENDING), ("run_id", ASCENDING), (entity, ASCENDING), *((f, ASCENDING) for f in extra)],
        unique=True,
        name="_".join(f"{f}_1" for f in ("as_of", "run_id", entity, *extra)),
    )


def merge_stage(collection: str, *, entity: str, database: str | None = None, extra: tuple[str, ...] = ()) -> dict:
    """The write every partition run ends with. whenMatched "fail": a pipeline that emits one
    entity twice is a bug, not a value to overwrite. `database` names the platform database
    when the aggregation runs on a source in another one; `extra` as for `ensure_partition_index`."""
    return {"$merge": {
        "into": collection if database is None else {"db": database, "coll": collection},
        "on": ["as_of", "run_id", entity, *extra],
        "whenMatched": "fail",
        "whenNotMatched": "insert",
    }}


def commit(
    db: Database,
    pipeline: Pipeline,
    *,
    partition: str,
    as_of: dt.datetime,
    run_id: str,
    succeeded_update: dict,
    documents: int,
    markers: str = FEATURE_MARKERS,
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
            {"_id": marker_id(pipeline.name, as_of)},
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
        if previous and previous["run_id"] != run_id:
            db[RUNS].update_one({"_id": previous["run_id"]},
                                {"$set": {"superseded_at": dt.datetime.now(dt.timezone.utc)}}, session=session)
        return previous["run_id"] if previous else None

    with db.client.start_session() as session:
        return session.with_transaction(publish)


def committed_partition(db: Database, name: str, as_of: dt.datetime, *, markers: str = FEATURE_MARKERS) -> dict | None:
    """The marker of a committed partition (run_id, version, documents, ...), or None."""
    return db[markers].find_one({"_id": marker_id(name, as_of)})


def read_committed(db: Database, pipeline: Pipeline, as_of: dt.datetime, *, markers: str = FEATURE_MARKERS) -> list[dict]:
    """The published documents of one partition; empty when it was never committed."""
    marker = committed_partition(db, pipeline.name, as_of, markers=markers)
    if marker is None:
        return []
    return list(db[pipeline.target].find(committed_rows(marker), {"_id": 0}))


def sweep(db: Database, pipeline: Pipeline, as_of: dt.datetime, *, markers: str = FEATURE_MARKERS) -> int:
    """Delete the partition's documents no reader can reach: those of finished runs that were never
    published, and of publications superseded more than `GRACE` ago."""
    # Finished runs first, the marker second: a run that commits in between is not in
    # the first list, so its documents are never taken for garbage.
    finished = terminal_runs(db, pipeline.name, as_of)
    marker = committed_partition(db, pipeline.name, as_of, markers=markers)
    cutoff = dt.datetime.now(dt.timezone.utc) - GRACE
    garbage = [
        run["_id"] for run in finished
        if (not marker or run["_id"] != marker["run_id"])
        and (run.get("superseded_at") is None or as_utc(run["superseded_at"]) < cutoff)
    ]
    if not garbage:
        return 0
    removed = db[pipeline.target].delete_many({"as_of": as_of, "run_id": {"$in": garbage}}).deleted_count
    mark_swept(db, garbage)
    return removed


def sweep_superseded(db: Database, pipeline: Pipeline) -> int:
    """Delete the documents of every publication of `pipeline` superseded more than `GRACE` ago (any partition)."""
    removed, swept = 0, []
    for run in superseded_before(db, pipeline.name, dt.datetime.now(dt.timezone.utc) - GRACE):
        removed += db[pipeline.target].delete_many({"as_of": run["trigger"]["as_of"], "run_id": run["_id"]}).deleted_count
        swept.append(run["_id"])
    mark_swept(db, swept)
    return removed
