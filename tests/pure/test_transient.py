"""Which failures are passing outages (MongoDB, MLflow, the endpoint) and what the retry policy retries: nothing else."""

import itertools

import dagster as dg
import pytest
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, OperationFailure, PyMongoError

from assets.resilience import failures_classified, permanent
from mining_platform.deployment.endpoint import EndpointError
from mining_platform.tools.embedded_mongo import free_port
from mining_platform.transient import is_transient
from resources import EndpointResource
from tests.fixtures.errors import raised


def test_a_mongodb_server_that_is_down_is_transient():
    client = MongoClient(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", serverSelectionTimeoutMS=200)
    assert is_transient(raised(lambda: client.admin.command("ping")))


def test_mongodb_error_labels_decide_for_server_errors():
    assert is_transient(OperationFailure("primary stepped down", code=189, details={"errorLabels": ["RetryableWriteError"]}))
    assert is_transient(OperationFailure("write conflict", code=112, details={"errorLabels": ["TransientTransactionError"]}))
    assert not is_transient(OperationFailure("$merge failed: duplicate key", code=11000))
    assert not is_transient(PyMongoError("invalid pipeline"))


def test_endpoint_errors_are_transient_when_it_is_unreachable_or_answers_5xx():
    down = EndpointResource(url=f"http://127.0.0.1:{free_port()}", admin_token="t")
    assert is_transient(raised(lambda: down.health()))
    assert is_transient(EndpointError("answered 503", transient=True))
    assert not is_transient(EndpointError("answered 409: version 3 cannot be served"))


def test_a_cause_anywhere_on_the_chain_counts():
    def wrapped():
        try:
            raise AutoReconnect("connection reset")
        except AutoReconnect:
            raise dg.Failure(description="lost MongoDB") from None  # from None keeps __context__

    assert is_transient(raised(wrapped))
    assert not is_transient(ValueError("bad config"))


def test_failures_classified_fails_everything_but_outages_at_once():
    def inside(error):
        with failures_classified():
            raise error

    validation = raised(lambda: inside(ValueError("samples_from is after samples_to")))
    assert isinstance(validation, dg.Failure) and not validation.allow_retries
    assert "ValueError: samples_from is after samples_to" in validation.description
    outage = raised(lambda: inside(AutoReconnect("node is recovering")))
    assert isinstance(outage, AutoReconnect)
    own = dg.Failure(description="partitions failed on an outage", allow_retries=True)
    assert raised(lambda: inside(own)) is own
    assert not permanent("no champion").allow_retries


@pytest.mark.parametrize("error, attempts", [(AutoReconnect("primary stepped down"), 3), (ValueError("bad input"), 1)])
def test_the_retry_policy_retries_outages_only(error, attempts):
    counter = itertools.count(1)

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))  # the platform's policy, without its backoff
    def flaky() -> None:
        with failures_classified():
            next(counter)
            raise error

    result = dg.materialize([flaky], raise_on_error=False)
    assert not result.success
    assert next(counter) - 1 == attempts
