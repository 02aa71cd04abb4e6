"""Which failures are passing outages: a lost connection to MongoDB, MLflow or the endpoint,
an election in the replica set, a server briefly overloaded.

The partition loop records it on a failed partition; the Dagster layer retries such
steps with backoff (`assets.resilience`) and fails everything else at once,
because running it again gives the same answer.
"""

import sys

from pymongo.errors import ConnectionFailure, PyMongoError

# Error labels MongoDB puts on errors that a retry of the operation or transaction may clear.
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "RetryableError")
# MLflow's REST error codes for a server that is busy or briefly broken.
TRANSIENT_MLFLOW_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


class ClassifiedError(RuntimeError):
    """An error raised by the platform that knows whether trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def _loaded(module: str, *names: str) -> tuple[type, ...]:
    """The exception classes `names` of `module` if it is loaded: an error can only be an instance of a class whose
    module was imported, so classifying never imports MLflow, requests or httpx (the code location stays light)."""
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, name) for name in names) if loaded is not None else ()


def _is_transient_itself(error: BaseException) -> bool:
    if isinstance(error, ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, ...
        return True
    if isinstance(error, PyMongoError):
        return any(error.has_error_label(label) for label in TRANSIENT_LABELS)
    if isinstance(error, ClassifiedError):
        return error.transient
    if isinstance(error, _loaded("mlflow.exceptions", "MlflowException")):
        return error.error_code in TRANSIENT_MLFLOW_CODES
    return isinstance(error, (*_loaded("requests", "ConnectionError", "Timeout"), *_loaded("httpx", "TransportError"),
                              ConnectionError, TimeoutError))


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
