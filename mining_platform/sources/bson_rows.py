"""Arrow record batches as BSON documents, built column by column: no Python object per value.

A column becomes one Arrow binary array of BSON elements (type byte, field name, value),
null where the value is null; a row's document is those elements joined, with its `_id`
first. Nested columns (structs, lists and maps from JSON lines) are the one exception:
their values are encoded one by one with pymongo's BSON encoder.

The same elements, joined in field-name order, are the row's canonical content: two
rows are the same event exactly when those bytes are equal, whatever the column order.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bson import encode
from bson.errors import InvalidDocument

BYTES = pa.large_binary()
UTC_MS = pa.timestamp("ms", tz="UTC")
INT64_MAX = 2**63 - 1


# Arrays and scalars are built from buffers, never converted from Python values: any such conversion
# (pa.array, pa.scalar) makes pyarrow import pandas to check its types, 60 MB for nothing here.
def numbers(values: np.ndarray, kind: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """A numpy array as an Arrow array of `kind` (same width), null where `valid` is False."""
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.Array.from_buffers(kind, len(values), [bitmap, pa.py_buffer(np.ascontiguousarray(values).tobytes())])


def binaries(values: list[bytes | None]) -> pa.Array:
    """Python bytes (or None) as a large_binary array."""
    sizes = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    data = pa.py_buffer(b"".join(v for v in values if v is not None))
    return pa.Array.from_buffers(BYTES, len(values), [pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()),
                                                      pa.py_buffer(offsets.tobytes()), data])


def values(column: pa.Array, dtype: str) -> np.ndarray:
    """The values of a null-free fixed-width array (of `dtype`'s width), without a copy."""
    buffer = pc.fill_null(column, scalar(0, column.type)) if column.null_count else column
    return np.frombuffer(buffer.buffers()[1], dtype=dtype, count=len(buffer) + buffer.offset)[buffer.offset:]


def scalar(value: int | bytes | None, kind: pa.DataType = BYTES) -> pa.Scalar:
    if value is None:
        return pa.nulls(1, kind)[0]
    if isinstance(value, bytes):
        return binaries([value]).cast(kind)[0]
    return numbers(np.array([value], dtype=np.int64), pa.int64())[0].cast(kind)


# Python (and so pymongo, reading the document back) holds years 1–9999 only.
FIRST_MS, LAST_MS = scalar(-62135596800000, pa.int64()), scalar(253402300799999, pa.int64())
EMPTY, NUL, NO_BYTES = scalar(b""), scalar(b"\x00"), scalar(None)
FALSE = numbers(np.zeros(1, dtype=np.uint8), pa.uint8()).cast(pa.bool_())[0]


class UnstorableColumn(ValueError):
    """A column of a type BSON has no faithful home for."""


@dataclass(frozen=True)
class Elements:
    """One column's BSON elements; `bad` maps row → why that row's value cannot be stored."""

    values: pa.Array
    bad: dict[int, str]


def _fixed(values: np.ndarray) -> pa.Array:
    """A numpy array of fixed-width little-endian values as one binary value per element."""
    width = values.dtype.itemsize
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values.tobytes())])
    return fixed.cast(BYTES)


def _with_nulls_of(elements: pa.Array, column: pa.Array) -> pa.Array:
    if column.null_count == 0:
        return elements
    return pc.if_else(pc.is_valid(column), elements, NO_BYTES)


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, EMPTY)


def _head(kind: bytes, name: str) -> pa.Scalar:
    return scalar(kind + name.encode() + b"\x00")


def _numbers(kind: bytes, name: str, column: pa.Array, dtype: str) -> pa.Array:
    filled = values(column, dtype)
    return _with_nulls_of(_join(_head(kind, name), _fixed(filled)), column)


def _text(name: str, column: pa.Array) -> pa.Array:
    data = column.cast(BYTES)
    sizes = (values(pc.binary_length(data), "<i8") + 1).astype("<i4")
    return _join(_head(b"\x02", name), _fixed(sizes), data, NUL)


def _binary(name: str, column: pa.Array) -> pa.Array:
    data = column.cast(BYTES)
    sizes = values(pc.binary_length(data), "<i8").astype("<i4")
    return _join(_head(b"\x05", name), _fixed(sizes), NUL, data)


