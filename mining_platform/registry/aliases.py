"""Aliases and the gate verdict: `champion` is what the endpoint serves, `previous` the one it replaced,
`challenger` a version it runs next to the champion (shadow or canary).

Only a version whose `mining.gate` tag is `passed` may become champion or challenger;
a failed version stays registered for inspection and can never be served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mining_platform.spec.names import CHALLENGER, CHAMPION, PREVIOUS
from mining_platform.spec.tags import FAILED, GATE_REASON_TAG, GATE_TAG, PASSED

__all__ = ["CHALLENGER", "CHAMPION", "FAILED", "GATE_REASON_TAG", "GATE_TAG", "PASSED", "PREVIOUS", "Champion",
           "PromotionRefused", "alias_version", "aliased_version", "champion", "promote_to_champion",
           "require_gate_passed", "restore_aliases", "set_challenger"]

if TYPE_CHECKING:  # every function here is handed a client, so MLflow is loaded by whoever calls; not at import
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


class PromotionRefused(RuntimeError):
    """The version may not become champion (its gate did not pass)."""


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str


def aliased_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The model version holding `alias`, or None (also when the model is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def alias_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version number holding `alias`, or None."""
    held = aliased_version(client, model_name, alias)
    return None if held is None else str(held.version)


def champion(client: MlflowClient, model_name: str) -> Champion | None:
    """The version holding `champion`, or None when there is none (or no such model yet)."""
    held = aliased_version(client, model_name, CHAMPION)
    return None if held is None else Champion(name=model_name, version=str(held.version), run_id=held.run_id)


def require_gate_passed(client: MlflowClient, model_name: str, version: str, alias: str) -> None:
    """PromotionRefused unless the version's gate passed."""
    tags = client.get_model_version(model_name, version).tags
    if tags.get(GATE_TAG) != PASSED:
        raise PromotionRefused(
            f"{model_name} version {version} cannot become {alias}: its quality gate is "
            f"{tags.get(GATE_TAG, 'not evaluated')!r}" + (f" ({tags[GATE_REASON_TAG]})" if GATE_REASON_TAG in tags else "")
        )


def promote_to_champion(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Give `version` the champion alias (the old champion becomes `previous`); returns the old champion.

    Refused unless the version's gate passed.
    """
    require_gate_passed(client, model_name, version, CHAMPION)
    current = alias_version(client, model_name, CHAMPION)
    if current == version:
        return current
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, current)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return current


def set_challenger(client: MlflowClient, model_name: str, version: str | None) -> str | None:
    """Point `challenger` at `version` (None: remove it); returns the version it named before.

    Refused unless the version's gate passed, and for the champion itself (it would only compete with itself).
    """
    before = alias_version(client, model_name, CHALLENGER)
    if version is None:
        if before is not None:
            client.delete_registered_model_alias(model_name, CHALLENGER)
        return before
    require_gate_passed(client, model_name, version, CHALLENGER)
    if alias_version(client, model_name, CHAMPION) == version:
        raise PromotionRefused(f"{model_name} version {version} is the {CHAMPION}: it cannot be its own {CHALLENGER}")
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    return before


def restore_aliases(client: MlflowClient, model_name: str, aliases: dict[str, str | None]) -> None:
    """Put each alias back where it was (None: it did not exist)."""
    for alias, version in aliases.items():
        if version is not None:
            client.set_registered_model_alias(model_name, alias, version)
        elif alias_version(client, model_name, alias) is not None:
            client.delete_registered_model_alias(model_name, alias)
