"""What a source holds, computed in the database: its watermark (newest event time) and per-day counts.

The watermark is the only evidence the platform takes that a day of events is complete:
a day D is complete once the source holds an event at or after the end of D plus the
source's `lateness_days`. Label maturity is judged from it, never from Dagster runs, so
events loaded by any means (a CDC feed, `mining-platform import`, a nightly dump) count.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pymongo import DESCENDING
from pymongo.database import Database

from mining_platform import settings
from mining_platform.spec.clock import as_utc
from mining_platform.spec.names import source_problem
from mining_platform.spec.source_config import SourceConfig

ONE_DAY = dt.timedelta(days=1)
NO_EVENTS = "0 events"  # the data version of a day that had events and has none now
SWEEP_DAYS = 31  # days a full pass reads at a time


class SourceProblem(ValueError):
    """The source cannot be read as configured (no such collection, no dates in its timestamp field)."""


def source_database(platform: Database, source: SourceConfig) -> Database:
    """The database a source lives in, on the connection `platform` (the platform database) came from.

    The project file was checked against the same rule when it was loaded (`source_problem`); it is
    checked again here, against the platform database this connection uses, so no project reads
    another's features, samples or log by naming its database.
    """
    problem = source_problem(platform.name, source.database, source.collection)
    if problem:
        raise SourceProblem(problem)
    name = source.database_name(platform.name)
    return platform if name == platform.name else platform.client[name]


def shown(source: SourceConfig, database: Database) -> str:
    return f"{source.database_name(database.name)}.{source.collection}"


def future_bound(now: dt.datetime | None = None) -> dt.datetime:
    """The latest event time the platform believes: now plus MINING_FUTURE_TOLERANCE_MINUTES."""
    minutes = settings.int_setting("MINING_FUTURE_TOLERANCE_MINUTES")
    return (now or dt.datetime.now(dt.timezone.utc)) + dt.timedelta(minutes=minutes)


def watermark(database: Database, source: SourceConfig, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """The newest believable event time in the source (a BSON date in its timestamp field, at most `future_bound`),
    or None when it has none. Events dated later (a row of year 9999, a clock far ahead) are ignored: one of them
    would otherwise mature every label window at once.

    Raises SourceProblem when the collection has documents but none holds a date in the
    timestamp field: a misnamed field would otherwise look like an empty source.
    """
    events = source_database(database, source)[source.collection]
    newest = events.find_one({source.timestamp: {"$type": "date", "$lte": future_bound(now)}}, {source.timestamp: 1},
                             sort=[(source.timestamp, DESCENDING)])
    if newest is not None:
        value = newest
        for part in source.timestamp.split("."):
            value = value[part]
        return as_utc(value)
    sample = events.find_one({}, {source.timestamp: 1})
    if sample is not None and events.find_one({source.timestamp: {"$type": "date"}}, {"_id": 1}) is None:
        raise SourceProblem(
            f"{shown(source, database)}: no document has a date in {source.timestamp!r} (e.g. _id {sample['_id']!r}: "
            f"{_field(sample, source.timestamp)!r}); set sources.<key>.timestamp to the event-time field, stored as a "
            "BSON date (mining-platform import parses text timestamps)"
        )
    return None


def ignored_future(database: Database, source: SourceConfig, *, now: dt.datetime | None = None) -> str:
    """A sentence on the events the watermark ignores because they are dated past `future_bound`, or ""."""
    bound = future_bound(now)
    events = source_database(database, source)[source.collection]
    count = events.count_documents({source.timestamp: {"$gt": bound}}, limit=10_000)
    if not count:
        return ""
    furthest = events.find_one({source.timestamp: {"$gt": bound}}, {source.timestamp: 1},
                               sort=[(source.timestamp, DESCENDING)])
    return (f"{count if count < 10_000 else 'at least 10000'} event(s) dated after {bound.isoformat()} (now plus "
            f"MINING_FUTURE_TOLERANCE_MINUTES), up to {as_utc(_field(furthest, source.timestamp)).isoformat()}, are "
            f"ignored by the watermark")


def _field(document: dict, path: str):
    for part in path.split("."):
        if not isinstance(document, dict) or part not in document:
            return "<missing>"
        document = document[part]
    return document


def complete_through(newest: dt.datetime | None, lateness_days: int) -> dt.date | None:
    """The last complete day given the watermark: D is complete once newest ≥ end of D + lateness."""
    if newest is None:
        return None
    return (newest - dt.timedelta(days=lateness_days)).date() - ONE_DAY


HISTORICAL_AFTER_DAYS = 7  # a source whose newest event is older than this has stopped: a historical dump


def historical_end(newest: dt.datetime | None, lateness_days: int, today: dt.date) -> dt.date | None:
    """The `end_date` to propose for a source whose events stopped (its last complete day), or None for a live
    (or empty) one: partitions that run to today would be empty days after the data's end."""
    if newest is None or (today - newest.date()).days <= HISTORICAL_AFTER_DAYS:
        return None
    return complete_through(newest, lateness_days)


