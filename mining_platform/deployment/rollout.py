"""Deploying a version: move `champion` to it through the gate, reload the endpoint, check it answers with it.

If the reload or the check fails, both aliases are put back where they were and the
endpoint is asked to reload again, so it serves the old champion; the caller learns
why, and whether it was a passing outage.
"""

from collections.abc import Callable
from dataclasses import dataclass

from mlflow import MlflowClient

from mining_platform.deployment.endpoint import EndpointClient, EndpointError
from mining_platform.registry.aliases import CHAMPION, PREVIOUS, alias_version, promote_to_champion, restore_aliases
from mining_platform.transient import ClassifiedError, is_transient


class HitCheckFailed(RuntimeError):
    """The endpoint does not serve the version the registry now names champion."""


class DeploymentFailed(ClassifiedError):
    """The endpoint did not take the version; the aliases are restored."""


@dataclass(frozen=True)
class Target:
    version: str
    action: str  # why this version: "rollback", "deploy the requested version", or the upstream's


@dataclass(frozen=True)
class Deployed:
    version: str
    previous_version: str | None
    run_id: str
    loaded_at: str
    swapped: bool  # the endpoint changed model (False: it already served this version)


def current_aliases(client: MlflowClient, model_name: str) -> dict[str, str | None]:
    return {alias: alias_version(client, model_name, alias) for alias in (CHAMPION, PREVIOUS)}


def choose_target(model_name: str, aliases: dict[str, str | None], *, rollback: bool, version: str | None,
                  upstream: Callable[[], Target], served: list[str] = ()) -> Target:
    """The version to deploy: what was served before the champion (rollback), the one asked for, or the upstream's.

    `served` is the history of versions the deployments put live, newest first (including those
    deployed after a hand move of the alias). Raises ValueError for a request that cannot be met.
    """
    if rollback and version:
        raise ValueError("set either rollback or version, not both")
    if rollback:
        return rollback_target(model_name, aliases, served)
    if version:
        return Target(version, "deploy the requested version")
    return upstream()


def rollback_target(model_name: str, aliases: dict[str, str | None], served: list[str]) -> Target:
    """Back to what was served before: the newest version in the deployment history that is not the champion
    (the `previous` alias only when there is no history). Never the champion itself: a rollback that would
    change nothing is refused, saying why."""
    current = aliases[CHAMPION]
    for candidate in served:
        if candidate != current:
            return Target(candidate, f"rollback to version {candidate}, served before version {current}")
    if not served and aliases[PREVIOUS] is not None and aliases[PREVIOUS] != current:
        return Target(aliases[PREVIOUS], f"rollback to the {PREVIOUS!r} version {aliases[PREVIOUS]} (no recorded "
                                         "deployments)")
    history = ", ".join(dict.fromkeys(served)) or "none recorded"
    if current is None and aliases[PREVIOUS] is None and not served:
        raise ValueError(f"{model_name} has no {PREVIOUS!r} version to roll back to: nothing was deployed yet")
    raise ValueError(
        f"nothing to roll back to: {model_name}@{CHAMPION} is version {current} and no other version was served "
        f"before it (versions deployed: {history}; {PREVIOUS!r}: {aliases[PREVIOUS]}). Deploy a version by number "
        "(run config `version`) instead")


def hit_check(endpoint: EndpointClient, project: str, version: str) -> dict:
    """The endpoint reports the version, and a prediction is answered by it; returns what it reports."""
    served = endpoint.version(project)
    if served.get("version") != version:
        raise HitCheckFailed(f"the endpoint at {endpoint.url} serves version {served.get('version')} of "
                             f"{served.get('name')}, not version {version}")
    # One row of missing values: valid for any model, answered by whatever the endpoint really scores with.
    answer = endpoint.predict(project, {"rows": [{feature: None for feature in served["features"]}]})
    if answer["model"]["version"] != version:
        raise HitCheckFailed(f"the endpoint at {endpoint.url} reports version {version} but a prediction was "
                             f"answered by version {answer['model']['version']}")
    return served


def deploy(client: MlflowClient, endpoint: EndpointClient, *, project: str, model_name: str, target: str,
           before: dict[str, str | None]) -> Deployed:
    """Promote `target` (PromotionRefused unless its gate passed), reload and check the endpoint.

    `before` are the aliases as they were (`current_aliases`): restored if the endpoint fails.
    """
    replaced = promote_to_champion(client, model_name, target)
    try:
        reloaded = endpoint.reload(project)
        served = hit_check(endpoint, project, target)
    except (EndpointError, HitCheckFailed) as exc:
        restore_aliases(client, model_name, before)
        try:  # best effort: the endpoint may have swapped before the check failed
            endpoint.reload(project)
        except EndpointError:
            pass
        raise DeploymentFailed(
            f"deploying {model_name} version {target} failed: {exc}. The aliases are restored "
            f"({CHAMPION}: {before[CHAMPION]}, {PREVIOUS}: {before[PREVIOUS]})", transient=is_transient(exc)) from None
    # promote_to_champion moved the replaced champion to previous, unless target already was champion.
    previous = replaced if replaced not in (None, target) else before[PREVIOUS]
    return Deployed(version=target, previous_version=previous, run_id=served["run_id"],
                    loaded_at=served["loaded_at"], swapped=reloaded["changed"])
