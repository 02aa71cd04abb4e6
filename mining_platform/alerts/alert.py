"""One alert: which project, what happened (an event of `alerts.events`), a one-line title, what to read, and a
link to the run in the Dagster UI when a run is concerned."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from mining_platform.spec.alerts_config import EVENTS


@dataclass(frozen=True)
class Alert:
    project: str
    event: str  # one of mining_platform.spec.alerts_config.EVENTS
    title: str
    details: dict = field(default_factory=dict)  # JSON-safe facts: the run, the failed step, the error, versions
    url: str | None = None  # the run (or asset) in the Dagster UI
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    key: str = ""  # what makes it one alert: a receiver can drop a repeat with the same key

    def __post_init__(self):
        if self.event not in EVENTS:
            raise ValueError(f"unknown alert event {self.event!r}; one of {', '.join(EVENTS)}")

    def to_json(self) -> dict:
        return {"project": self.project, "event": self.event, "title": self.title, "details": self.details,
                "url": self.url, "time": self.time.isoformat(), "key": self.key or f"{self.project}:{self.event}"}

    def body(self) -> bytes:
        """The webhook's body: canonical JSON (sorted keys), the bytes the signature covers."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), default=str).encode()

    def text(self) -> str:
        """The alert as an email's or a log line's text."""
        lines = [f"[{self.project}] {self.title}", ""]
        lines += [f"{name}: {value}" for name, value in self.details.items()]
        if self.url:
            lines += ["", self.url]
        return "\n".join(lines)