@dataclass(frozen=True)
class DayCount:
    events: int
    newest: dt.datetime

    @property
    def version(self) -> str:
        """The day's data version: what changes when its events change (count or newest time)."""
        return f"{self.events} events, newest {self.newest.isoformat()}"


def day_counts(database: Database, source: SourceConfig, *, start: dt.date, end: dt.date,
               max_time_ms: int = 600_000) -> dict[str, DayCount]:
    """Events and newest event time per UTC day in [start, end), computed in the database."""
    events = source_database(database, source)[source.collection]
    begin = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
    stop = dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc)
    field = f"${source.timestamp}"
    rows = events.aggregate([
        {"$match": {source.timestamp: {"$gte": begin, "$lt": stop}}},
        {"$group": {"_id": {"$dateTrunc": {"date": field, "unit": "day"}}, "events": {"$sum": 1},
                    "newest": {"$max": field}}},
    ], maxTimeMS=max_time_ms, comment="mining-platform source observation")
    return {as_utc(row["_id"]).date().isoformat(): DayCount(row["events"], as_utc(row["newest"])) for row in rows}


def changed_versions(counts: Mapping[str, DayCount], previous: Mapping[str, str], days: Iterable[str]) -> dict[str, str]:
    """The days (of `days`, the partitions read) whose data version differs from the one last recorded.

    A day that had events and has none now (deleted) changes too, to NO_EVENTS.
    """
    changed = {}
    for day in days:
        version = counts[day].version if day in counts else NO_EVENTS
        if previous.get(day, NO_EVENTS) != version:
            changed[day] = version
    return changed


@dataclass(frozen=True)
class DayRange:
    """UTC days [start, end)."""

    start: dt.date
    end: dt.date

    @property
    def empty(self) -> bool:
        return self.end <= self.start

    def days(self) -> list[str]:
        return [(self.start + dt.timedelta(days=i)).isoformat() for i in range((self.end - self.start).days)]

    def __str__(self) -> str:
        return f"{self.start}..{self.end - ONE_DAY}" if not self.empty else "no days"


def recent_range(first: dt.date, last: dt.date, follow_days: int | str, lateness_days: int) -> DayRange:
    """The days observed on every tick: the `follow_days` latest partitions (all of them for `all`), and at least
    the days late events can still reach (`lateness_days` + 2)."""
    if follow_days == "all":
        return DayRange(first, last + ONE_DAY)
    days = max(int(follow_days), lateness_days + 2)
    return DayRange(max(first, last - dt.timedelta(days=days - 1)), last + ONE_DAY)


def next_sweep_range(position: dt.date, recent: DayRange) -> DayRange:
    """The next chunk of a full pass that has reached `position`: at most SWEEP_DAYS, stopping at the recent days."""
    return DayRange(position, min(position + dt.timedelta(days=SWEEP_DAYS), recent.start))
