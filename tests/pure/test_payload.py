"""Parsing `/predict` bodies into a feature matrix, without a server: statuses and messages of every refusal."""

import json

import numpy as np
import pytest

from mining_platform.serving.payload import BadRequest, EntitiesRequest, RowsRequest, parse_body, rows_matrix

pytestmark = pytest.mark.fast

FEATURES = ("events", "spend", "is_member")
BOOLEAN = frozenset({"is_member"})


def refused(action) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        action()
    return caught.value


def test_rows_become_a_float_matrix_in_signature_order():
    parsed = parse_body(json.dumps({"rows": [{"spend": 2.5, "is_member": True, "events": 3},
                                             {"events": None, "spend": 0, "is_member": False}]}).encode(), max_rows=10)
    assert isinstance(parsed, RowsRequest)
    X = rows_matrix(parsed.rows, FEATURES, BOOLEAN)
    assert X.dtype == np.float64 and X.shape == (2, 3)
    np.testing.assert_array_equal(X[0], [3.0, 2.5, 1.0])
    assert np.isnan(X[1, 0]) and X[1, 1] == 0.0 and X[1, 2] == 0.0


def test_entities_may_be_strings_or_integers_but_nothing_else():
    parsed = parse_body(b'{"entities": ["u1", 42]}', max_rows=10)
    assert parsed == EntitiesRequest(["u1", 42])
    for bad in (True, 1.5, None, {"id": 1}):
        error = refused(lambda: parse_body(json.dumps({"entities": ["u1", bad]}).encode(), max_rows=10))
        assert error.status == 422 and error.args[0].startswith("entities[1]: an entity id is a string or an integer")


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "the body is not valid JSON"),
    (b"\xff\xfe", 400, "the body is not valid JSON"),
    (b"[1, 2]", 422, "got a JSON list"),
    (b'{"rows": [], "entities": []}', 422, 'exactly one of "rows" or "entities"'),
    (b'{"records": []}', 422, "unknown keys: records"),
    (b'{"rows": {"events": 1}}', 422, '"rows" must be a list, got a JSON dict'),
    (b'{"entities": []}', 422, '"entities" is empty'),
    (b'{"rows": [{"events": NaN}]}', 422, "NaN is not a JSON number"),
    (b'{"rows": [{"events": Infinity}]}', 422, "Infinity is not a JSON number"),
])
def test_malformed_bodies_are_refused_naming_the_problem(body, status, message):
    error = refused(lambda: parse_body(body, max_rows=10))
    assert error.status == status and message in str(error)


def test_a_batch_over_the_limit_is_413():
    error = refused(lambda: parse_body(json.dumps({"entities": list(range(11))}).encode(), max_rows=10))
    assert error.status == 413 and '"entities" has 11 items; at most 10 per request' in str(error)


@pytest.mark.parametrize("row, message", [
    ({"events": 1, "spend": 2}, "rows[0]: missing features: is_member"),
    ({"events": 1, "spend": 2, "is_member": True, "extra": 0}, "rows[0]: unknown features: extra"),
    ({"events": "3", "spend": 2, "is_member": True}, "rows[0].events: expected a number or null, got '3'"),
    ({"events": True, "spend": 2, "is_member": True}, "rows[0].events: expected a number or null, got True"),
    ({"events": 1, "spend": 2, "is_member": 1}, "rows[0].is_member: expected true or false or null, got 1"),
    ({"events": 10 ** 400, "spend": 2, "is_member": True}, "0000 is outside the range of a 64-bit float"),
    ({"events": 1e308 * 10, "spend": 2, "is_member": True}, "rows[0].events: inf is outside the range"),
])
def test_rows_must_hold_exactly_the_model_features_with_their_types(row, message):
    error = refused(lambda: rows_matrix([row], FEATURES, BOOLEAN))
    assert error.status == 422 and message in str(error)


def test_a_row_that_is_not_an_object_is_refused():
    error = refused(lambda: rows_matrix([[1, 2, True]], FEATURES, BOOLEAN))
    assert error.status == 422 and "rows[0] must be an object of feature values, got a JSON list" in str(error)


@pytest.mark.parametrize(("body", "status", "message"), [
    # The inputs that once answered 500: nesting under 200 KB, an integer over 4,300 digits, an id beyond int64.
    (b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
    (b'{"rows": [{"events": ' + b"7" * 5000 + b"}]}", 422, "an integer of 5000 digits; at most 40"),
    (b'{"entities": [-9223372036854775809]}', 422, "entities[0]: -9223372036854775809 is beyond the 64-bit"),
])
def test_hostile_bodies_are_refused_with_a_4xx(body, status, message):
    with pytest.raises(BadRequest) as refused:
        parse_body(body, max_rows=1000)
    assert refused.value.status == status and message in str(refused.value)
    assert parse_body(b'{"entities": [9223372036854775807, "u1"]}', max_rows=10).entities[0] == 2 ** 63 - 1
