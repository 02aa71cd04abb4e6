"""How one endpoint replica follows the serving records and reports what it serves (`mining_platform.spec.replicas`).

Per project, two loops run next to the requests:

- **watch**: a change stream on `serving_desired`; every change asks the replica to sync
  (load what the records name). Where the server offers no change streams (a standalone
  mongod) or the stream breaks, it is reopened after one heartbeat interval: the poll
  below covers the gap.
- **beat**: every heartbeat interval, sync (the polling fallback) and write the replica's
  heartbeat document: what it serves per role and its latest failed load.

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
            await self.written[project][SERVING_REPLICAS].replace_one({"_id": self.replica}, document, upsert=True)
            self.beats += 1
        except PyMongoError as exc:
            self.last_error = f"{now.isoformat()}: heartbeat of {project}: {exc}"
            log.warning(f"{project}: cannot write this replica's heartbeat: {exc}")

    async def _rest(self) -> None:
        """One heartbeat interval, or less when the replica stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=self.interval)

    async def _sync(self, project: str) -> None:
        if await self.sync(project) and not self.stopping.is_set():
            await self.beat(project)

    async def _beat(self, project: str) -> None:
        with contextlib.suppress(PyMongoError):
            await self.written[project][SERVING_REPLICAS].create_index("at", expireAfterSeconds=EXPIRE_SECONDS)
        while not self.stopping.is_set():
            await self.sync(project)
            if self.stopping.is_set():
                return
            await self.beat(project)
            await self._rest()

    async def _watch(self, project: str) -> None:
        collection = self.namespaces[project][SERVING_DESIRED]
        while not self.stopping.is_set():
            try:
                async with await collection.watch(max_await_time_ms=1000) as stream:
                    self.watching[project] = True
                    await self._sync(project)  # whatever changed before the stream opened
                    while stream.alive and not self.stopping.is_set():
                        if await stream.try_next() is not None:
                            await self._sync(project)
            except PyMongoError as exc:
                if self.watching.get(project, True):
                    log.info(f"{project}: no change stream on {SERVING_DESIRED} ({exc}); polling every "
                             f"{self.interval:g} s")
                self.watching[project] = False
            await self._rest()
