"""Feature contracts (`features:` of a definition), evaluated in the database.

One aggregation groups the run's documents by the BSON types of their fields and
keeps each feature's minimum and maximum per group: that is one `$type` per field
and document, and it answers null rates, wrong types and whether any bound is
crossed. Only a crossed bound costs a second pass, to count the offending values.
"""

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from pymongo.database import Database

from mining_platform.spec.definition import FeatureContract, FeatureDefinition

ABSENT = ("missing", "null")
ENTITY = "__entity"


@dataclass(frozen=True)
class FeatureCheck:
    """One feature's contract over one run's documents."""

    feature: str
    documents: int
    nulls: int
    wrong_type: int
    below_min: int
    above_max: int
    observed_min: float | str | None
    observed_max: float | str | None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def null_rate(self) -> float:
        return self.nulls / self.documents if self.documents else 0.0


@dataclass(frozen=True)
class ContractReport:
    documents: int
    without_entity: int
    checks: list[FeatureCheck]
    bytes: int = 0  # BSON size of the run's documents

    @property
    def problems(self) -> list[str]:
        found = [f"{c.feature}: {p}" for c in self.checks for p in c.problems]
        if self.without_entity:
            found.insert(0, f"{self.without_entity} documents have no entity key (the pipeline's _id was null or missing)")
        return found


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_profile(db: Database, definition: FeatureDefinition, match: dict, entity: str, max_time_ms: int) -> list[dict]:
    group: dict = {
        "_id": {ENTITY: {"$type": f"${entity}"}, **{name: {"$type": f"${name}"} for name in definition.features}},
        "documents": {"$sum": 1},
        "bytes": {"$sum": {"$bsonSize": "$$ROOT"}},
    }
    for name in definition.features:
        group[f"{name}__min"] = {"$min": f"${name}"}
        group[f"{name}__max"] = {"$max": f"${name}"}
    return list(db[definition.target].aggregate([{"$match": match}, {"$group": group}], maxTimeMS=max_time_ms))


def _count_out_of_bounds(db, definition, match, crossed: dict[str, FeatureContract], max_time_ms) -> Counter:
    counts: dict = {"_id": None}
    for name, contract in crossed.items():
        number = {"$isNumber": f"${name}"}
        if contract.min is not None:
            counts[f"{name}__below"] = {"$sum": {"$cond": [{"$and": [number, {"$lt": [f"${name}", contract.min]}]}, 1, 0]}}
        if contract.max is not None:
            counts[f"{name}__above"] = {"$sum": {"$cond": [{"$and": [number, {"$gt": [f"${name}", contract.max]}]}, 1, 0]}}
    rows = list(db[definition.target].aggregate([{"$match": match}, {"$group": counts}], maxTimeMS=max_time_ms))
    return Counter({k: v for k, v in rows[0].items() if k != "_id"}) if rows else Counter()


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
    match = {"as_of": as_of, "run_id": run_id}
    profile = _type_profile(db, definition, match, entity, max_time_ms)
    documents = sum(row["documents"] for row in profile)
    written_bytes = sum(row["bytes"] for row in profile)
    without_entity = sum(row["documents"] for row in profile if row["_id"][ENTITY] in ABSENT)

    observed, crossed = {}, {}
    for name, contract in definition.features.items():
        lows = [row[f"{name}__min"] for row in profile if row["_id"][name] in contract.type.bson_types]
        highs = [row[f"{name}__max"] for row in profile if row["_id"][name] in contract.type.bson_types]
        low, high = (min(lows), max(highs)) if lows else (None, None)
        observed[name] = (low, high)
        if _is_number(low) and (
            (contract.min is not None and low < contract.min) or (contract.max is not None and high > contract.max)
        ):
            crossed[name] = contract
    bounds = _count_out_of_bounds(db, definition, match, crossed, max_time_ms) if crossed else Counter()

    checks = []
    for name, contract in definition.features.items():
        types = Counter()
        for row in profile:
            types[row["_id"][name]] += row["documents"]
        low, high = observed[name]
        check = FeatureCheck(
            feature=name,
            documents=documents,
            nulls=sum(types[t] for t in ABSENT),
            wrong_type=sum(n for t, n in types.items() if t not in ABSENT and t not in contract.type.bson_types),
            below_min=bounds[f"{name}__below"],
            above_max=bounds[f"{name}__above"],
            observed_min=low.isoformat() if isinstance(low, dt.datetime) else low,
            observed_max=high.isoformat() if isinstance(high, dt.datetime) else high,
        )
        check.problems.extend(_problems(check, contract))
        checks.append(check)
    return ContractReport(documents=documents, without_entity=without_entity, checks=checks, bytes=written_bytes)


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
