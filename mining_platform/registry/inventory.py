"""What the registry holds of a model, read and tagged through MLflow here (callers outside `registry/` never call
MLflow themselves): its versions with their aliases and tags, a version's gate tags, tags written onto a version.

Every function is handed a client (`registry.client.client`), so MLflow is loaded by whoever builds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mining_platform.spec.tags import GATE_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class RegisteredVersion:
    version: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = field(default=())


def registered_versions(client: MlflowClient, model_name: str) -> list[RegisteredVersion]:
    """Every version of a registered model, newest first, with its aliases; empty when the model is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        aliases_of: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(model_name).aliases.items():
            aliases_of.setdefault(str(version), []).append(alias)
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    return [RegisteredVersion(version=str(v.version), tags=dict(v.tags),
                              aliases=tuple(sorted(aliases_of.get(str(v.version), []))))
            for v in sorted(versions, key=lambda v: int(v.version), reverse=True)]


def gate_tags(client: MlflowClient, model_name: str, version: str | None) -> dict[str, str]:
    """A version's gate verdict and figures (its `mining.gate*` tags); empty for no version."""
    if version is None:
        return {}
    tags = client.get_model_version(model_name, version).tags
    return {key: value for key, value in tags.items() if key.startswith(GATE_TAG)}


def tag_version(client: MlflowClient, model_name: str, version: str, tags: dict[str, str]) -> None:
    """Write tags onto a registered version (why it moved, by which run)."""
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
