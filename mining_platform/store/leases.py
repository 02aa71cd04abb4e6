"""The leases of unfinished `pipeline_runs` records: a run starts with one (`LEASE`, a minute), renews it before
each phase, and a heartbeat thread of the running process renews every unfinished one every quarter lease. A
record whose lease ran out belongs to a process that died (`runs.reconcile_abandoned`)."""

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterator

from pymongo.database import Database
from pymongo.errors import PyMongoError

from mining_platform.store.runs import ENQUEUED, RUNNING, RUNS, UNFINISHED, utc_now

LEASE = dt.timedelta(seconds=60)
log = logging.getLogger(__name__)


def start(db: Database, run_id: str, *, lease: dt.timedelta) -> None:
    now = utc_now()
    result = db[RUNS].update_one(
        {"_id": run_id, "status": ENQUEUED},
        {"$set": {"status": RUNNING, "execution_stats.start_time": now, "lease_expires_at": now + lease},
         "$push": {"status_history": {"status": RUNNING, "at": now}}},
    )
    if not result.modified_count:
        raise RuntimeError(f"pipeline run {run_id} is no longer ENQUEUED; another process changed it")


def renew_lease(db: Database, run_id: str, *, lease: dt.timedelta) -> None:
    """Extend a RUNNING record's lease before a phase; fails if the run was already declared dead."""
    result = db[RUNS].update_one({"_id": run_id, "status": RUNNING}, {"$set": {"lease_expires_at": utc_now() + lease}})
    if not result.matched_count:
        raise RuntimeError(f"pipeline run {run_id} is no longer RUNNING (marked FAILED as abandoned?)")


def renew_leases(db: Database, run_ids: list[str], *, lease: dt.timedelta) -> None:
    """Extend the leases of this process's unfinished records."""
    db[RUNS].update_many(
        {"_id": {"$in": run_ids}, "status": {"$in": list(UNFINISHED)}}, {"$set": {"lease_expires_at": utc_now() + lease}}
    )


@contextlib.contextmanager
def heartbeat(db: Database, run_ids: list[str], *, lease: dt.timedelta = LEASE) -> Iterator[None]:
    """While the block runs, renew the leases of `run_ids` (those still unfinished) every quarter lease.

    A beat that fails (MongoDB briefly away) is retried at the next one; the lease has three
    beats of slack. A process that dies stops beating, and its runs are reclaimed a lease later.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease.total_seconds() / 4):
            try:
                renew_leases(db, run_ids, lease=lease)
            except PyMongoError as exc:
                log.warning(f"could not renew the leases of {len(run_ids)} pipeline runs: {exc}")

    thread = threading.Thread(target=beat, name="pipeline-run-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
