"""Online feature lookup: each entity's latest committed features, from the collections training read.

Offline and online read the same documents: a feature set's partition is visible only
through its commit marker in `feature_partitions`, and the endpoint reads the rows of
the newest marker's run, as the sample builder reads the marker of its day.

Per request the endpoint asks MongoDB, concurrently, for the newest markers (one
query for all feature sets) and for each feature set's rows under the markers it saw
last; when a marker moved (a new day or a rerun was committed) it reads that set's
rows again under the new one. So a request costs one round trip in the common case
and never mixes runs or serves an uncommitted one.
"""

import asyncio
import datetime as dt
from dataclasses import dataclass

import numpy as np
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from mining_platform.serving.payload import BadRequest
from mining_platform.serving.served_model import ServedModel
from mining_platform.spec.committed import committed_rows, latest_markers
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import FEATURE_MARKERS


class FeatureStoreUnavailable(RuntimeError):
    """MongoDB did not answer the lookup."""


@dataclass(frozen=True)
class LookedUp:
    X: np.ndarray
    as_of: dict[str, str]  # feature set -> as_of of the partition read
    newest: dt.datetime  # the newest of them: the day whose label judges these predictions


@dataclass(frozen=True)
class _SetPlan:
    definition: FeatureDefinition
    columns: tuple[tuple[str, int], ...]  # (feature, column in the model's matrix)


class OnlineFeatures:
    """Looks up a project's committed features for a model's columns."""

    def __init__(self, db: AsyncDatabase, *, project: str, entity: str, definitions: list[FeatureDefinition]):
        self._db = db
        self._project = project
        self._entity = entity
        self._definitions = definitions
        self._markers: dict[str, dict] = {}  # feature set -> the newest marker seen
        self._plans: dict[tuple[str, str], list[_SetPlan]] = {}

    def _plan(self, model: ServedModel) -> list[_SetPlan]:
        """Which feature set provides which of the model's columns (computed once per model version)."""
        key = (model.name, model.version)
        if key not in self._plans:
            owner = {feature: d for d in self._definitions for feature in d.features}
            unknown = [f for f in model.features if f not in owner]
            if unknown:
                raise BadRequest(409, f"{model.uri} uses features no feature set of project {self._project!r} "
                                      f"defines ({', '.join(unknown)}); send rows instead, or retrain")
            self._plans[key] = [
                _SetPlan(d, tuple((f, j) for j, f in enumerate(model.features) if owner[f] is d))
                for d in self._definitions if any(owner[f] is d for f in model.features)
            ]
        return self._plans[key]

    async def _latest_markers(self, names: list[str]) -> dict[str, dict]:
        cursor = await self._db[FEATURE_MARKERS].aggregate(latest_markers(names))
        return {doc["_id"]: doc["marker"] async for doc in cursor}

    async def _rows(self, plan: _SetPlan, marker: dict, entities: list) -> list[dict]:
        definition = plan.definition
        query = committed_rows(marker, **{self._entity: {"$in": entities}})
        projection = {"_id": 0, self._entity: 1, **{feature: 1 for feature, _ in plan.columns}}
        return await self._db[definition.target].find(query, projection).to_list()

    def _check_trained_on(self, model: ServedModel, plan: _SetPlan, marker: dict) -> None:
        trained = model.trained_features.get(plan.definition.name)
        if trained and trained.get("hash") and trained["hash"] != marker.get("pipeline_hash"):
            raise BadRequest(409, (
                f"feature set {plan.definition.name!r}: its latest committed partition "
                f"({marker['partition']}) was built by version {marker.get('pipeline_version')}, but {model.uri} was "
                f"trained on version {trained.get('version')}; the features would not mean what the model learned. "
                "Retrain and deploy, or send rows"))

    async def lookup(self, model: ServedModel, entities: list) -> LookedUp:
        plans = self._plan(model)
        unique = list(dict.fromkeys(entities))
        names = [p.definition.name for p in plans]
        seen = {name: self._markers.get(name) for name in names}
        known = [p for p in plans if seen[p.definition.name]]
        try:
            latest, *guessed = await asyncio.gather(
                self._latest_markers(names), *(self._rows(p, seen[p.definition.name], unique) for p in known))
            rows = {p.definition.name: found for p, found in zip(known, guessed)}
            stale = [p for p in plans if not _same_run(seen[p.definition.name], latest.get(p.definition.name))]
            for plan in stale:
                if plan.definition.name not in latest:
                    raise BadRequest(409, f"feature set {plan.definition.name!r} has no committed partition yet; "
                                          f"materialise {self._project}/features/{plan.definition.name}")
            refreshed = await asyncio.gather(*(self._rows(p, latest[p.definition.name], unique) for p in stale))
        except PyMongoError as exc:
            raise FeatureStoreUnavailable(f"MongoDB did not answer the feature lookup: {type(exc).__name__}: {exc}") from None
        rows.update((p.definition.name, found) for p, found in zip(stale, refreshed))
        self._markers.update(latest)

        position = {entity: i for i, entity in enumerate(unique)}
        X = np.full((len(unique), len(model.features)), np.nan)
        found = np.zeros(len(unique), dtype=bool)
        for plan in plans:
            self._check_trained_on(model, plan, latest[plan.definition.name])
            for doc in rows[plan.definition.name]:
                i = position[doc[self._entity]]
                found[i] = True
                for feature, j in plan.columns:
                    value = doc.get(feature)
                    if value is not None:
                        X[i, j] = value
        if not found.all():
            missing = [unique[i] for i in np.flatnonzero(~found)]
            shown = ", ".join(repr(e) for e in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise BadRequest(404, f"unknown {self._entity}: {shown} (no features in the latest committed partitions: "
                                  + ", ".join(f"{n} {latest[n]['partition']}" for n in names) + ")")
        order = [position[entity] for entity in entities]
        return LookedUp(X=X[order], as_of={n: latest[n]["as_of"].isoformat() for n in names},
                        newest=max(latest[n]["as_of"] for n in names))


def _same_run(seen: dict | None, latest: dict | None) -> bool:
    return seen is not None and latest is not None and seen["run_id"] == latest["run_id"] and seen["as_of"] == latest["as_of"]
