"""The promotion audit: every move of `champion` or `challenger`, who or what moved it, why and when (`promotions`).

One document per move, in the project's namespace, written by `<p>/deployment` whether the
move was served or rolled back:

`{project, model, role, from, to, at, moved_by: {kind, run_id, sensor, job}, reason, evidence,
outcome: served | restored, error, replicas, converge_seconds}`

`kind` is `deployment` (a run from the UI, a job, a retrain), `rollback`, `sensor` (a drift or
performance decision), or `hand` (the alias was moved outside the platform, in the MLflow UI
or by a script; the champion sensor noticed and had it deployed). `evidence` holds the
cause and the drift or performance figures the deciding sensor attached, and the version's
gate verdict.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from pymongo import DESCENDING
from pymongo.database import Database

from mining_platform.spec.names import PROMOTIONS
from mining_platform.spec.tags import CAUSE_TAG, DRIFT_TAG_PREFIX, PERFORMANCE_TAG_PREFIX, SENSOR_TAG

HAND_CAUSES = frozenset({"champion_moved", "challenger_moved"})  # the champion sensor's causes


@dataclass(frozen=True)
class MovedBy:
    kind: str  # deployment | rollback | sensor | hand
    run_id: str
    sensor: str | None = None
    job: str | None = None


def moved_by(run_tags: Mapping[str, str], *, run_id: str, job: str | None, rollback: bool) -> MovedBy:
    """Who moved the alias, from the run's tags and config."""
    sensor = run_tags.get(SENSOR_TAG)
    if run_tags.get(CAUSE_TAG) in HAND_CAUSES:
        kind = "hand"
    elif rollback:
        kind = "rollback"
    elif sensor:
        kind = "sensor"
    else:
        kind = "deployment"
    return MovedBy(kind=kind, run_id=run_id, sensor=sensor, job=job)


def evidence_of(run_tags: Mapping[str, str]) -> dict[str, str]:
    """The cause and the drift or performance figures a sensor attached to the run."""
    return {key: value for key, value in run_tags.items()
            if key == CAUSE_TAG or key.startswith((PERFORMANCE_TAG_PREFIX, DRIFT_TAG_PREFIX))}


@dataclass
class Promotion:
    project: str
    model: str
    role: str
    from_version: str | None
    to_version: str | None
    moved_by: MovedBy
    reason: str
    evidence: dict[str, str] = field(default_factory=dict)
    outcome: str = "served"  # served | restored
    error: str | None = None
    replicas: list[dict] = field(default_factory=list)
    converge_seconds: float | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def document(self) -> dict:
        return {"project": self.project, "model": self.model, "role": self.role, "from": self.from_version,
                "to": self.to_version, "at": self.at, "moved_by": asdict(self.moved_by), "reason": self.reason,
                "evidence": self.evidence, "outcome": self.outcome, "error": self.error, "replicas": self.replicas,
                "converge_seconds": self.converge_seconds}

    def summary(self) -> dict:
        """The document as the deployment's metadata shows it (times as text)."""
        return {**self.document(), "at": self.at.isoformat()}


def record(db: Database, promotion: Promotion) -> str:
    """Store one move; returns its id."""
    db[PROMOTIONS].create_index([("role", 1), ("at", DESCENDING)])
    return str(db[PROMOTIONS].insert_one(promotion.document()).inserted_id)


def history(db: Database, *, role: str | None = None, limit: int = 50) -> list[dict]:
    """The newest moves first (of one role, when named)."""
    query = {} if role is None else {"role": role}
    return list(db[PROMOTIONS].find(query, sort=[("at", DESCENDING)], limit=limit))
