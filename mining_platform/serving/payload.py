"""Validating `/predict` bodies into a feature matrix, with errors that name the problem.

This is the hot path: plain `json`, one pass over the values, one `np.array`; no
pydantic or pandas per request. `null` is a missing value (XGBoost routes it the way
it learned); NaN and Infinity are refused, since JSON has no such numbers and they
usually mean a broken upstream computation.
"""

import asyncio
import json
import math
from dataclasses import dataclass

import numpy as np


class BadRequest(ValueError):
    """A body the endpoint refuses: `status` is the HTTP code, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RowsRequest:
    rows: list[dict]


@dataclass(frozen=True)
class EntitiesRequest:
    entities: list[str | int]


JSON_TYPES = ("application/json",)


def require_json(content_type: str | None) -> None:
    """Only JSON bodies are scored: a form or text/plain post (what any web page can send cross-origin
    without asking) is refused with 415."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
        raise BadRequest(415, f"the body must be JSON, sent with Content-Type: application/json (got "
                              f"{content_type or 'no Content-Type'})")


MAX_REQUEST_KEY = 256


def request_key(header: str | None) -> str | None:
    """The caller's `X-Request-Key` (a user, session or order id): a canary answers the same key the same way."""
    if header is None:
        return None
    if not header.strip() or len(header) > MAX_REQUEST_KEY:
        raise BadRequest(422, f"X-Request-Key must have 1 to {MAX_REQUEST_KEY} characters (got {len(header)})")
    return header


def _refuse_constant(name: str):
    raise BadRequest(422, f"{name} is not a JSON number; send null for a missing value")


# Entity ids are BSON 64-bit integers at most; longer number literals are refused while parsing (Python would
# otherwise spend quadratic time on a 100 KB integer, or refuse it with a ValueError past 4,300 digits).
INT64 = (-(2 ** 63), 2 ** 63 - 1)
MAX_INTEGER_DIGITS = 40


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise BadRequest(422, f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_INTEGER_DIGITS}")
    return int(text)


def parse_body(body: bytes, *, max_rows: int) -> RowsRequest | EntitiesRequest:
    """The request's rows or entities; refuses malformed JSON, wrong shapes and oversized batches."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_int=_bounded_int)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(400, "the body is nested too deeply to be a request") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(422, f'the body must be an object {{"rows": [...]}} or {{"entities": [...]}}, '
                              f"got a JSON {type(data).__name__}")
    keys = set(data)
    if keys not in ({"rows"}, {"entities"}):
        unknown = sorted(keys - {"rows", "entities"})
        raise BadRequest(422, 'the body must have exactly one of "rows" or "entities"'
                              + (f"; unknown keys: {', '.join(unknown)}" if unknown else f", got {sorted(keys)}"))
    (key, items), = data.items()
    if not isinstance(items, list):
        raise BadRequest(422, f'"{key}" must be a list, got a JSON {type(items).__name__}')
    if not items:
        raise BadRequest(422, f'"{key}" is empty')
    if len(items) > max_rows:
        raise BadRequest(413, f'"{key}" has {len(items)} items; at most {max_rows} per request')
    if key == "entities":
        for i, entity in enumerate(items):
            if isinstance(entity, bool) or not isinstance(entity, str | int):
                raise BadRequest(422, f"entities[{i}]: an entity id is a string or an integer, got {entity!r}")
            if isinstance(entity, int) and not INT64[0] <= entity <= INT64[1]:
                raise BadRequest(422, f"entities[{i}]: {entity} is beyond the 64-bit integer range of an entity id")
        return EntitiesRequest(items)
    return RowsRequest(items)


def _out_of_range(value: int | float) -> bool:
    try:
        return not math.isfinite(float(value))
    except OverflowError:
        return True


def rows_matrix(rows: list[dict], features: tuple[str, ...], boolean_features: frozenset[str]) -> np.ndarray:
    """The rows as a float matrix in signature order; refuses missing, extra and mistyped features."""
    expected = set(features)
    values: list[list] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadRequest(422, f"rows[{i}] must be an object of feature values, got a JSON {type(row).__name__}")
        if row.keys() != expected:
            missing = sorted(expected - row.keys())
            extra = sorted(row.keys() - expected)
            problems = ([f"missing features: {', '.join(missing)}"] if missing else []) + (
                [f"unknown features: {', '.join(extra)}"] if extra else [])
            raise BadRequest(422, f"rows[{i}]: {'; '.join(problems)} (the model takes {', '.join(features)})")
        row_values = [row[name] for name in features]
        for name, value in zip(features, row_values):
            kind = type(value)
            # bool is an int subclass: a boolean is accepted only for a boolean column, and only there.
            if value is None or (kind is bool if name in boolean_features else kind is int or kind is float):
                continue
            expected_type = "true or false" if name in boolean_features else "a number"
            raise BadRequest(422, f"rows[{i}].{name}: expected {expected_type} or null, got {value!r}")
        values.append(row_values)
    try:
        X = np.array(values, dtype=np.float64)  # None becomes NaN, XGBoost's missing value
    except OverflowError:
        X = None
    if X is None or np.isinf(X).any():
        # JSON numbers beyond float range (1e999) parse as infinity; find the first for the message.
        for i, row in enumerate(values):
            for name, value in zip(features, row):
                if value is not None and _out_of_range(value):
                    raise BadRequest(422, f"rows[{i}].{name}: {value!r} is outside the range of a 64-bit float")
    return X


async def read_body(request, limit: int, timeout: float) -> bytes:
    """The body, at most `limit` bytes, arrived within `timeout` seconds: a client trickling a body cannot hold
    a connection (and its memory) for ever."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body has {declared} bytes; at most {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BadRequest(413, f"the body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(408, f"the body did not arrive within {timeout:g} s ({size} bytes so far)") from None
    return b"".join(chunks)
