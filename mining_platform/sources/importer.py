"""`mining-platform import`: a CSV, Parquet or JSON-lines file into a source, streamed.

The file is read twice in record batches, never whole. The first pass checks every row
before anything is written: each needs the project's entity and a parseable event time
(a date without a time is 00:00 UTC; text is parsed as ISO 8601, or with
`--timestamp-format`) within [--earliest (1970-01-01), now + MINING_FUTURE_TOLERANCE_MINUTES],
and every value must be storable in MongoDB as it was written: a column whose values
change kind (numbers, then text), a number beyond float64 or an integer past 2^53 read
as a float are refused. Any bad row fails the import, listed by line, with nothing
written. The second pass builds each batch's BSON documents column by column
(`bson_rows`) and writes them all or nothing (`_write`): into a new collection through a
staging collection renamed onto it, into one with events by inserting and, on a failure,
removing again what this import inserted.

Each row's `_id` is a digest of its content (and, for identical rows, its occurrence
number in the file), so importing the same file twice, or an export that grew, leaves
each row once: rows already there are counted, not rewritten. A collection holding
another project's demo events (a `demo_of` source) is never imported into.
"""

import contextlib
import datetime as dt
import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from mining_platform.sources import bson_rows
from mining_platform.sources.observe import future_bound, shown, source_database
from mining_platform.spec.project import ProjectConfig

SHOWN_PROBLEMS = 20
BLOCK_BYTES = 1 << 20  # CSV and JSON are read in blocks of this size …
SAMPLE_BYTES = 4 << 20  # … with column types inferred from the file's first this many bytes
PARQUET_ROWS = 65_536
PROGRESS_SECONDS = 5.0
DUPLICATE_KEY = 11000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json",
           ".json": "json"}
# Row ids of the importer before streaming (sha256 of the row as JSON): a file imported with them
# would be imported a second time under the new ids.
EARLIER_ID = re.compile(r"[0-9a-f]{24}(-\d+)?")


class ImportFailed(ValueError):
    """The file cannot be imported as it is; the message names the file, and the lines at fault."""


class _Unreadable(ImportFailed):
    """The reader gave up (for CSV and JSON, possibly a column whose later rows do not fit its inferred type)."""


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


