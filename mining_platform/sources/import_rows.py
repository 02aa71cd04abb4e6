"""The first pass of an import: every row of every batch checked (entity, event time in range, values MongoDB
stores as written), each good row's content digest kept; bad rows named by line, or left out and listed."""

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mining_platform.sources import bson_rows
from mining_platform.sources.import_file import EventFile, ImportFailed
from mining_platform.sources.import_times import beyond_years, event_times, number_hint, scalar_ms

PROGRESS_SECONDS = 5.0
SHOWN_PROBLEMS = 20


class Progress:
    def __init__(self, say: Callable[[str], None] | None, name: str):
        self.say, self.name, self.started, self.last = say, name, time.monotonic(), time.monotonic()

    def __call__(self, message: Callable[[float], str], *, done: bool = False) -> None:
        now = time.monotonic()
        if self.say is not None and (done or now - self.last >= PROGRESS_SECONDS):
            self.last = now
            self.say(f"{self.name}: {message(now - self.started)}")


@dataclass
class Checked:
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


class RowEncoding:
    """What the two passes share: the file's columns, and how each becomes BSON."""

    def __init__(self, file: EventFile, schema: pa.Schema, entity: str, timestamp: str, fmt: str | None, source_key: str,
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
        times, unparsed = event_times(raw_times, self.fmt, self.timestamp)
        how = f"time in format {self.fmt!r}" if self.fmt else "ISO 8601 date or time"
        bad = {i: (f"{self.timestamp} {raw_times[i].as_py()!r} is outside years 1-9999 in UTC"
                   if beyond_years(raw_times[i].as_py()) else
                   f"{self.timestamp} {raw_times[i].as_py()!r} is not a {how}{number_hint(raw_times[i].as_py(), self.fmt)}")
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
                    for i, reason in lossy_numbers(name, column).items():
                        bad.setdefault(i, reason)
        return elements, times, bad


FLOAT_EXACT = 2.0**53  # integers beyond this are not all exact as float64


def lossy_numbers(name: str, column: pa.Array) -> dict[int, str]:
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


def check_rows(file: EventFile, columns: dict, progress: Progress, *, drop: bool) -> tuple[RowEncoding, Checked]:
    """The first pass: every row checked, each good row's content digest kept (16 bytes a row). With `drop`, the
    bad rows are recorded (line and reason) and left out instead of refusing the file."""
    rows, checked = None, Checked(drop=drop)
    for number, batch in enumerate(file.batches()):
        if rows is None:
            rows = RowEncoding(file, batch.schema, **columns)
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
