"""`feature_pipelines`: one immutable document per (name, version) of a feature or label definition.

Label definitions are registered under `labels/<name>`, so a label and a feature set
may share a name.
"""

import datetime as dt

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.label import LabelDefinition
from mining_platform.spec.names import FEATURE_PIPELINES, feature_collection
from mining_platform.store.runs import Refused

# What a version check needs; not the stored pipeline.
_CHECKED_FIELDS = {"hash": 1, "project": 1, "owner": 1, "created_at": 1}


class FeatureVersionConflict(Refused):
    """A (name, version) already holds other content: versions are immutable, a change needs a bump."""


Definition = FeatureDefinition | LabelDefinition


def _version_id(definition: Definition) -> str:
    return f"{definition.registry_name}@{definition.version}"


def version_document(definition: Definition, *, project: str) -> dict:
    dumped = definition.model_dump(mode="json", exclude_none=True)
    document = {
        "_id": _version_id(definition),
        "name": definition.registry_name,
        "kind": "label" if isinstance(definition, LabelDefinition) else "features",
        "definition_kind": getattr(definition, "kind", "label"),  # pipeline, windowed (or a label)
        "version": definition.version,
        "hash": definition.content_hash,
        "project": project,
        "description": definition.description,
        "owner": definition.owner,
        "source": definition.source,
        # The template as written, {$param: ...} placeholders included (a windowed definition: its windows).
        **{key: dumped[key] for key in ("pipeline", "filter", "aggregations", "post") if key in dumped},
        "parameters": dumped["parameters"],
        "created_at": dt.datetime.now(dt.timezone.utc),
    }
    if isinstance(definition, LabelDefinition):
        document.update(horizon_days=definition.horizon_days, default=definition.default)
    else:
        document.update(target_collection=feature_collection(definition.name), window_days=definition.window_days,
                        features=dumped["features"])
    return document


def conflict(db: Database, definition: Definition, *, project: str) -> str | None:
    """Why `definition` may not run against the versions in `db`, or None; reads only."""
    return _conflict_with(
        db[FEATURE_PIPELINES].find_one({"_id": _version_id(definition)}, _CHECKED_FIELDS), definition, project
    )


def _conflict_with(registered: dict | None, definition: Definition, project: str) -> str | None:
    if registered is None:
        return None
    if registered["project"] != project:
        what = (f"label {definition.name!r}" if isinstance(definition, LabelDefinition)
                else f"feature set {definition.name!r} (collection {definition.target})")
        return f"{what} is already registered by project {registered['project']!r}; names are database-wide, pick another name"
    if registered["hash"] != definition.content_hash:
        return (
            f"{definition.name} version {definition.version} differs from the registered version "
            f"{definition.version} (hash {registered['hash'][:12]} registered {registered['created_at']:%Y-%m-%d %H:%M} "
            f"UTC by {registered['owner']}, this file hashes to {definition.content_hash[:12]}); versions are "
            f"immutable: bump `version` to record a change"
        )
    return None


def register(db: Database, definition: Definition, *, project: str) -> bool:
    """Record `definition` unless it is already there; True when newly registered.

    Raises FeatureVersionConflict when the (name, version) holds other content.
    """
    versions = db[FEATURE_PIPELINES]
    versions.create_index([("name", ASCENDING), ("version", ASCENDING)], unique=True, name="name_1_version_1")
    registered = versions.find_one({"_id": _version_id(definition)}, _CHECKED_FIELDS)
    if registered is None:
        try:
            versions.insert_one(version_document(definition, project=project))
            return True
        except DuplicateKeyError:
            # Registered concurrently by another run: same content is fine, other content is not.
            registered = versions.find_one({"_id": _version_id(definition)}, _CHECKED_FIELDS)
    problem = _conflict_with(registered, definition, project)
    if problem:
        raise FeatureVersionConflict(problem)
    return False