class _File:
    """The file as a stream of record batches; `fraction` says how far through it a pass is."""

    def __init__(self, path: Path, timestamp: str):
        self.path, self.kind = path, FORMATS.get(path.suffix.lower())
        if self.kind is None:
            raise ImportFailed(f"{path}: unknown file type {path.suffix!r}; import reads {', '.join(sorted(FORMATS))}")
        if not path.is_file():
            raise ImportFailed(f"{path}: file not found")
        self.first_line = 2 if self.kind == "csv" else 1
        # The event time of a text file is read as text and parsed here, row by row where Arrow cannot (a value
        # past the nanosecond range, mixed zones): a reader's own conversion would refuse the whole file at the
        # first value it cannot convert, without a line.
        self.timestamp = timestamp
        self.text_columns = {timestamp: pa.string()}
        self.size, self._handle = max(path.stat().st_size, 1), None
        self.schema = None if self.kind == "parquet" else self._sample_schema()

    def fraction(self) -> float:
        return 0.0 if self._handle is None else min(self._handle.tell() / self.size, 1.0)

    def where(self, row: int) -> str:
        return f"row {row + 1}" if self.kind == "parquet" else f"line {row + self.first_line}"

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
            raise _Unreadable(f"{self.path}: cannot read it as {self.kind}: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            with open(self.path, "rb") as self._handle:
                yield from pq.ParquetFile(self._handle).iter_batches(batch_size=PARQUET_ROWS)
            return
        with open(self.path, "rb") as self._handle:
            yield from self._reader(self._handle)

    def _reader(self, handle):
        if self.kind == "csv":
            from pyarrow import csv

            types = {**({} if self.schema is None else {f.name: f.type for f in self.schema}), **self.text_columns}
            return csv.open_csv(handle, read_options=csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                                convert_options=csv.ConvertOptions(column_types=types or None,
                                                                   strings_can_be_null=True))
        from pyarrow import json

        return json.open_json(handle, read_options=json.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                              parse_options=json.ParseOptions(explicit_schema=self.schema))

    def _sample_schema(self) -> pa.Schema | None:
        """Column types inferred from the file's first SAMPLE_BYTES (whole lines), or None to infer while streaming."""
        from pyarrow import csv, json

        with open(self.path, "rb") as handle:
            head = handle.read(SAMPLE_BYTES)
            if handle.read(1):
                head = head[:head.rfind(b"\n") + 1]
        try:
            if self.kind == "csv":
                return _text_times_of_day(csv.read_csv(pa.BufferReader(head), convert_options=csv.ConvertOptions(
                    column_types=self.text_columns, strings_can_be_null=True)).schema)
            return self._json_times_as_text(json.read_json(pa.BufferReader(head)).schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # e.g. a quoted line break at the cut: the reader infers from its first block
        finally:
            pa.default_memory_pool().release_unused()

    def infer_whole(self) -> None:
        """Column types from the whole file, for a file whose later rows do not fit the first block's types."""
        from pyarrow import csv, json

        try:
            if self.kind == "csv":
                table = csv.read_csv(self.path, convert_options=csv.ConvertOptions(
                    column_types=self.text_columns, strings_can_be_null=True))
            else:
                table = json.read_json(self.path)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise ImportFailed(f"{self.path}: cannot read it as {self.kind}: {exc}") from None
        self.schema = (_text_times_of_day(table.schema) if self.kind == "csv"
                       else self._json_times_as_text(table.schema))

    def _json_times_as_text(self, schema: pa.Schema) -> pa.Schema:
        """JSON event times Arrow read as timestamps stay text (numbers stay numbers: refused by name later)."""
        if self.timestamp in schema.names and pa.types.is_timestamp(schema.field(self.timestamp).type):
            index = schema.get_field_index(self.timestamp)
            return schema.set(index, pa.field(self.timestamp, pa.string()))
        return schema


def _text_times_of_day(schema: pa.Schema) -> pa.Schema:
    """A CSV column of times of day ("10:30:00", inferred as time32) stays text: BSON has no time-of-day type."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_time(f.type) else f for f in schema])


class _Progress:
    def __init__(self, say: Callable[[str], None] | None, name: str):
        self.say, self.name, self.started, self.last = say, name, time.monotonic(), time.monotonic()

    def __call__(self, message: Callable[[float], str], *, done: bool = False) -> None:
        now = time.monotonic()
        if self.say is not None and (done or now - self.last >= PROGRESS_SECONDS):
            self.last = now
            self.say(f"{self.name}: {message(now - self.started)}")


@dataclass
class _Checked:
    rows: int = 0
    bad: int = 0
    shown: list[str] = field(default_factory=list)
    first: int | None = None  # event times, UTC milliseconds
    last: int | None = None
    digests: list[bytes] = field(default_factory=list)  # 16 bytes a kept row, one item a batch
    drop: bool = False  # leave bad rows out (and list each in `dropped`) instead of refusing the file
    dropped: list[tuple[str, str]] = field(default_factory=list)
    kept_rows: dict[int, np.ndarray] = field(default_factory=dict)  # batch number -> mask of the rows kept

    def refuse(self, where: str, reason: str) -> None:
        self.bad += 1
        if len(self.shown) < SHOWN_PROBLEMS:
            self.shown.append(f"{where}: {reason}")
        if self.drop:
            self.dropped.append((where, reason))


def _parse_text(values: pa.Array, fmt: str | None) -> tuple[pa.Array, list[int]]:
    """Text event times as UTC timestamps; the rows that did not parse."""
    if fmt is not None:
        try:
            parsed = pc.strptime(values, format=fmt, unit="ms", error_is_null=True)
        except pa.ArrowInvalid as exc:
            raise ImportFailed(f"--timestamp-format {fmt!r}: {exc}") from None
        parsed = parsed.cast(bson_rows.UTC_MS)  # a naive result is UTC; a zoned one (%z) is converted
    else:
        parsed = _iso_times(values)
    unparsed = pc.and_(pc.is_valid(values), pc.is_null(parsed))
    return parsed, pc.indices_nonzero(unparsed).to_pylist()


def _iso_times(values: pa.Array) -> pa.Array:
    """ISO 8601 text as UTC: Arrow's parser for a batch that is all zoned or all zone-less, else row by row."""
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            return bson_rows.utc_ms(pc.cast(values, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    millis = [_iso(value) for value in values.to_pylist()]
    valid = np.array([value is not None for value in millis], dtype=bool)
    return bson_rows.numbers(np.array([value or 0 for value in millis], dtype=np.int64), pa.int64(),
                             valid).cast(bson_rows.UTC_MS)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _iso_parse(text: str) -> dt.datetime | None:
    """ISO 8601 text as written (zoned or not), or None."""
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _iso(text: str | None) -> int | None:
    """ISO 8601 text as UTC milliseconds since 1970."""
    value = None if text is None else _iso_parse(text)
    if value is None:
        return None
    try:
        value = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    except OverflowError:  # a zoned time that is before year 1 (or after 9999) in UTC
        return None
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def _event_times(values: pa.Array, fmt: str | None, name: str) -> tuple[pa.Array, list[int]]:
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type):
        return _parse_text(values.cast(pa.string()), fmt)
    if fmt is not None:
        raise ImportFailed(f"column {name!r} is {values.type}, not text: --timestamp-format applies to text only")
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return bson_rows.utc_ms(values), []
    raise ImportFailed(f"column {name!r} is {values.type}: an event time must be a date, a timestamp or text "
                       "(for numbers such as 19970101 pass --timestamp-format %Y%m%d)")


class _Rows:
    """What the two passes share: the file's columns, and how each becomes BSON."""

    def __init__(self, file: _File, schema: pa.Schema, entity: str, timestamp: str, fmt: str | None, source_key: str,
                 earliest: dt.datetime, latest: dt.datetime):
        self.file, self.entity, self.timestamp, self.fmt = file, entity, timestamp, fmt
        self.earliest, self.latest = earliest, latest
        self.window = (scalar_ms(earliest), scalar_ms(latest))
        names = schema.names
        problems = [f"column {name!r}: a MongoDB field name cannot start with $ or contain a dot or a NUL"
                    for name in names if name.startswith("$") or "." in name or "\x00" in name or not name]
        if "_id" in names:
            problems.append("column '_id': import derives each row's _id from its content; rename or drop the column")
        if len(set(names)) != len(names):
            problems.append(f"columns named twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
        for needed, what in ((entity, "the project's entity"), (timestamp, f"sources.{source_key}.timestamp")):
            if needed not in names:
                problems.append(f"no column {needed!r} ({what}); the file has {', '.join(names)}")
        entity_type = schema.field(entity).type if entity in names else pa.null()
        if pa.types.is_dictionary(entity_type):
            entity_type = entity_type.value_type
        if not (pa.types.is_integer(entity_type) or pa.types.is_string(entity_type)
                or pa.types.is_large_string(entity_type) or pa.types.is_null(entity_type)):
            problems.append(f"column {entity!r} is {entity_type}; an entity id is a string or an integer")
        self.encoders = {}
        for column in schema:
            if column.name != timestamp:
                try:
                    self.encoders[column.name] = bson_rows.encoder(column)
                except bson_rows.UnstorableColumn as exc:
                    problems.append(str(exc))
        if problems:
            raise ImportFailed(f"{file.path}: " + "; ".join(problems))
        self.order = names
        self.sorted = sorted(names)

    def elements(self, batch: pa.RecordBatch) -> tuple[dict[str, pa.Array], pa.Array, dict[int, str]]:
        """(elements by column, event times, row → why it cannot be imported)."""
        raw_times = batch.column(self.timestamp)
        times, unparsed = _event_times(raw_times, self.fmt, self.timestamp)
        how = f"time in format {self.fmt!r}" if self.fmt else "ISO 8601 date or time"
        bad = {i: (f"{self.timestamp} {raw_times[i].as_py()!r} is outside years 1-9999 in UTC"
                   if _beyond_years(raw_times[i].as_py()) else
                   f"{self.timestamp} {raw_times[i].as_py()!r} is not a {how}{_number_hint(raw_times[i].as_py(), self.fmt)}")
               for i in unparsed}
        for i in pc.indices_nonzero(pc.is_null(times)).to_pylist():
            bad.setdefault(i, f"no {self.timestamp}")
        for i in bson_rows.out_of_range(times):
            bad.setdefault(i, f"{self.timestamp} is outside years 1-9999")
        millis = times.cast(pa.int64())
        outside = pc.fill_null(pc.or_(pc.less(millis, self.window[0]), pc.greater(millis, self.window[1])),
                               bson_rows.FALSE)
        for i in pc.indices_nonzero(outside).to_pylist():
            if i in bad:  # outside years 1-9999 already: not a Python datetime
                continue
            bad.setdefault(i, f"{self.timestamp} {times[i].as_py().isoformat()} is outside "
                              f"[{self.earliest.isoformat()}, {self.latest.isoformat()}] (--earliest; the latest is "
                              "now plus MINING_FUTURE_TOLERANCE_MINUTES): a clock or parse error would move the "
                              "source's watermark")
        for i in pc.indices_nonzero(pc.is_null(batch.column(self.entity))).to_pylist():
            bad.setdefault(i, f"no {self.entity}")
        elements = {self.timestamp: bson_rows.encoder(pa.field(self.timestamp, times.type))(times).values}
        for name, encode in self.encoders.items():
            if encode is not None:
                column = batch.column(name)
                encoded = encode(column)
                elements[name] = encoded.values
                for i, reason in encoded.bad.items():
                    bad.setdefault(i, reason)
                if self.file.kind != "parquet" and pa.types.is_floating(column.type):
                    for i, reason in _lossy_numbers(name, column).items():
                        bad.setdefault(i, reason)
        return elements, times, bad


def _beyond_years(text) -> bool:
    """An ISO 8601 time that is valid where it was written but before year 1 or after 9999 in UTC."""
    value = _iso_parse(str(text))
    if value is None or value.tzinfo is None:
        return False
    try:
        value.astimezone(dt.timezone.utc)
    except OverflowError:
        return True
    return False


def _number_hint(value, fmt: str | None) -> str:
    """For a time written as digits (19970101, an epoch) read without a format: how to read it."""
    if fmt is None and isinstance(value, str) and value.strip().isdigit():
        return " (a number: pass --timestamp-format, e.g. %s for seconds since 1970 or %Y%m%d)"
    return ""


def scalar_ms(moment: dt.datetime) -> pa.Scalar:
    return bson_rows.scalar((moment - EPOCH) // dt.timedelta(milliseconds=1), pa.int64())


FLOAT_EXACT = 2.0**53  # integers beyond this are not all exact as float64


def _lossy_numbers(name: str, column: pa.Array) -> dict[int, str]:
    """Rows of a number column read from text that float64 cannot hold as written: beyond its range (read as
    infinity) or an integer past 2^53 (a 26-digit id would be stored as 1e+26)."""
    values = column.cast(pa.float64())
    infinite = pc.fill_null(pc.is_inf(values), bson_rows.FALSE)
    big = pc.fill_null(pc.and_(pc.greater(pc.abs(values), FLOAT_EXACT), pc.equal(pc.floor(values), values)),
                       bson_rows.FALSE)
    bad = {i: f"{name} is beyond the range of a float64 (read as {values[i].as_py()})"
           for i in pc.indices_nonzero(infinite).to_pylist()}
    for i in pc.indices_nonzero(big).to_pylist():
        bad.setdefault(i, f"{name} {values[i].as_py():.17g} is an integer past 2^53: as a float64 it loses digits; "
                          "quote it as text, or store it as a smaller number")
    return bad


def _check(file: _File, columns: dict, progress: _Progress, *, drop: bool) -> tuple[_Rows, _Checked]:
    """The first pass: every row checked, each good row's content digest kept (16 bytes a row). With `drop`, the
    bad rows are recorded (line and reason) and left out instead of refusing the file."""
    rows, checked = None, _Checked(drop=drop)
    for number, batch in enumerate(file.batches()):
        if rows is None:
            rows = _Rows(file, batch.schema, **columns)
        elements, times, bad = rows.elements(batch)
        for i, reason in sorted(bad.items()):
            checked.refuse(file.where(checked.rows + i), reason)
        if drop or not checked.bad:
            present = [elements[name] for name in rows.sorted if name in elements]
            contents = bson_rows.content(present, batch.num_rows).to_pylist()
            if bad:
                keep = np.ones(batch.num_rows, dtype=bool)
                keep[list(bad)] = False
                checked.kept_rows[number] = keep
                contents = [row for row, kept in zip(contents, keep) if kept]
                times = times.filter(pa.array(keep))
            checked.digests.append(b"".join(hashlib.blake2b(row, digest_size=16).digest() for row in contents))
        if len(times):
            low, high = (value.as_py() for value in pc.min_max(times.cast(pa.int64())).values())
            if low is not None:
                checked.first = min(low, checked.first if checked.first is not None else low)
                checked.last = max(high, checked.last if checked.last is not None else high)
        checked.rows += batch.num_rows
        progress(lambda _: f"checked {checked.rows:,} rows ({file.fraction():.0%} of the file)")
    checked.rows -= len(checked.dropped)
    if rows is None:
        raise ImportFailed(f"{file.path}: no rows")
    return rows, checked


def _widens(before: pa.DataType, after: pa.DataType) -> bool:
    return (before == after or pa.types.is_null(before)
            or (pa.types.is_integer(before) and pa.types.is_floating(after)))


def _refuse_mixed_types(file: _File, head: pa.Schema) -> None:
    """ImportFailed naming the first line of each column whose values changed kind after the file's head."""
    from pyarrow import csv

    whole = file.schema
    changed = [(f.name, f.type, whole.field(f.name).type) for f in head
               if f.name in whole.names and not _widens(f.type, whole.field(f.name).type)]
    if not changed:
        return
    problems = []
    for name, before, after in changed:
        line = None
        if file.kind == "csv":
            with open(file.path, "rb") as handle:
                reader = csv.open_csv(handle, read_options=csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                                      convert_options=csv.ConvertOptions(column_types={name: pa.string()},
                                                                         include_columns=[name],
                                                                         strings_can_be_null=True))
                seen = 0
                for batch in reader:
                    texts = batch.column(0)
                    try:
                        pc.cast(texts, before)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        for i, text in enumerate(texts.to_pylist()):
                            try:
                                pc.cast(pa.array([text], pa.string()), before)
                            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                                line = (seen + i + file.first_line, text)
                                break
                    if line:
                        break
                    seen += batch.num_rows
        where = f"line {line[0]} holds {line[1]!r}" if line else "a later line holds another kind of value"
        problems.append(f"column {name!r}: the rows before hold {before} values, {where} ({after} for the whole "
                        "column); a column's values must share one type: fix the line, or quote the column as text "
                        "throughout")
    raise ImportFailed(f"{file.path}: " + "; ".join(problems) + "; nothing was written")


def _ids(digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's digest as hex text and its occurrence among identical rows before it (0, 1, …). Empties
    `digests` (its bytes are joined once); the working arrays are 32-bit where a row number fits."""
    joined = b"".join(digests)
    digests.clear()
    pairs = np.frombuffer(joined, dtype=">u8").reshape(-1, 2)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    ranked = pairs[order]
    starts = np.ones(len(ranked), dtype=bool)
    starts[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
    del ranked
    position = np.arange(len(order), dtype=np.int32)
    first = np.where(starts, position, np.int32(0))
    np.maximum.accumulate(first, out=first)
    position -= first
    occurrence = np.empty(len(order), dtype=np.int32)
    occurrence[order] = position
    return pairs, occurrence


def _id_array(pairs: np.ndarray, occurrence: np.ndarray) -> pa.Array:
    hexed = pairs.astype(">u8").tobytes().hex().encode()
    digest = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(pairs), [None, pa.py_buffer(hexed)])
    repeat = bson_rows.numbers(occurrence.astype(np.int64), pa.int64(), valid=occurrence > 0).cast(pa.string())
    dash, empty = bson_rows.scalar(b"-", pa.string()), bson_rows.scalar(b"", pa.string())
    suffix = pc.fill_null(pc.binary_join_element_wise(dash, repeat, empty), empty)
    return pc.binary_join_element_wise(digest.cast(pa.string()), suffix, empty)


EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
STAGING_PREFIX = "mining_import_"  # a collection of the source's database, removed when the import ends


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
    timestamp, entity = source.timestamp, project.entity
    if "." in timestamp:
        raise ImportFailed(f"sources.{source_key}.timestamp {timestamp!r} is a nested field; import writes top-level "
                           "columns, so name a column of the file")
    started = time.monotonic()
    file, notes = _File(path, timestamp), []
    say = _Progress(progress, path.name)
    columns = {"entity": entity, "timestamp": timestamp, "fmt": timestamp_format, "source_key": source_key,
               "earliest": earliest, "latest": future_bound(now)}
    if source.demo_of is not None:
        raise ImportFailed(f"source {source_key!r} is project {source.demo_of!r}'s demo events ({shown(source, db)}, "
                           "written only by its demo generator): import into a source of your own; nothing was written")
    events = source_database(db, source)[source.collection]
    try:
        rows, checked = _check(file, columns, say, drop=drop_bad_rows)
    except _Unreadable:
        if file.kind == "parquet":
            raise
        # A column whose later rows do not fit the type inferred from the file's head: infer from all rows, and
        # accept only a widening (empty so far, or integers that turn decimal); a column whose values disagree in
        # kind (numbers, then text) is refused, naming the first line that disagrees.
        head = file.schema
        file.infer_whole()
        if head is not None:
            _refuse_mixed_types(file, head)
        notes.append(f"column types inferred from the first {SAMPLE_BYTES >> 20} MB did not fit later rows: the "
                     "file was read whole once to infer them")
        rows, checked = _check(file, columns, say, drop=drop_bad_rows)
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
    pairs, occurrence = _ids(checked.digests)
    covered = None
    if replace_days and earlier is not None:
        start = EPOCH + dt.timedelta(days=checked.first // DAY_MS)
        covered = {timestamp: {"$gte": start, "$lt": EPOCH + dt.timedelta(days=checked.last // DAY_MS + 1)}}
    inserted, removed = _write(events, file, rows, pairs, occurrence, checked, path, say, empty=earlier is None,
                               covered=covered)
    # Time-range scans (feature windows, the watermark) and per-entity history; built after a first load,
    # which is faster than keeping them up to date row by row.
    events.create_index([(timestamp, ASCENDING)], name=f"{timestamp}_1")
    events.create_index([(entity, ASCENDING), (timestamp, ASCENDING)], name=f"{entity}_1_{timestamp}_1")
    seconds = time.monotonic() - started
    say(lambda _: f"{checked.rows:,} rows in {seconds:.1f} s", done=True)
    return ImportReport(rows=checked.rows, inserted=inserted, already_there=checked.rows - inserted,
                        first_day=_day(checked.first), last_day=_day(checked.last), target=shown(source, db),
                        seconds=seconds, notes=notes, dropped=checked.dropped, removed=removed)


def _write(events, file: _File, rows: _Rows, pairs, occurrence, checked: _Checked, path: Path, say: _Progress, *,
           empty: bool, covered: dict | None) -> tuple[int, int]:
    """Write the checked rows so that a failure leaves `events` exactly as it was; returns (rows that were new, rows
    of the covered days removed).

    Into an empty (or absent) collection: every batch goes to a staging collection of the same database, which is
    renamed onto the target in one step once complete (a crash leaves only the staging collection, removed by the
    next import). Into a collection that holds events: the rows not there yet are inserted, and a failure removes
    every row this import inserted (their ids are known: a row's id is its content) before reporting it. Replacing
    the `covered` days: the staging collection gets the events outside those days (copied inside the server), the
    file's rows and the collection's indexes, and is renamed over it in one step."""
    database = events.database
    for stale in database.list_collection_names(filter={"name": {"$regex": f"^{STAGING_PREFIX}"}}):
        if stale.startswith(f"{STAGING_PREFIX}{events.name}."):
            database.drop_collection(stale)  # left by an import that crashed
    staged = empty or covered is not None
    target = database[f"{STAGING_PREFIX}{events.name}.{uuid.uuid4().hex[:12]}"] if staged else events
    total = checked.rows
    written: list[str] = []
    inserted = offset = kept = replaced = 0
    try:
        if covered is not None:
            before = events.count_documents({})
            replaced = events.count_documents(covered)
            events.aggregate([{"$match": {"$nor": [covered]}}, {"$out": target.name}])
            say(lambda _: f"kept {before - replaced:,} rows outside the replaced days", done=True)
        for number, batch in enumerate(file.batches()):
            if number in checked.kept_rows:
                batch = batch.filter(pa.array(checked.kept_rows[number]))
            elements, _, _ = rows.elements(batch)
            ids = _id_array(pairs[offset:offset + batch.num_rows], occurrence[offset:offset + batch.num_rows])
            present = [elements[name] for name in rows.order if name in elements]
            docs = [RawBSONDocument(doc) for doc in bson_rows.documents(ids, present).to_pylist()]
            offset += batch.num_rows
            new = _insert(target, docs, path)
            if covered is not None:  # rows the replaced days already held, unchanged
                kept += events.count_documents({"_id": {"$in": new}, **covered})
            inserted += len(new)
            if not staged:
                written.extend(new)
            say(lambda seconds: f"wrote {offset:,} of {total:,} rows ({offset / total:.0%}), "
                                f"{offset / max(seconds, 1e-9):,.0f} rows/s")
        if covered is not None:
            for index in events.list_indexes():  # published with the indexes it had, never unindexed
                if index["name"] != "_id_":
                    options = {k: v for k, v in index.items() if k not in ("key", "v", "ns")}
                    target.create_index(list(index["key"].items()), **options)
            if events.count_documents({}) != before:
                raise ImportFailed(f"{path}: {database.name}.{events.name} received events while the file was "
                                   "imported; import again (nothing was written)")
            target.rename(events.name, dropTarget=True)
        elif empty:
            if events.name in database.list_collection_names(filter={"name": events.name}):
                if events.find_one({}, {"_id": 1}) is not None:
                    raise ImportFailed(f"{path}: {database.name}.{events.name} received events while the file was "
                                       "imported; import again (nothing was written)")
                events.drop()
            target.rename(events.name)
    except BaseException as exc:
        if staged:
            with contextlib.suppress(PyMongoError):
                target.drop()
        else:
            for i in range(0, len(written), 10_000):
                with contextlib.suppress(PyMongoError):
                    events.delete_many({"_id": {"$in": written[i:i + 10_000]}})
        if isinstance(exc, PyMongoError):
            raise ImportFailed(f"{path}: MongoDB failed during the write ({exc}); nothing of this file was "
                               "kept, the collection is as it was") from None
        raise
    return inserted - kept, replaced - kept


DAY_MS = 86_400_000


def _day(millis: int | None) -> dt.date | None:
    return None if millis is None else (EPOCH + dt.timedelta(milliseconds=millis)).date()


def _raw_id(doc: RawBSONDocument) -> str:
    """The `_id` of a document import built (a string, its first element), read from the bytes: `doc["_id"]` would
    decode the whole document into a dict and keep it (a batch's documents would take several times their size)."""
    raw = doc.raw
    if raw[4] == 0x02 and raw[5:9] == b"_id\x00":
        size = int.from_bytes(raw[9:13], "little")
        return raw[13:13 + size - 1].decode()
    return doc["_id"]


def _insert(events, docs: list[RawBSONDocument], path: Path) -> list[str]:
    """Insert a batch; rows already there (same _id) are skipped. Returns the ids that were new."""
    if not docs:
        return []
    ids = [_raw_id(doc) for doc in docs]
    try:
        events.insert_many(docs, ordered=False)
        return ids
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [error for error in errors if error.get("code") != DUPLICATE_KEY]
        if other:
            raise ImportFailed(f"{path}: MongoDB refused a row ({other[0].get('errmsg')}); nothing of this file was "
                               "kept, the collection is as it was") from None
        there = {error["index"] for error in errors}
        return [doc_id for i, doc_id in enumerate(ids) if i not in there]
