"""Which step failures are worth retrying, and the retry policy every asset shares.

A lost connection to MongoDB or MLflow, an election in the replica set, or the endpoint
restarting pass: the step is retried with exponential backoff. Anything else (bad
configuration, a refused promotion, immature labels, a bug) fails at once, because
running it again gives the same answer.
"""

import contextlib
from collections.abc import Iterator

import dagster as dg
import httpx
import requests
from mlflow.exceptions import MlflowException
from pymongo.errors import ConnectionFailure, PyMongoError

from mining_platform import settings
from mining_platform.resources.endpoint import EndpointError

# Error labels MongoDB puts on errors that a retry of the operation or transaction may clear.
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "RetryableError")
# MLflow's REST error codes for a server that is busy or briefly broken.
TRANSIENT_MLFLOW_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


def retry_policy() -> dg.RetryPolicy:
    """MINING_STEP_RETRIES attempts more, waiting MINING_STEP_RETRY_DELAY_SECONDS, then twice that, … (±jitter)."""
    return dg.RetryPolicy(
        max_retries=settings.int_setting("MINING_STEP_RETRIES"),
        delay=settings.int_setting("MINING_STEP_RETRY_DELAY_SECONDS"),
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def _is_transient_itself(error: BaseException) -> bool:
    if isinstance(error, ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, ...
        return True
    if isinstance(error, PyMongoError):
        return any(error.has_error_label(label) for label in TRANSIENT_LABELS)
    if isinstance(error, EndpointError):
        return error.transient
    if isinstance(error, MlflowException):
        return error.error_code in TRANSIENT_MLFLOW_CODES
    return isinstance(error, (requests.ConnectionError, requests.Timeout, httpx.TransportError, ConnectionError,
                              TimeoutError))


def is_transient(error: BaseException) -> bool:
    """True when the error, or one it was raised from or while handling, is a passing outage.

    MLflow's client raises MlflowException("API request … failed with exception …") while
    handling the connection error, so the cause is found on the chain, not the type.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if _is_transient_itself(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def permanent(description: str, **metadata) -> dg.Failure:
    """A failure that retrying cannot fix: it bypasses the retry policy."""
    return dg.Failure(description=description, metadata=metadata or None, allow_retries=False)


@contextlib.contextmanager
def failures_classified() -> Iterator[None]:
    """Inside an asset: let transient errors reach the retry policy; fail everything else at once.

    A `dg.Failure` raised in the block keeps its own `allow_retries`.
    """
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise permanent(f"{type(exc).__name__}: {exc}") from exc
