"""Reading an import's file: CSV, Parquet or JSON lines as a stream of record batches, column types inferred
from its head (or the whole file, refusing a column whose values change kind), the event time kept as text."""

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

BLOCK_BYTES = 1 << 20  # CSV and JSON are read in blocks of this size …


SAMPLE_BYTES = 4 << 20  # … with column types inferred from the file's first this many bytes


PARQUET_ROWS = 65_536


FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json",
           ".json": "json"}


class ImportFailed(ValueError):
    """The file cannot be imported as it is; the message names the file, and the lines at fault."""


class Unreadable(ImportFailed):
    """The reader gave up (for CSV and JSON, possibly a column whose later rows do not fit its inferred type)."""


class EventFile:
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
            raise Unreadable(f"{self.path}: cannot read it as {self.kind}: {exc}") from None

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
                return text_times_of_day(csv.read_csv(pa.BufferReader(head), convert_options=csv.ConvertOptions(
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
        self.schema = (text_times_of_day(table.schema) if self.kind == "csv"
                       else self._json_times_as_text(table.schema))

    def _json_times_as_text(self, schema: pa.Schema) -> pa.Schema:
        """JSON event times Arrow read as timestamps stay text (numbers stay numbers: refused by name later)."""
        if self.timestamp in schema.names and pa.types.is_timestamp(schema.field(self.timestamp).type):
            index = schema.get_field_index(self.timestamp)
            return schema.set(index, pa.field(self.timestamp, pa.string()))
        return schema


def text_times_of_day(schema: pa.Schema) -> pa.Schema:
    """A CSV column of times of day ("10:30:00", inferred as time32) stays text: BSON has no time-of-day type."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_time(f.type) else f for f in schema])


def widens(before: pa.DataType, after: pa.DataType) -> bool:
    return (before == after or pa.types.is_null(before)
            or (pa.types.is_integer(before) and pa.types.is_floating(after)))


def refuse_mixed_types(file: EventFile, head: pa.Schema) -> None:
    """ImportFailed naming the first line of each column whose values changed kind after the file's head."""
    from pyarrow import csv

    whole = file.schema
    changed = [(f.name, f.type, whole.field(f.name).type) for f in head
               if f.name in whole.names and not widens(f.type, whole.field(f.name).type)]
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
