"""Writing a generated day into the events collection, replacing what it held."""

import datetime as dt

from pymongo import ASCENDING
from pymongo.collection import Collection

INSERT_BATCH = 5_000


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC interval [day 00:00, next day 00:00)."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def ensure_event_indexes(events: Collection, *, entity_field: str) -> None:
    """Time range scans (a day's replacement, feature windows) and per-entity history."""
    events.create_index([("timestamp", ASCENDING)], name="timestamp_1")
    events.create_index([(entity_field, ASCENDING), ("timestamp", ASCENDING)], name=f"{entity_field}_1_timestamp_1")


def replace_day(events: Collection, *, day: dt.date, documents: list[dict]) -> int:
    """Atomically replace every event of `day` with `documents`; returns how many were removed.

    One transaction, so a reader sees the old day or the new one, never a mix, and a
    failure midway leaves the old day intact. Needs a replica set or sharded cluster
    (as MongoDB transactions do); the embedded dev server is a single-node replica set.
    """
    start, end = day_bounds(day)
    outside = [d["_id"] for d in documents if not start <= d["timestamp"] < end]
    if outside:
        raise ValueError(f"{len(outside)} documents lie outside {day}, e.g. _id {outside[0]!r}")

    def write(session) -> int:
        removed = events.delete_many({"timestamp": {"$gte": start, "$lt": end}}, session=session)
        for i in range(0, len(documents), INSERT_BATCH):
            events.insert_many(documents[i : i + INSERT_BATCH], ordered=False, session=session)
        return removed.deleted_count

    with events.database.client.start_session() as session:
        return session.with_transaction(write)
