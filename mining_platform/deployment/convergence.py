"""The deployer's side of the serving records (`mining_platform.spec.replicas`): name what every replica must serve,
then wait until every live replica reports it.

A replica is one endpoint process; behind a Kubernetes Service there are several, and
an HTTP call reaches only one of them. So `<p>/deployment` never calls them one by one:
it writes the record, and each replica loads the version on its own and says so in its
heartbeat. The wait ends when every live replica serves the version, or fails at once
naming a replica that could not load it (that replica keeps serving the old version).
"""

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymongo.database import Database
from pymongo.errors import PyMongoError

from mining_platform.spec.names import SERVING_DESIRED, SERVING_REPLICAS, endpoint_database_of
from mining_platform.spec.replicas import Heartbeat, desired_document, parse_heartbeat
from mining_platform.transient import ClassifiedError

NO_RECORD = object()  # a role without a serving record (the replicas follow its alias)


class ReplicasDidNotConverge(ClassifiedError):
    """Not every live replica serves the version: one failed to load it, or the wait ran out."""


@dataclass(frozen=True)
class Converged:
    replicas: list[Heartbeat]
    seconds: float

    def describe(self) -> list[dict]:
        return [{"replica": h.replica, "host": h.host, "version": h.version("champion"),
                 "challenger": h.version("challenger"), "at": h.at.isoformat()} for h in self.replicas]


class ServingRecords:
    """The serving records of one project's namespace."""

    def __init__(self, db: Database, model_name: str, *, now: Callable[[], dt.datetime] | None = None):
        self.db = db
        # The replicas' heartbeats, in the endpoint database beside the namespace (the endpoint writes only there).
        self.replicas = db.client[endpoint_database_of(db.name)][SERVING_REPLICAS]
        self.model_name = model_name
        self.now = now or (lambda: dt.datetime.now(dt.timezone.utc))

    def current(self, role: str):
        """The version the record of `role` names (None: none), or NO_RECORD."""
        document = self.db[SERVING_DESIRED].find_one({"_id": role})
        return NO_RECORD if document is None else document.get("version")

    def set(self, role: str, version: str | None, *, set_by: str, reason: str) -> dt.datetime:
        """Name the version every replica must serve as `role`; returns the record's time."""
        document = desired_document(role, version=version, model=self.model_name, set_by=set_by, reason=reason,
                                    now=self.now())
        try:
            self.db[SERVING_DESIRED].replace_one({"_id": role}, document, upsert=True)
        except PyMongoError as exc:
            raise ReplicasDidNotConverge(f"cannot write the serving record of {role} in {self.db.name}: {exc}",
                                         transient=True) from None
        return document["set_at"]

    def restore(self, role: str, before, *, set_by: str, reason: str) -> None:
        """Put the record of `role` back (NO_RECORD: remove it, the replicas follow the alias again)."""
        if before is NO_RECORD:
            self.db[SERVING_DESIRED].delete_one({"_id": role})
        else:
            self.set(role, before, set_by=set_by, reason=reason)

    def heartbeats(self) -> list[Heartbeat]:
        return [parse_heartbeat(document) for document in self.replicas.find()]

    def live(self) -> list[Heartbeat]:
        now = self.now()
        return sorted((h for h in self.heartbeats() if h.live(now)), key=lambda h: h.replica)

    def wait(self, role: str, version: str | None, *, since: dt.datetime, timeout_seconds: float,
             poll_seconds: float = 0.2) -> Converged:
        """Until every live replica serves `version` as `role` (None: runs no challenger).

        ReplicasDidNotConverge at once when a replica reports a failed load of `version` for the record set at
        `since` (the record's own time, so no two clocks are compared), and
        when the wait runs out (transient: no replica is live, e.g. the endpoint is restarting)."""
        started = time.monotonic()
        deadline = started + timeout_seconds
        while True:
            try:
                live = self.live()
            except PyMongoError as exc:
                raise ReplicasDidNotConverge(f"cannot read the replicas' heartbeats: {exc}", transient=True) from None
            for heartbeat in live:
                error = heartbeat.errors.get(role)
                if error is not None and error.version == version and error.record_at == since:
                    raise ReplicasDidNotConverge(
                        f"replica {heartbeat.replica} (host {heartbeat.host}) could not load version {version} as "
                        f"{role}: {error.error}. It keeps serving version {heartbeat.version(role) or 'none'}",
                        transient=False)
            behind = [h for h in live if h.version(role) != version]
            if live and not behind:
                return Converged(live, time.monotonic() - started)
            if time.monotonic() >= deadline:
                if not live:
                    raise ReplicasDidNotConverge(
                        f"no live endpoint replica reports to {self.replicas.database.name}.{SERVING_REPLICAS} (none wrote a "
                        f"heartbeat within {timeout_seconds:g} s): is the endpoint running, with this MongoDB, and "
                        f"may its user write there (`mining-platform provision`)? Its /health (admin) shows the "
                        f"replica's last heartbeat error",
                        transient=True)
                lagging = ", ".join(f"{h.replica} serves {h.version(role) or 'none'}" for h in behind)
                raise ReplicasDidNotConverge(
                    f"after {timeout_seconds:g} s, {len(behind)} of {len(live)} live replicas do not serve version "
                    f"{version} as {role}: {lagging}", transient=True)
            time.sleep(poll_seconds)
