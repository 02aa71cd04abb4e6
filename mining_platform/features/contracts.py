"""Feature contracts (`features:` of a definition), evaluated in the database in one pass."""

import datetime as dt
from dataclasses import dataclass, field

from pymongo.database import Database

from mining_platform.features.definition import FeatureContract, FeatureDefinition


@dataclass(frozen=True)
class FeatureCheck:
    """One feature's contract over one run's documents."""

    feature: str
    documents: int
    nulls: int
    wrong_type: int
    below_min: int
    above_max: int
    observed_min: float | None
    observed_max: float | None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def null_rate(self) -> float:
        return self.nulls / self.documents if self.documents else 0.0


def _missing(path: str) -> dict:
    return {"$in": [{"$type": path}, ["missing", "null"]]}


def _count(condition: dict) -> dict:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def _measures(name: str, contract: FeatureContract) -> dict:
    path = f"${name}"
    present = {"$not": [_missing(path)]}
    numeric = {"$and": [present, {"$isNumber": path}]}
    measures = {
        f"{name}__nulls": _count(_missing(path)),
        f"{name}__wrong_type": _count({"$and": [present, {"$not": [{"$in": [{"$type": path}, contract.type.bson_types]}]}]}),
        f"{name}__min": {"$min": path},
        f"{name}__max": {"$max": path},
    }
    if contract.min is not None:
        measures[f"{name}__below_min"] = _count({"$and": [numeric, {"$lt": [path, contract.min]}]})
    if contract.max is not None:
        measures[f"{name}__above_max"] = _count({"$and": [numeric, {"$gt": [path, contract.max]}]})
    return measures


@dataclass(frozen=True)
class ContractReport:
    documents: int
    without_entity: int
    checks: list[FeatureCheck]

    @property
    def problems(self) -> list[str]:
        found = [f"{c.feature}: {p}" for c in self.checks for p in c.problems]
        if self.without_entity:
            found.insert(0, f"{self.without_entity} documents have no entity key (the pipeline's _id was null or missing)")
        return found


def evaluate_contracts(
    db: Database,
    definition: FeatureDefinition,
    *,
    entity: str,
    as_of: dt.datetime,
    run_id: str,
    max_time_ms: int,
) -> ContractReport:
    """Check every feature of one run's documents, and that each names its entity.

    MongoDB's `$merge` already refuses a null entity; counting it here keeps the rule
    independent of the server.
    """
    group: dict = {"_id": None, "__documents": {"$sum": 1}, "__no_entity": _count(_missing(f"${entity}"))}
    for name, contract in definition.features.items():
        group.update(_measures(name, contract))
    rows = list(db[definition.target].aggregate(
        [{"$match": {"as_of": as_of, "run_id": run_id}}, {"$group": group}], maxTimeMS=max_time_ms
    ))
    stats = rows[0] if rows else {"__documents": 0, "__no_entity": 0}
    checks = []
    for name, contract in definition.features.items():
        documents = stats["__documents"]
        check = FeatureCheck(
            feature=name,
            documents=documents,
            nulls=stats.get(f"{name}__nulls", 0),
            wrong_type=stats.get(f"{name}__wrong_type", 0),
            below_min=stats.get(f"{name}__below_min", 0),
            above_max=stats.get(f"{name}__above_max", 0),
            observed_min=_plain(stats.get(f"{name}__min")),
            observed_max=_plain(stats.get(f"{name}__max")),
        )
        check.problems.extend(_problems(check, contract))
        checks.append(check)
    return ContractReport(documents=stats["__documents"], without_entity=stats["__no_entity"], checks=checks)


def _plain(value):
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _problems(check: FeatureCheck, contract: FeatureContract) -> list[str]:
    problems = []
    if check.wrong_type:
        problems.append(f"{check.wrong_type} values are not of type {contract.type.value}")
    if check.null_rate > contract.max_null_rate:
        problems.append(f"null rate {check.null_rate:.4f} exceeds max_null_rate {contract.max_null_rate}")
    if check.below_min:
        problems.append(f"{check.below_min} values below min {contract.min} (lowest {check.observed_min})")
    if check.above_max:
        problems.append(f"{check.above_max} values above max {contract.max} (highest {check.observed_max})")
    return problems
