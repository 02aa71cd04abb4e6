"""Event times of an imported file as UTC milliseconds: ISO 8601 (Arrow's parser, row by row where it cannot) or
a strptime format; why a value is not one."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mining_platform.sources import bson_rows
from mining_platform.sources.import_file import ImportFailed


def parse_text(values: pa.Array, fmt: str | None) -> tuple[pa.Array, list[int]]:
    """Text event times as UTC timestamps; the rows that did not parse."""
    if fmt is not None:
        try:
            parsed = pc.strptime(values, format=fmt, unit="ms", error_is_null=True)
        except pa.ArrowInvalid as exc:
            raise ImportFailed(f"--timestamp-format {fmt!r}: {exc}") from None
        parsed = parsed.cast(bson_rows.UTC_MS)  # a naive result is UTC; a zoned one (%z) is converted
    else:
        parsed = iso_times(values)
    unparsed = pc.and_(pc.is_valid(values), pc.is_null(parsed))
    return parsed, pc.indices_nonzero(unparsed).to_pylist()


def iso_times(values: pa.Array) -> pa.Array:
    """ISO 8601 text as UTC: Arrow's parser for a batch that is all zoned or all zone-less, else row by row."""
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            return bson_rows.utc_ms(pc.cast(values, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    millis = [iso_millis(value) for value in values.to_pylist()]
    valid = np.array([value is not None for value in millis], dtype=bool)
    return bson_rows.numbers(np.array([value or 0 for value in millis], dtype=np.int64), pa.int64(),
                             valid).cast(bson_rows.UTC_MS)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def iso_parse(text: str) -> dt.datetime | None:
    """ISO 8601 text as written (zoned or not), or None."""
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def iso_millis(text: str | None) -> int | None:
    """ISO 8601 text as UTC milliseconds since 1970."""
    value = None if text is None else iso_parse(text)
    if value is None:
        return None
    try:
        value = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    except OverflowError:  # a zoned time that is before year 1 (or after 9999) in UTC
        return None
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def event_times(values: pa.Array, fmt: str | None, name: str) -> tuple[pa.Array, list[int]]:
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type):
        return parse_text(values.cast(pa.string()), fmt)
    if fmt is not None:
        raise ImportFailed(f"column {name!r} is {values.type}, not text: --timestamp-format applies to text only")
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return bson_rows.utc_ms(values), []
    raise ImportFailed(f"column {name!r} is {values.type}: an event time must be a date, a timestamp or text "
                       "(for numbers such as 19970101 pass --timestamp-format %Y%m%d)")


def beyond_years(text) -> bool:
    """An ISO 8601 time that is valid where it was written but before year 1 or after 9999 in UTC."""
    value = iso_parse(str(text))
    if value is None or value.tzinfo is None:
        return False
    try:
        value.astimezone(dt.timezone.utc)
    except OverflowError:
        return True
    return False


def number_hint(value, fmt: str | None) -> str:
    """For a time written as digits (19970101, an epoch) read without a format: how to read it."""
    if fmt is None and isinstance(value, str) and value.strip().isdigit():
        return " (a number: pass --timestamp-format, e.g. %s for seconds since 1970 or %Y%m%d)"
    return ""


def scalar_ms(moment: dt.datetime) -> pa.Scalar:
    return bson_rows.scalar((moment - EPOCH) // dt.timedelta(milliseconds=1), pa.int64())
