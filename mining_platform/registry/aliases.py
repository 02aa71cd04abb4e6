"""Aliases and the gate verdict: `champion` is what the endpoint serves, `previous` the one it replaced.

Only a version whose `mining.gate` tag is `passed` may become champion; a failed
version stays registered for inspection and can never be served.
"""

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mining_platform.spec.names import CHAMPION, PREVIOUS

GATE_TAG = "mining.gate"
GATE_REASON_TAG = "mining.gate_reason"
PASSED, FAILED = "passed", "failed"


class PromotionRefused(RuntimeError):
    """The version may not become champion (its gate did not pass)."""


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str


def aliased_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The model version holding `alias`, or None (also when the model is not registered yet)."""
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


def promote_to_champion(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Give `version` the champion alias (the old champion becomes `previous`); returns the old champion.

    Refused unless the version's gate passed.
    """
    tags = client.get_model_version(model_name, version).tags
    if tags.get(GATE_TAG) != PASSED:
        raise PromotionRefused(
            f"{model_name} version {version} cannot become {CHAMPION}: its quality gate is "
            f"{tags.get(GATE_TAG, 'not evaluated')!r}" + (f" ({tags[GATE_REASON_TAG]})" if GATE_REASON_TAG in tags else "")
        )
    current = alias_version(client, model_name, CHAMPION)
    if current == version:
        return current
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, current)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return current


def restore_aliases(client: MlflowClient, model_name: str, aliases: dict[str, str | None]) -> None:
    """Put each alias back where it was (None: it did not exist)."""
    for alias, version in aliases.items():
        if version is not None:
            client.set_registered_model_alias(model_name, alias, version)
        elif alias_version(client, model_name, alias) is not None:
            client.delete_registered_model_alias(model_name, alias)
