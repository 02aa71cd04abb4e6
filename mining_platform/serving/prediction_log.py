"""The prediction log: a sample of requests written to each project's `prediction_log` (in the project's
namespace) in batches, off the request path.

A request only appends documents to a bounded in-memory buffer; a background task
flushes it with `insert_many` every `flush_seconds` or when a batch is full. When
MongoDB is slow or down the flush fails or lags, the buffer fills, and further
records are dropped and counted: requests never wait for the log and never fail
because of it. What was dropped, and why, is logged (at most every
`warn_every_seconds`) and reported by `GET /health`.
"""

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from mining_platform.serving.payload import EntitiesRequest, RowsRequest
from mining_platform.serving.served_model import ServedModel

log = logging.getLogger("mining_platform.serving.prediction_log")


@dataclass
class LogStats:
    written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    capped: int = 0  # rows of large requests left out by design (max_rows_per_request)

    def drop(self, reason: str, count: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class PredictionLog:
    def __init__(self, collections: Mapping[str, AsyncCollection], *, sample_rate: float, capacity: int = 20_000,
                 batch_size: int = 500, flush_seconds: float = 1.0, warn_every_seconds: float = 30.0,
                 retention_days: float = 30.0, max_rows_per_request: int = 100):
        self.collections = dict(collections)  # project -> its `prediction_log`, in its endpoint database
        self.sample_rate = sample_rate
        # Bounded in time (a TTL index on `time`) and per request: a client sending large batches cannot fill the
        # log, nor outweigh every other request in the drift report, realised performance and the hit rate.
        self.retention_days = retention_days
        self.max_rows_per_request = max_rows_per_request
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.warn_every_seconds = warn_every_seconds
        self.stats = LogStats()
        self._buffer: list[dict] = []
        self._in_flight = 0
        self._batch_full = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._warned_at = 0.0
        self._dropped_since_warning: dict[str, int] = {}

    def sampled(self) -> bool:
        """Whether to log this request (decided once per request)."""
        return self.sample_rate > 0.0 and (self.sample_rate >= 1.0 or random.random() < self.sample_rate)

    def record(self, documents: list[dict]) -> None:
        """Queue one request's records; drops (and counts) what does not fit. Never blocks."""
        room = self.capacity - len(self._buffer) - self._in_flight
        if room < len(documents):
            self._dropped("buffer full (MongoDB slow or down)", len(documents) - max(room, 0))
            documents = documents[:max(room, 0)]
        self._buffer.extend(documents)
        if len(self._buffer) >= self.batch_size:
            self._batch_full.set()

    def _dropped(self, reason: str, count: int) -> None:
        if count <= 0:
            return
        self.stats.drop(reason, count)
        self._dropped_since_warning[reason] = self._dropped_since_warning.get(reason, 0) + count
        now = time.monotonic()
        if now - self._warned_at >= self.warn_every_seconds:
            summary = "; ".join(f"{n} ({why})" for why, n in self._dropped_since_warning.items())
            log.warning(f"prediction log dropped records: {summary}; requests are unaffected")
            self._warned_at, self._dropped_since_warning = now, {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log")

    async def _run(self) -> None:
        for project, collection in self.collections.items():
            try:  # here, not in start: the endpoint must come up while MongoDB is down
                await collection.create_index([("project", ASCENDING), ("time", ASCENDING)], name="project_1_time_1")
                # Realised performance reads the entity predictions made from one feature day.
                await collection.create_index([("as_of", ASCENDING)], name="as_of_1", sparse=True)
                await self._retention(collection)
            except PyMongoError as exc:  # the log works without it; the next start tries again
                log.warning(f"prediction log of {project}: could not create its index: {exc}")
        while not self._stopping:
            try:
                await asyncio.wait_for(self._batch_full.wait(), timeout=self.flush_seconds)
            except TimeoutError:
                pass
            self._batch_full.clear()
            await self.flush()

    async def _retention(self, collection: AsyncCollection) -> None:
        """The TTL index that removes records older than `retention_days` (changed in place when the setting is)."""
        seconds = int(self.retention_days * 86400)
        try:
            await collection.create_index([("time", ASCENDING)], name="time_1", expireAfterSeconds=seconds)
        except OperationFailure as exc:
            if exc.code not in (85, 86):  # IndexOptionsConflict / IndexKeySpecsConflict: another retention before
                raise
            await collection.database.command("collMod", collection.name,
                                              index={"name": "time_1", "expireAfterSeconds": seconds})

    def cap(self, rows: int) -> list[int] | None:
        """The positions of a request's rows to log (a random `max_rows_per_request` of them), None for all."""
        if rows <= self.max_rows_per_request:
            return None
        self.stats.capped += rows - self.max_rows_per_request
        return sorted(random.sample(range(rows), self.max_rows_per_request))

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:self.batch_size], self._buffer[self.batch_size:]
            self._in_flight = len(batch)
            try:
                by_project: dict[str, list[dict]] = {}
                for document in batch:
                    by_project.setdefault(document["project"], []).append(document)
                failed = False
                for project, documents in by_project.items():
                    failed |= not await self._insert(self.collections[project], documents)
                if failed:
                    return  # try again at the next interval instead of hammering a failing server
            finally:
                self._in_flight = 0

    async def _insert(self, collection: AsyncCollection, documents: list[dict]) -> bool:
        try:
            result = await collection.insert_many(documents, ordered=False)
            self.stats.written += len(result.inserted_ids)
            return True
        except BulkWriteError as exc:  # some documents were written
            written = exc.details.get("nInserted", 0)
            self.stats.written += written
            self._failed(exc, len(documents) - written)
        except Exception as exc:  # noqa: BLE001 - down, timed out, or a document BSON cannot encode
            self._failed(exc, len(documents))
        return False

    def _failed(self, exc: Exception, count: int) -> None:
        self.stats.last_error = f"{dt.datetime.now(dt.timezone.utc).isoformat()}: {type(exc).__name__}: {exc}"
        self._dropped(f"insert failed: {type(exc).__name__}", count)

    async def stop(self, *, timeout: float = 5.0) -> None:
        """Flush what is buffered (within `timeout`), then stop the background task."""
        self._stopping = True
        self._batch_full.set()
        if self._task is not None and not self._buffer and not self._in_flight:
            self._task.cancel()  # nothing to write: do not wait on a server that may be down
        try:
            if self._task is not None:
                await asyncio.wait_for(self._task, timeout=timeout)  # its last round flushes
        except (TimeoutError, asyncio.CancelledError):
            pass
        if self._buffer:
            self._dropped("endpoint stopped before they were written", len(self._buffer))
            self._buffer = []

    def describe(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "retention_days": self.retention_days,
            "max_rows_per_request": self.max_rows_per_request,
            "capped": self.stats.capped,
            "buffered": len(self._buffer) + self._in_flight,
            "written": self.stats.written,
            "dropped": dict(self.stats.dropped),
            "last_error": self.stats.last_error,
        }


@dataclass(frozen=True)
class Scoring:
    """One model's scores of some of a request's rows: which rows, the features it saw, whether it answered them
    (a shadow challenger's scores are logged, never answered)."""

    model: ServedModel
    role: str
    X: np.ndarray
    scores: np.ndarray
    rows: Sequence[int]  # positions in the request
    answered: bool


def log_documents(project: str, parsed: RowsRequest | EntitiesRequest, scorings: list[Scoring], *,
                  as_of: dt.datetime | None = None, only: list[int] | None = None) -> list[dict]:
    """One record per scored row and model: the features as the model saw them (floats; missing as null), its
    version and role, and whether it was the answer. Entity requests also record the entity and `as_of`, the
    feature day the score was made from (its label is judged over the horizon after it). `only`: the request
    positions to log (every model's score of those rows), None for all."""
    now = dt.datetime.now(dt.timezone.utc)
    kept = None if only is None else set(only)
    entities = parsed.entities if isinstance(parsed, EntitiesRequest) else None
    documents = []
    for scoring in scorings:
        model = scoring.model
        model_ref = {"name": model.name, "version": model.version}
        for row, score, position in zip(scoring.X.tolist(), scoring.scores.tolist(), scoring.rows):
            if kept is not None and position not in kept:
                continue
            document = {"project": project, "model": model_ref, "role": scoring.role, "answered": scoring.answered,
                        "time": now, "score": score,
                        "features": {f: (None if v != v else v) for f, v in zip(model.features, row)}}  # NaN != NaN
            if entities is not None:
                document["entity"] = entities[position]
                document["as_of"] = as_of
            documents.append(document)
    return documents
