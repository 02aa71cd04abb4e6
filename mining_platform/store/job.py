"""What a partition job is to the loop (`store.loop`): the aggregations and in-process steps of a partition run,
what became of a partition, and the methods a job gives the loop. Feature sets, tiles, samples and batch
predictions each implement `PartitionJob`."""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pymongo.database import Database

from mining_platform.store import runs

Log = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class Aggregation:
    """One server-side aggregation of a partition run; it ends in a `$merge` into the project's namespace."""

    collection: str
    stages: list[dict]
    database: str | None = None  # None: the project's namespace (a source lives in another database)
    # Read on the write connection's primary: the aggregation reads what this platform just committed (tiles, a
    # run's label documents), which a secondary of the analytics connection may not have replicated yet.
    primary: bool = False


@dataclass(frozen=True)
class ClientStep:
    """A step of a partition run computed in this process, not in the database (scoring with a model): it reads
    and writes through the handles it is given, `(db, analytics, max_time_ms)`, tagging what it writes with the
    run's id, as an aggregation's `$merge` does."""

    run: Callable[[Database, Database, int], None]
    description: str = ""


@dataclass
class PartitionOutcome:
    """What became of one partition; jobs subclass it for their own details."""

    partition: str
    as_of: dt.datetime
    run_id: str | None = None  # None: refused before a run was recorded
    committed: bool = False
    documents_written: int = 0
    duration_seconds: float = 0.0
    bytes_returned: int = 0
    error: str | None = None
    transient: bool = False  # the error was a passing outage (see mining_platform.transient)
    replaced_run_id: str | None = None


class PartitionJob(Protocol):
    """One kind of partition (a feature set, a project's samples), as the loop runs it."""

    pipeline: runs.Pipeline
    project: str
    markers: str  # the commit-marker collection
    scratch: tuple[str, ...]  # collections holding a run's intermediate documents, removed when it ends

    def ensure_indexes(self, db: Database) -> None: ...
    def new_outcome(self, partition: str, as_of: dt.datetime) -> PartitionOutcome: ...
    def refusal(self, db: Database, outcome: PartitionOutcome) -> str | None: ...
    def window_start(self, as_of: dt.datetime) -> dt.datetime: ...
    def prepare(self, db: Database, analytics: Database, outcomes: list[PartitionOutcome]) -> None: ...
    def aggregations(self, db: Database, outcome: PartitionOutcome) -> list[Aggregation | ClientStep]: ...
    # Optional, for a job that computes consecutive days in one pass: `range_days` (at most this many a pass),
    # `range_aggregations(db, outcomes) -> list[Aggregation]` and `verify_range(db, outcomes, *, max_time_ms)`.
    def verify(self, db: Database, outcome: PartitionOutcome, *, max_time_ms: int) -> None: ...
    def marker_fields(self, outcome: PartitionOutcome) -> dict: ...
    def summary(self, outcome: PartitionOutcome) -> str: ...


@dataclass
class LoopResult:
    outcomes: list[PartitionOutcome]
    abandoned_runs: list[str] = field(default_factory=list)  # runs of dead processes marked FAILED
