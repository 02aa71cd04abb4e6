"""The serving records every endpoint replica converges on, and what each replica reports back (docs/production.md).

Both live in the project's namespace:

- `serving_desired`: one document per role, `_id` `champion` or `challenger`:
  `{version (null: run none), model, set_at, set_by, reason}`. `<p>/deployment` writes it
  (the champion sensor and rollbacks go through that asset); every replica watches the
  collection (a change stream, with polling as the fallback) and hot-reloads on its own.
- `serving_replicas`: one heartbeat per replica, `_id` the replica's id:
  `{replica, host, pid, started_at, at, interval_seconds, champion, challenger, errors}`, where
  `champion`/`challenger` are `{version, loaded_at}` or null, and `errors.<role>` is the latest
  failed load `{version, error, at}` or null. A replica is live while `at` is within
  `LIVE_INTERVALS` of its own heartbeat interval; documents expire a day after their last beat.

The deployer and the endpoint meet only through these documents and this module: neither imports the other.
"""

import datetime as dt
from dataclasses import dataclass

from mining_platform.spec.clock import as_utc
from mining_platform.spec.names import CHALLENGER, CHAMPION, ROLES

LIVE_INTERVALS = 3  # a replica silent for this many of its heartbeat intervals is taken as gone
EXPIRE_SECONDS = 24 * 3600  # TTL of a heartbeat document after its last beat


def desired_document(role: str, *, version: str | None, model: str, set_by: str, reason: str,
                     now: dt.datetime) -> dict:
    """`set_at` is kept to the millisecond, as MongoDB stores it: a replica's failed load names the record it tried
    by this time, and the deployer compares the two exactly (no clocks compared)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    set_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    return {"_id": role, "version": version, "model": model, "set_at": set_at, "set_by": set_by, "reason": reason}


@dataclass(frozen=True)
class Served:
    version: str | None
    loaded_at: str | None = None


@dataclass(frozen=True)
class LoadError:
    version: str | None
    error: str
    at: dt.datetime | None = None
    record_at: dt.datetime | None = None  # the `set_at` of the record it tried to follow (None: an alias)


@dataclass(frozen=True)
class Heartbeat:
    replica: str
    host: str
    at: dt.datetime
    interval_seconds: float
    served: dict[str, Served]  # role -> what it serves
    errors: dict[str, LoadError]  # role -> its latest failed load (absent: none since the last success)

    def live(self, now: dt.datetime) -> bool:
        return (now - self.at).total_seconds() <= LIVE_INTERVALS * self.interval_seconds

    def version(self, role: str) -> str | None:
        served = self.served.get(role)
        return served.version if served else None


def heartbeat_document(replica: str, *, host: str, pid: int, started_at: dt.datetime, now: dt.datetime,
                       interval_seconds: float, served: dict[str, Served], errors: dict[str, LoadError]) -> dict:
    return {
        "_id": replica, "replica": replica, "host": host, "pid": pid, "started_at": started_at, "at": now,
        "interval_seconds": interval_seconds,
        **{role: ({"version": s.version, "loaded_at": s.loaded_at} if (s := served.get(role)) and s.version else None)
           for role in ROLES},
        "errors": {role: ({"version": e.version, "error": e.error, "at": e.at, "record_at": e.record_at}
                          if (e := errors.get(role)) else None) for role in ROLES},
    }


def parse_heartbeat(document: dict) -> Heartbeat:
    """A heartbeat as the deployer reads it (tolerant of missing fields: an older replica's document)."""
    served = {role: Served(document[role].get("version"), document[role].get("loaded_at"))
              for role in (CHAMPION, CHALLENGER) if isinstance(document.get(role), dict)}
    errors = {role: LoadError(error.get("version"), str(error.get("error")), error.get("at"),
                              as_utc(error["record_at"]) if error.get("record_at") else None)
              for role, error in (document.get("errors") or {}).items() if isinstance(error, dict)}
    return Heartbeat(replica=str(document.get("replica", document["_id"])), host=str(document.get("host", "?")),
                     at=as_utc(document["at"]), interval_seconds=float(document.get("interval_seconds", 5.0)),
                     served=served, errors=errors)