def utc_ms(column: pa.Array) -> pa.Array:
    """Timestamps (a zone-less one is UTC) or dates as UTC milliseconds (timestamp[ms, UTC])."""
    if pa.types.is_date(column.type):
        return column.cast(pa.timestamp("ms")).cast(UTC_MS)
    naive = column if column.type.tz is None else column.cast(pa.timestamp(column.type.unit))
    return pc.cast(naive, pa.timestamp("ms"), safe=False).cast(UTC_MS)


def out_of_range(times: pa.Array) -> list[int]:
    """Rows of a timestamp[ms] column outside years 1–9999."""
    millis = times.cast(pa.int64())
    outside = pc.or_(pc.less(millis, FIRST_MS), pc.greater(millis, LAST_MS))
    return pc.indices_nonzero(pc.fill_null(outside, FALSE)).to_pylist()


def _times(name: str, column: pa.Array) -> Elements:
    times = utc_ms(column)
    bad = {i: f"{name} is outside years 1-9999" for i in out_of_range(times)}
    return Elements(_numbers(b"\x09", name, times.cast(pa.int64()), "<i8"), bad)


def _nested(name: str, column: pa.Array) -> Elements:
    out, bad = [], {}
    for i, value in enumerate(column.to_pylist()):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(encode({name: value})[4:-1])
        except (InvalidDocument, OverflowError) as exc:
            out.append(None)
            bad[i] = f"{name} cannot be stored in MongoDB ({exc})"
    return Elements(binaries(out), bad)


def _integers(name: str, column: pa.Array) -> Elements:
    bad = {}
    if pa.types.is_uint64(column.type):
        too_big = pc.fill_null(pc.greater(column, scalar(INT64_MAX, pa.uint64())), FALSE)
        bad = {i: f"{name} {column[i].as_py()} is above 2^63-1, the largest integer MongoDB stores"
               for i in pc.indices_nonzero(too_big).to_pylist()}
        if bad:
            column = pc.if_else(too_big, scalar(0, pa.uint64()), column)
    return Elements(_numbers(b"\x12", name, column.cast(pa.int64()), "<i8"), bad)


def encoder(field: pa.Field) -> Callable[[pa.Array], Elements] | None:
    """How to turn a column of this field into BSON elements; None for a column that is always null."""
    name, kind = field.name, field.type
    if pa.types.is_dictionary(kind):
        inner = encoder(pa.field(name, kind.value_type))
        return None if inner is None else (lambda column: inner(column.dictionary_decode()))
    if pa.types.is_null(kind):
        return None
    if pa.types.is_boolean(kind):
        return lambda column: Elements(_numbers(b"\x08", name, column.cast(pa.uint8()), "u1"), {})
    if pa.types.is_integer(kind):
        return lambda column: _integers(name, column)
    if pa.types.is_floating(kind):
        return lambda column: Elements(_numbers(b"\x01", name, column.cast(pa.float64()), "<f8"), {})
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return lambda column: Elements(_with_nulls_of(_text(name, column), column), {})
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return lambda column: Elements(_with_nulls_of(_binary(name, column), column), {})
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return lambda column: _times(name, column)
    if pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        return lambda column: _nested(name, column)
    raise UnstorableColumn(
        f"column {name!r} is {kind}: import stores text, integers, floats, booleans, dates, timestamps, binary "
        "and nested JSON; convert it in the file (for example decimals to float or text)")


def documents(ids: pa.Array, elements: list[pa.Array]) -> pa.Array:
    """Whole BSON documents, `_id` (text) first, then `elements` in order, skipping null ones."""
    body = pc.binary_join_element_wise(_text("_id", ids), *elements, EMPTY, null_handling="skip")
    sizes = (values(pc.binary_length(body), "<i8") + 5).astype("<i4")
    return _join(_fixed(sizes), body, NUL)


def content(elements: list[pa.Array], length: int) -> pa.Array:
    """Each row's canonical content: its non-null elements, given in field-name order."""
    if not elements:
        return binaries([b""] * length)
    return pc.binary_join_element_wise(*elements, EMPTY, null_handling="skip")
