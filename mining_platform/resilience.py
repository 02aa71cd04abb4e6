"""The retry policy every asset shares, and how a step's failure reaches it.

A passing outage (`mining_platform.transient`) is retried with exponential backoff;
anything else (bad configuration, a refused promotion, immature labels, a bug) fails
at once, because running it again gives the same answer.
"""

import contextlib
from collections.abc import Iterator

import dagster as dg

from mining_platform import settings
from mining_platform.transient import is_transient


def retry_policy() -> dg.RetryPolicy:
    """MINING_STEP_RETRIES attempts more, waiting MINING_STEP_RETRY_DELAY_SECONDS, then twice that, … (±jitter)."""
    return dg.RetryPolicy(
        max_retries=settings.int_setting("MINING_STEP_RETRIES"),
        delay=settings.int_setting("MINING_STEP_RETRY_DELAY_SECONDS"),
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def permanent(description: str, **metadata) -> dg.Failure:
    """A failure that retrying cannot fix: it bypasses the retry policy."""
    return dg.Failure(description=description, metadata=metadata or None, allow_retries=False)


def failure(description: str, cause: BaseException, **metadata) -> dg.Failure:
    """A failure retried only when `cause` was a passing outage."""
    return dg.Failure(description=description, metadata=metadata or None, allow_retries=is_transient(cause))


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
