"""The committed features a day is scored from: the markers of the feature sets the models read (refusing one built
by another definition than a model was trained on), and their rows as each model's matrix."""

import datetime as dt

import numpy as np
from pymongo.database import Database

from mining_platform.serving.served_model import ServedModel
from mining_platform.spec import ProjectSpec, names
from mining_platform.spec.committed import committed_rows
from mining_platform.store import markers

READ_BATCH = 10_000


class PredictionsRefused(RuntimeError):
    """A day cannot be scored (features not committed, or committed by other definitions than the model's)."""


def _feature_sets_of(spec: ProjectSpec, model: ServedModel) -> dict[str, list[str]]:
    """Feature set -> the model's features it provides; refuses features no set of the project defines."""
    owner = spec.owner_of()
    unknown = [f for f in model.features if f not in owner]
    if unknown:
        raise PredictionsRefused(f"{model.uri} uses features no feature set of project {spec.name!r} defines: "
                                 f"{', '.join(unknown)}")
    sets: dict[str, list[str]] = {}
    for feature in model.features:
        sets.setdefault(owner[feature].name, []).append(feature)
    return sets


def committed_features(db: Database, spec: ProjectSpec, models: dict[str, ServedModel], *, partition: str,
                       as_of: dt.datetime) -> dict[str, dict]:
    """The commit marker of every feature set the models read at as_of; refuses a missing one, or one built by
    another definition than a model was trained on."""
    needed = {name for model in models.values() for name in _feature_sets_of(spec, model)}
    found = {name: markers.committed_partition(db, name, as_of) for name in sorted(needed)}
    missing = [name for name, marker in found.items() if marker is None]
    if missing:
        raise PredictionsRefused(f"{partition}: no committed features for {', '.join(missing)}; materialise "
                                 + ", ".join(names.shown(spec.feature_path(n)) for n in missing) + f" for {partition}")
    for role, model in models.items():
        for name in _feature_sets_of(spec, model):
            trained = model.trained_features.get(name) or {}
            if trained.get("hash") and trained["hash"] != found[name].get("pipeline_hash"):
                raise PredictionsRefused(
                    f"{partition}: feature set {name!r} was committed by version {found[name].get('pipeline_version')}"
                    f", but {role} {model.uri} was trained on version {trained.get('version')}; the features would "
                    "not mean what the model learned. Retrain, or rebuild the day with the model's definition")
    return found


def read_features(db: Database, spec: ProjectSpec, found: dict[str, dict], columns: list[str], *,
                  max_time_ms: int) -> tuple[list, np.ndarray]:
    """The entities with committed features at the markers `found`, and their `columns` as a float matrix (NaN:
    missing; booleans as 0/1), in a stable order (first seen)."""
    entity = spec.entity
    owner = spec.owner_of()
    position: dict = {}
    values: dict[str, dict[int, float]] = {c: {} for c in columns}
    for name, marker in found.items():
        wanted = [c for c in columns if owner[c].name == name]
        if not wanted:
            continue
        cursor = db[owner[wanted[0]].target].find(
            committed_rows(marker), {"_id": 0, entity: 1, **{c: 1 for c in wanted}}, batch_size=READ_BATCH, max_time_ms=max_time_ms)
        for doc in cursor:
            i = position.setdefault(doc[entity], len(position))
            for c in wanted:
                value = doc.get(c)
                if isinstance(value, bool | int | float):
                    values[c][i] = float(value)
    X = np.full((len(position), len(columns)), np.nan)
    for j, c in enumerate(columns):
        if values[c]:
            rows = np.fromiter(values[c].keys(), dtype=np.int64, count=len(values[c]))
            X[rows, j] = np.fromiter(values[c].values(), dtype=np.float64, count=len(values[c]))
    return list(position), X
