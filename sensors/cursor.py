"""Sensor cursors as JSON: readable in the UI, and a missing or foreign cursor starts over instead of failing."""

import dataclasses
import json
import logging


def load_cursor(cls, raw: str | None, log: logging.Logger | None = None):
    """An instance of the dataclass `cls` from its JSON; the defaults when the cursor is empty or unreadable."""
    if not raw:
        return cls()
    try:
        data = json.loads(raw)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})
    except (ValueError, TypeError) as exc:
        if log:
            log.warning(f"unreadable cursor {raw!r} ({exc}); starting over")
        return cls()


def dump_cursor(cursor) -> str:
    return json.dumps(dataclasses.asdict(cursor), sort_keys=True)
