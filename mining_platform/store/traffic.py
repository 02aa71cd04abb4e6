"""Bytes the server sends back to this process, per block of code (pymongo command monitoring).

The platform's promise is that feature data stays in the database; this is how a
materialisation shows it: the replies of its commands, encoded as they came off the wire.
"""

import contextlib
import contextvars
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import bson
from pymongo import monitoring


@dataclass
class ReplyBytes:
    """Reply bytes received while the meter was active, in total and per command name."""

    by_command: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_command.values())


_active: contextvars.ContextVar[tuple[ReplyBytes, ...]] = contextvars.ContextVar("mongo_reply_meters", default=())


class ReplyBytesListener(monitoring.CommandListener):
    """Adds each reply's encoded size to the meters active in the calling context."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        meters = _active.get()
        if meters:  # encode only when someone is measuring
            size = len(bson.encode(event.reply))
            for meter in meters:
                meter.by_command[event.command_name] += size

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


REPLY_BYTES_LISTENER = ReplyBytesListener()


@contextlib.contextmanager
def measure_reply_bytes() -> Iterator[ReplyBytes]:
    """Count reply bytes of the commands this thread sends through platform clients; meters nest."""
    meter = ReplyBytes()
    token = _active.set((*_active.get(), meter))
    try:
        yield meter
    finally:
        _active.reset(token)
