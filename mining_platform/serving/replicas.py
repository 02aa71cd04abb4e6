"""How one endpoint replica follows the serving records and reports what it serves (`mining_platform.spec.replicas`).

Per project, three loops run next to the requests:

- **watch**: a change stream on `serving_desired`; every change asks the replica to sync
  (load what the records name). Where the server offers no change streams (a standalone
  mongod) or the stream breaks, it is reopened after one heartbeat interval: the poll
  below covers the gap.
- **poll**: every heartbeat interval, sync (the polling fallback).
- **beat**: every heartbeat interval from the start, write the replica's heartbeat document
  (what it serves per role and its latest failed load) into the project's endpoint database.
  It never waits for a load, so a replica still loading its first version is visible.

Every MongoDB call of the loops is bounded (MONGO_SECONDS) and every sync (SYNC_SECONDS);
a failure is logged and shown as `replica.last_error` in the admin `/health`.
A sync that changes something writes a heartbeat at once, so a deployer waiting for every
replica sees the swap within a round trip, not an interval. MongoDB being down never
touches the requests: the replica keeps serving what it has and tries again.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from mining_platform.spec.names import SERVING_DESIRED, SERVING_REPLICAS
from mining_platform.spec.replicas import EXPIRE_SECONDS, LoadError, Served, heartbeat_document

log = logging.getLogger("mining_platform.serving")
STOP_SECONDS = 3.0  # how long stopping waits for a heartbeat in flight, then for the heartbeats' removal
MONGO_SECONDS = 10.0  # the longest any one MongoDB call of the loops may take (the client's own timeout is shorter)
SYNC_SECONDS = 300.0  # the longest a sync (reading the records, downloading and checking a version) may take


def replica_id() -> str:
    """MINING_ENDPOINT_REPLICA, else `<host>:<pid>` (on Kubernetes the host is the pod's name)."""
    return os.environ.get("MINING_ENDPOINT_REPLICA") or f"{socket.gethostname()}:{os.getpid()}"


class Follower:
    """The watch and beat loops of one replica over every project it serves.

    `sync(project)` loads what the records name, never raises, and says whether it changed what the replica
    serves; `report(project)` says what the replica serves and its latest failed loads, for the heartbeat.
    """

    def __init__(self, namespaces: dict[str, AsyncDatabase], written: dict[str, AsyncDatabase], *,
                 interval_seconds: float,
                 sync: Callable[[str], Awaitable[bool]],
                 report: Callable[[str], tuple[dict[str, Served], dict[str, LoadError]]]):
        self.namespaces = namespaces  # per project, where its serving records are read
        self.written = written  # per project, the endpoint database its heartbeats are written to
        self.interval = interval_seconds
        self.sync = sync
        self.report = report
        self.replica = replica_id()
        self.host = socket.gethostname()
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.tasks: list[asyncio.Task] = []
        self.stopping = asyncio.Event()
        self.watching: dict[str, bool] = {}  # project -> whether its change stream is open
        self.beats = 0
        self.last_error: str | None = None

    def start(self) -> None:
        for project in self.namespaces:
            self.tasks.append(asyncio.create_task(self._beat(project), name=f"beat-{project}"))
            self.tasks.append(asyncio.create_task(self._poll(project), name=f"poll-{project}"))
            self.tasks.append(asyncio.create_task(self._watch(project), name=f"watch-{project}"))

    async def stop(self) -> None:
        # The loops finish the write they are in: a heartbeat cancelled on the wire can still reach the server
        # after the removal below and bring the replica back for EXPIRE_SECONDS. A loop stuck in a load is cancelled
        # after STOP_SECONDS.
        self.stopping.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=STOP_SECONDS)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A replica that stops is gone at once, not after its heartbeats age; with MongoDB down, stopping waits
        # STOP_SECONDS at most (the heartbeats then age out).
        removals = [db[SERVING_REPLICAS].delete_one({"_id": self.replica}) for db in self.written.values()]
        with contextlib.suppress(PyMongoError, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*removals, return_exceptions=True), timeout=STOP_SECONDS)

    def describe(self) -> dict:
        return {"replica": self.replica, "interval_seconds": self.interval, "watching": dict(self.watching),
                "heartbeats": self.beats, "last_error": self.last_error}

    async def desired(self, project: str, role: str) -> dict | None:
        """The serving record of `role`, or None when there is none; PyMongoError when MongoDB cannot say."""
        return await self.namespaces[project][SERVING_DESIRED].find_one({"_id": role})

    async def beat(self, project: str) -> None:
        served, errors = self.report(project)
        now = dt.datetime.now(dt.timezone.utc)
        document = heartbeat_document(self.replica, host=self.host, pid=os.getpid(), started_at=self.started_at,
                                      now=now, interval_seconds=self.interval, served=served, errors=errors)
        try:
            await asyncio.wait_for(
                self.written[project][SERVING_REPLICAS].replace_one({"_id": self.replica}, document, upsert=True),
                timeout=MONGO_SECONDS)
            self.beats += 1
        except (PyMongoError, TimeoutError) as exc:
            self._failed(f"heartbeat of {project}", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        text = str(exc) or f"no answer within {MONGO_SECONDS:g} s"
        self.last_error = f"{dt.datetime.now(dt.timezone.utc).isoformat()}: {what}: {type(exc).__name__}: {text}"
        log.warning(f"{what}: {type(exc).__name__}: {text}")

    async def _rest(self) -> None:
        """One heartbeat interval, or less when the replica stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=self.interval)

    async def _sync(self, project: str) -> None:
        """Load what the records name (bounded: a load stuck on MLflow or MongoDB is abandoned after SYNC_SECONDS,
        shown in /health, and tried again); a change is reported at once."""
        try:
            changed = await asyncio.wait_for(self.sync(project), timeout=SYNC_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a loop that died here would never load or beat again
            self._failed(f"sync of {project} (loading what the serving records name)", exc)
            return
        if changed and not self.stopping.is_set():
            await self.beat(project)

    async def _beat(self, project: str) -> None:
        """The heartbeat alone, every interval from the start: never behind a load, so a replica that is still
        loading is seen (serving nothing yet) instead of missing."""
        try:
            await asyncio.wait_for(
                self.written[project][SERVING_REPLICAS].create_index("at", expireAfterSeconds=EXPIRE_SECONDS),
                timeout=MONGO_SECONDS)
        except (PyMongoError, TimeoutError) as exc:
            self._failed(f"TTL index of {project}'s {SERVING_REPLICAS}", exc)
        while not self.stopping.is_set():
            await self.beat(project)
            await self._rest()

    async def _poll(self, project: str) -> None:
        """The polling fallback of the change stream: sync every interval."""
        while not self.stopping.is_set():
            await self._sync(project)
            await self._rest()

    async def _watch(self, project: str) -> None:
        collection = self.namespaces[project][SERVING_DESIRED]
        while not self.stopping.is_set():
            try:
                async with await asyncio.wait_for(collection.watch(max_await_time_ms=1000),
                                                  timeout=MONGO_SECONDS) as stream:
                    self.watching[project] = True
                    await self._sync(project)  # whatever changed before the stream opened
                    while stream.alive and not self.stopping.is_set():
                        if await asyncio.wait_for(stream.try_next(), timeout=MONGO_SECONDS) is not None:
                            await self._sync(project)
            except (PyMongoError, TimeoutError) as exc:
                if self.watching.get(project, True):
                    log.info(f"{project}: no change stream on {SERVING_DESIRED} ({type(exc).__name__}: {exc}); "
                             f"polling every {self.interval:g} s")
                self.watching[project] = False
            await self._rest()
