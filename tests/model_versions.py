"""Small registered model versions for serving and deployment tests (trained in milliseconds)."""

import uuid

from mining_platform.registry import aliases, versions
from tests.fixtures.model_versions import register_synthetic_version


def unique_model_name() -> str:
    return f"served_{uuid.uuid4().hex[:8]}"


def register_version(tracking_uri: str, artifact_location: str | None, model_name: str, features: list[str], *,
                     seed: int, gate: str = aliases.PASSED, trained_features: dict | None = None) -> versions.LoggedVersion:
    return register_synthetic_version(tracking_uri=tracking_uri, artifact_location=artifact_location,
                                      model_name=model_name, features=features, seed=seed, project="tests", gate=gate,
                                      trained_features=trained_features)
