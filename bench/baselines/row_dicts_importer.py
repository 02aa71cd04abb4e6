"""The baseline of `bench.imports`: `mining-platform import` as it was before streaming (commit b80bba6), kept
verbatim below this docstring so the bench compares against it in the same run. Not used by the platform.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pymongo import ASCENDING, ReplaceOne
from pymongo.database import Database

from mining_platform.sources.observe import shown, source_database
from mining_platform.spec.project import ProjectConfig

WRITE_BATCH = 5_000
SHOWN_PROBLEMS = 20
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json",
           ".json": "json"}


class ImportFailed(ValueError):
    """The file cannot be imported as it is; the message names the file, and the lines at fault."""


@dataclass
class ImportReport:
    rows: int
    inserted: int
    already_there: int
    first_day: dt.date | None
    last_day: dt.date | None
    target: str
    notes: list[str] = field(default_factory=list)


def _read(path: Path, timestamp: str, as_text: bool) -> tuple[pa.Table, str, int]:
    """(table, format, line number of the first row)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ImportFailed(f"{path}: unknown file type {path.suffix!r}; import reads {', '.join(sorted(FORMATS))}")
    try:
        if kind == "csv":
            from pyarrow import csv

            options = csv.ConvertOptions(column_types={timestamp: pa.string()} if as_text else None,
                                         strings_can_be_null=True)
            return csv.read_csv(path, convert_options=options), kind, 2
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path), kind, 1
        from pyarrow import json as pa_json

        return pa_json.read_json(path), kind, 1
    except FileNotFoundError:
        raise ImportFailed(f"{path}: file not found") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ImportFailed(f"{path}: cannot read it as {kind}: {exc}") from None


def _where(kind: str, first_line: int, row: int) -> str:
    return f"row {row + 1}" if kind == "parquet" else f"line {row + first_line}"


def _parse_text(values: pa.Array, fmt: str | None) -> tuple[pa.Array, list[int]]:
    """Text event times as UTC timestamps; the rows that did not parse."""
    utc = pa.timestamp("ms", tz="UTC")
    if fmt is not None:
        try:
            parsed = pc.strptime(values, format=fmt, unit="ms", error_is_null=True)
        except pa.ArrowInvalid as exc:
            raise ImportFailed(f"--timestamp-format {fmt!r}: {exc}") from None
        parsed = parsed.cast(utc)  # a naive result is UTC; a zoned one (%z) is converted
    else:
        parsed = pa.array([_iso(value) for value in values.to_pylist()], type=utc)
    bad = [i for i, (text, value) in enumerate(zip(values.to_pylist(), parsed.to_pylist()))
           if text is not None and value is None]
    return parsed, bad


def _iso(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _event_times(column: pa.ChunkedArray, fmt: str | None, name: str) -> tuple[pa.Array, list[int]]:
    values = column.combine_chunks()
    utc = pa.timestamp("ms", tz="UTC")
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return _parse_text(values.cast(pa.string()), fmt)
    if fmt is not None:
        raise ImportFailed(f"column {name!r} is {values.type}, not text: --timestamp-format applies to text only")
    if pa.types.is_timestamp(values.type):
        # A timestamp without a zone is UTC.
        naive = values if values.type.tz is None else values.cast(pa.timestamp(values.type.unit))
        return naive.cast(pa.timestamp("ms")).cast(utc), []
    if pa.types.is_date(values.type):
        return values.cast(pa.timestamp("ms")).cast(utc), []
    raise ImportFailed(f"column {name!r} is {values.type}: an event time must be a date, a timestamp or text "
                       "(for numbers such as 19970101 pass --timestamp-format %Y%m%d)")


def _row_id(row: dict, seen: dict[str, int]) -> str:
    digest = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:24]
    occurrence = seen.get(digest, 0)
    seen[digest] = occurrence + 1
    return digest if occurrence == 0 else f"{digest}-{occurrence}"


