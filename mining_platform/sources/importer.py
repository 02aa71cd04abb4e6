"""`mining-platform import`: a CSV, Parquet or JSON-lines file into a source, streamed.

The file is read twice in record batches, never whole. The first pass checks every row
before anything is written: each needs the project's entity and a parseable event time
(a date without a time is 00:00 UTC; text is parsed as ISO 8601, or with
`--timestamp-format`) within [--earliest (1970-01-01), now + MINING_FUTURE_TOLERANCE_MINUTES],
and every value must be storable in MongoDB as it was written: a column whose values
change kind (numbers, then text), a number beyond float64 or an integer past 2^53 read
as a float are refused. Any bad row fails the import, listed by line, with nothing
written. The second pass builds each batch's BSON documents column by column
(`bson_rows`) and writes them all or nothing (`write_rows`): into a new collection through a
staging collection renamed onto it, into one with events by inserting and, on a failure,
removing again what this import inserted.

Each row's `_id` is a digest of its content (and, for identical rows, its occurrence
number in the file), so importing the same file twice, or an export that grew, leaves
each row once: rows already there are counted, not rewritten. A collection holding
another project's demo events (a `demo_of` source) is never imported into.
"""

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from mining_platform.sources.import_file import SAMPLE_BYTES, EventFile, ImportFailed, Unreadable, refuse_mixed_types
from mining_platform.sources.import_rows import SHOWN_PROBLEMS, Progress, check_rows
from mining_platform.sources.import_times import EPOCH
from mining_platform.sources.import_write import row_ids, write_rows
from mining_platform.sources.observe import future_bound, shown, source_database
from mining_platform.spec.project import ProjectConfig

__all__ = ["ImportFailed", "ImportReport", "import_file"]




# Row ids of the importer before streaming (sha256 of the row as JSON): a file imported with them
# would be imported a second time under the new ids.
EARLIER_ID = re.compile(r"[0-9a-f]{24}(-\d+)?")


@dataclass
class ImportReport:
    rows: int  # rows written or already there (the file's rows less those dropped)
    inserted: int
    already_there: int
    first_day: dt.date | None
    last_day: dt.date | None
    target: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (line, why) of each row left out: drop_bad_rows
    removed: int = 0  # rows of the replaced days the file no longer holds: replace_days


EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def import_file(db: Database, project: ProjectConfig, source_key: str, path: Path, *,
                timestamp_format: str | None = None, progress: Callable[[str], None] | None = None,
                earliest: dt.datetime = EARLIEST, now: dt.datetime | None = None, drop_bad_rows: bool = False,
                replace_days: bool = False) -> ImportReport:
    """Check the whole file, then write every row not already in the source, all or nothing (module docstring).

    Event times before `earliest` or after now plus MINING_FUTURE_TOLERANCE_MINUTES are refused by line.
    `drop_bad_rows`: rows that fail a row check are left out and listed in the report (`dropped`) instead.
    `replace_days`: the file replaces every event of the days it covers (its first to its last UTC day), for a
    corrected export: rows it no longer has are removed, changed rows replaced, in one publish."""
    if source_key not in project.sources:
        raise ImportFailed(f"project {project.name} has no source {source_key!r} (its sources: "
                           f"{', '.join(project.sources)})")
    if project.demo is not None and project.demo.source == source_key:
        raise ImportFailed(f"source {source_key!r} is the demo generator's (demo.source); import into another source")
    source = project.sources[source_key]
    if source.demo_of is not None:
        raise ImportFailed(f"source {source_key!r} is project {source.demo_of!r}'s demo events ({shown(source, db)}, "
                           "written only by its demo generator): import into a source of your own; nothing was written")
    timestamp, entity = source.timestamp, project.entity
    if "." in timestamp:
        raise ImportFailed(f"sources.{source_key}.timestamp {timestamp!r} is a nested field; import writes top-level "
                           "columns, so name a column of the file")
    started = time.monotonic()
    file, notes = EventFile(path, timestamp), []
    say = Progress(progress, path.name)
    columns = {"entity": entity, "timestamp": timestamp, "fmt": timestamp_format, "source_key": source_key,
               "earliest": earliest, "latest": future_bound(now)}
    events = source_database(db, source)[source.collection]
    try:
        rows, checked = check_rows(file, columns, say, drop=drop_bad_rows)
    except Unreadable:
        if file.kind == "parquet":
            raise
        # A column whose later rows do not fit the type inferred from the file's head: infer from all rows, and
        # accept only a widening (empty so far, or integers that turn decimal); a column whose values disagree in
        # kind (numbers, then text) is refused, naming the first line that disagrees.
        head = file.schema
        file.infer_whole()
        if head is not None:
            refuse_mixed_types(file, head)
        notes.append(f"column types inferred from the first {SAMPLE_BYTES >> 20} MB did not fit later rows: the "
                     "file was read whole once to infer them")
        rows, checked = check_rows(file, columns, say, drop=drop_bad_rows)
    if checked.bad and not drop_bad_rows:
        more = f" and {checked.bad - SHOWN_PROBLEMS} more" if checked.bad > SHOWN_PROBLEMS else ""
        raise ImportFailed(f"{path}: {checked.bad} of {checked.rows} rows cannot be imported, nothing was written: "
                           f"{'; '.join(checked.shown)}{more} (--drop-bad-rows leaves such rows out and reports "
                           "each)")
    if checked.rows == 0:
        raise ImportFailed(f"{path}: no rows" + (f" left: all {checked.bad} were dropped ({'; '.join(checked.shown)})"
                                                 if checked.bad else ""))
    if checked.dropped:
        notes.append(f"{len(checked.dropped)} rows failed a row check and were left out (--drop-bad-rows): "
                     f"{'; '.join(checked.shown[:3])}{' …' if len(checked.dropped) > 3 else ''}")

    earlier = events.find_one({}, {"_id": 1})
    if earlier is not None and isinstance(earlier["_id"], str) and EARLIER_ID.fullmatch(earlier["_id"]):
        raise ImportFailed(
            f"{shown(source, db)} was filled by an earlier version of import, whose row ids differ: importing into it "
            "again would add every row a second time. Import only rows it does not hold yet, or drop it and import "
            "the whole file; nothing was written")
    pairs, occurrence = row_ids(checked.digests)
    covered = None
    if replace_days and earlier is not None:
        start = EPOCH + dt.timedelta(days=checked.first // DAY_MS)
        covered = {timestamp: {"$gte": start, "$lt": EPOCH + dt.timedelta(days=checked.last // DAY_MS + 1)}}
    inserted, removed = write_rows(events, file, rows, pairs, occurrence, checked, path, say,
                                   empty=earlier is None, covered=covered)
    # Time-range scans (feature windows, the watermark) and per-entity history; built after a first load,
    # which is faster than keeping them up to date row by row.
    events.create_index([(timestamp, ASCENDING)], name=f"{timestamp}_1")
    events.create_index([(entity, ASCENDING), (timestamp, ASCENDING)], name=f"{entity}_1_{timestamp}_1")
    seconds = time.monotonic() - started
    say(lambda _: f"{checked.rows:,} rows in {seconds:.1f} s", done=True)
    return ImportReport(rows=checked.rows, inserted=inserted, already_there=checked.rows - inserted,
                        first_day=_day(checked.first), last_day=_day(checked.last), target=shown(source, db),
                        seconds=seconds, notes=notes, dropped=checked.dropped, removed=removed)


DAY_MS = 86_400_000


def _day(millis: int | None) -> dt.date | None:
    return None if millis is None else (EPOCH + dt.timedelta(milliseconds=millis)).date()
