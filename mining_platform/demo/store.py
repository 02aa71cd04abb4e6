"""Writing a generated day into the demo source's collection, replacing what it held.

The generator replaces whole days, so it must never touch a collection that holds
someone's real events: it writes only its project's demo database (`<namespace>-demo`, which
nothing else writes), and there only collections it created itself, recorded in that
database's `demo_collections` when it first writes them.
"""

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from mining_platform.demo.events import Population, generate_day
from mining_platform.spec.names import DEMO_COLLECTIONS

INSERT_BATCH = 5_000


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC interval [day 00:00, next day 00:00)."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


class ForeignCollection(RuntimeError):
    """The demo generator was asked to write into a collection it did not create."""


def claim_collection(events: Collection, *, project: str) -> None:
    """Allow the generator to write `events`: a collection it created (recorded in `demo_collections` beside it), or
    a new or empty one, which it records now. Anything else holds data it does not own: ForeignCollection."""
    namespace = f"{events.database.name}.{events.name}"
    owners = events.database[DEMO_COLLECTIONS]
    claim = owners.find_one({"_id": namespace})
    if claim is not None:
        if claim["project"] != project:
            raise ForeignCollection(f"{namespace} holds the demo events of project {claim['project']!r}, not "
                                    f"{project!r}; point demo.source at a source of its own")
        return
    existing = events.find_one({}, {"_id": 1})
    if existing is not None:
        raise ForeignCollection(
            f"{namespace} already holds documents the demo generator did not write (e.g. _id {existing['_id']!r}); "
            "it only writes collections it created, so it never replaces real events. Point the demo source at a new "
            "collection, or drop the demo: block to use this data as it is")
    try:
        owners.insert_one({"_id": namespace, "project": project, "created_at": dt.datetime.now(dt.timezone.utc)})
    except DuplicateKeyError:  # claimed concurrently: check whose it is
        claim_collection(events, project=project)


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


@dataclass
class DaysWritten:
    events_per_day: dict[str, int] = field(default_factory=dict)
    replaced: int = 0  # events the days held before
    users: set = field(default_factory=set)
    by_type: Counter = field(default_factory=Counter)


def write_days(events: Collection, population: Population, *, start_date: dt.date, days: list[dt.date], seed: int,
               drift: float, entity_field: str, log: logging.Logger | logging.LoggerAdapter | None = None) -> DaysWritten:
    """Generate and write each day, replacing what it held; each day is its own transaction, so a
    failure keeps the days before it written (a rerun is idempotent) and never leaves a day half-replaced."""
    ensure_event_indexes(events, entity_field=entity_field)
    written = DaysWritten()
    for day in days:
        documents = generate_day(population, start_date=start_date, day=day, seed=seed, drift=drift,
                                 entity_field=entity_field)
        written.replaced += replace_day(events, day=day, documents=documents)
        written.events_per_day[day.isoformat()] = len(documents)
        written.users.update(d[entity_field] for d in documents)
        written.by_type.update(d["event_type"] for d in documents)
        if log:
            log.info(f"{day}: {len(documents)} events written")
    return written
