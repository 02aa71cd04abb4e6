"""The retry policy every asset shares, and how a step's failure reaches it.

A passing outage (`mining_platform.transient`) is retried with exponential backoff;
anything else (bad configuration, a refused promotion, immature labels, a bug) fails
at once, because running it again gives the same answer.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator

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


def unpublished(context: dg.AssetExecutionContext, outcomes: list, *, what: str, keeps: str, metadata: dict,
                recorded: Callable[[object], dict], then: Iterable = ()) -> Iterator:
    """The end of a partition run in which some partitions did not publish, for an asset to `yield from`: one
    materialisation per partition that did (its metadata from `recorded`), then `then` (check results), then the
    failure naming the others, retried only when every one of them failed on a passing outage (a refused or
    broken partition fails for good).

    `outcomes` are the loop's partition outcomes (`committed`, `partition`, `error`, `transient`)."""
    failed = [o for o in outcomes if not o.committed]
    for outcome in outcomes:
        if outcome.committed:
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=outcome.partition,
                                          metadata=recorded(outcome))
    yield from then
    # A refusal's message already starts with its partition.
    lines = "\n".join(f"- {o.error}" if (o.error or "").startswith(o.partition) else f"- {o.partition}: {o.error}"
                      for o in failed)
    raise dg.Failure(description=f"{len(failed)} of {len(outcomes)} {what} were not published ({keeps}):\n{lines}",
                     metadata=metadata, allow_retries=all(o.transient for o in failed))