def import_file(db: Database, project: ProjectConfig, source_key: str, path: Path, *,
                timestamp_format: str | None = None) -> ImportReport:
    """Check the whole file, then upsert every row into the source's collection (see the module docstring)."""
    if source_key not in project.sources:
        raise ImportFailed(f"project {project.name} has no source {source_key!r} (its sources: "
                           f"{', '.join(project.sources)})")
    if project.demo is not None and project.demo.source == source_key:
        raise ImportFailed(f"source {source_key!r} is the demo generator's (demo.source); import into another source")
    source = project.sources[source_key]
    timestamp, entity = source.timestamp, project.entity
    if "." in timestamp:
        raise ImportFailed(f"sources.{source_key}.timestamp {timestamp!r} is a nested field; import writes top-level "
                           "columns, so name a column of the file")
    table, kind, first_line = _read(path, timestamp, as_text=timestamp_format is not None)
    columns = table.column_names
    problems = [f"column {name!r}: a MongoDB field name cannot start with $ or contain a dot"
                for name in columns if name.startswith("$") or "." in name or not name]
    if "_id" in columns:
        problems.append("column '_id': import derives each row's _id from its content; rename or drop the column")
    for needed, what in ((entity, "the project's entity"), (timestamp, f"sources.{source_key}.timestamp")):
        if needed not in columns:
            problems.append(f"no column {needed!r} ({what}); the file has {', '.join(columns)}")
    if problems:
        raise ImportFailed(f"{path}: " + "; ".join(problems))
    if table.num_rows == 0:
        raise ImportFailed(f"{path}: no rows")

    times, unparsed = _event_times(table.column(timestamp), timestamp_format, timestamp)
    bad: dict[int, str] = {i: f"{timestamp} {table.column(timestamp)[i].as_py()!r} is not a "
                              + (f"time in format {timestamp_format!r}" if timestamp_format else "ISO 8601 date or time")
                           for i in unparsed}
    for i in pc.indices_nonzero(pc.is_null(times)).to_pylist():
        bad.setdefault(i, f"no {timestamp}")
    entity_values = table.column(entity).combine_chunks()
    if not (pa.types.is_integer(entity_values.type) or pa.types.is_string(entity_values.type)
            or pa.types.is_large_string(entity_values.type) or pa.types.is_null(entity_values.type)):
        raise ImportFailed(f"{path}: column {entity!r} is {entity_values.type}; an entity id is a string or an integer")
    for i in pc.indices_nonzero(pc.is_null(entity_values)).to_pylist():
        bad.setdefault(i, f"no {entity}")
    if bad:
        listed = "; ".join(f"{_where(kind, first_line, i)}: {reason}" for i, reason in sorted(bad.items())[:SHOWN_PROBLEMS])
        more = f" and {len(bad) - SHOWN_PROBLEMS} more" if len(bad) > SHOWN_PROBLEMS else ""
        raise ImportFailed(f"{path}: {len(bad)} of {table.num_rows} rows cannot be imported, nothing was written: "
                           f"{listed}{more}")

    table = table.set_column(columns.index(timestamp), timestamp, times)
    events = source_database(db, source)[source.collection]
    seen: dict[str, int] = {}
    inserted = matched = 0
    batch = []
    for row in table.to_pylist():
        row = {key: value for key, value in row.items() if value is not None}
        batch.append(ReplaceOne({"_id": _row_id(row, seen)}, row, upsert=True))
        if len(batch) == WRITE_BATCH:
            result = events.bulk_write(batch, ordered=False)
            inserted, matched, batch = inserted + result.upserted_count, matched + result.matched_count, []
    if batch:
        result = events.bulk_write(batch, ordered=False)
        inserted, matched = inserted + result.upserted_count, matched + result.matched_count
    # Time-range scans (feature windows, the watermark) and per-entity history.
    events.create_index([(timestamp, ASCENDING)], name=f"{timestamp}_1")
    events.create_index([(entity, ASCENDING), (timestamp, ASCENDING)], name=f"{entity}_1_{timestamp}_1")
    first, last = pc.min_max(times).values()
    return ImportReport(rows=table.num_rows, inserted=inserted, already_there=matched,
                        first_day=first.as_py().date(), last_day=last.as_py().date(), target=shown(source, db))
