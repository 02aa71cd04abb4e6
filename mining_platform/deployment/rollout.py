"""Deploying a version: move `champion` (or `challenger`) to it through the gate, name it in the serving record
every endpoint replica follows, wait until every live replica serves it, check that the endpoint answers with it.

If a replica cannot load it, the wait runs out, or the check fails, the aliases and the
serving record are put back where they were (the replicas that swapped follow the record
back) and the endpoint is asked to reload again; the caller learns why, naming the
replica, and whether it was a passing outage. A challenger promoted to champion stops
being the challenger; retiring the challenger removes its alias and the endpoint
stops running it.
"""

from collections.abc import Callable
from dataclasses import dataclass

from mining_platform.deployment.convergence import Converged, ReplicasDidNotConverge, ServingRecords
from mining_platform.deployment.endpoint import EndpointClient, EndpointError
from mining_platform.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    alias_version,
    promote_to_champion,
    restore_aliases,
    set_challenger,
)
from mining_platform.registry.client import MlflowClient
from mining_platform.spec.routing import routes_to_challenger
from mining_platform.transient import ClassifiedError, is_transient


class HitCheckFailed(RuntimeError):
    """The endpoint does not serve the version the registry now names champion."""


class DeploymentFailed(ClassifiedError):
    """The endpoint did not take the version; the aliases are restored."""


@dataclass(frozen=True)
class Target:
    version: str | None  # None: no version (a retired challenger)
    action: str  # why this version: "rollback", "deploy the requested version", or the upstream's


@dataclass(frozen=True)
class Deployed:
    version: str
    previous_version: str | None
    run_id: str
    loaded_at: str
    swapped: bool  # the endpoint changed model (False: it already served this version)
    challenger: str | None = None  # the challenger the endpoint runs after this deployment
    converged: Converged | None = None  # the live replicas that reported the version, and how long it took


@dataclass(frozen=True)
class Rollout:
    """How a deployment reaches the replicas: the project's serving records, who moves them and why, and how long
    to wait for every live replica."""
    records: ServingRecords
    set_by: str  # e.g. the Dagster run id
    reason: str
    timeout_seconds: float = 120.0


def current_aliases(client: MlflowClient, model_name: str) -> dict[str, str | None]:
    return {alias: alias_version(client, model_name, alias) for alias in (CHAMPION, PREVIOUS, CHALLENGER)}


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


def routed_key(project: str, challenger: dict | None, *, to_challenger: bool) -> str | None:
    """A request key a canary challenger answers (or leaves to the champion); None when no canary runs."""
    if not challenger or challenger.get("mode") != "canary":
        return None
    for i in range(100_000):
        key = f"hit-check-{i}"
        if routes_to_challenger(project, key, challenger["version"], challenger["traffic"]) == to_challenger:
            return key
    raise HitCheckFailed(f"no request key routes to the {'challenger' if to_challenger else 'champion'} with "
                         f"traffic {challenger['traffic']}")


def _null_row(served: dict) -> dict:
    # One row of missing values: valid for any model, answered by whatever the endpoint really scores with.
    return {"rows": [{feature: None for feature in served["features"]}]}


def hit_check(endpoint: EndpointClient, project: str, version: str) -> dict:
    """The endpoint reports the version as champion, and a prediction is answered by it; returns what it reports."""
    served = endpoint.version(project)
    if served.get("version") != version:
        raise HitCheckFailed(f"the endpoint at {endpoint.url} serves version {served.get('version')} of "
                             f"{served.get('name')}, not version {version}")
    key = routed_key(project, served.get("challenger"), to_challenger=False)
    answer = endpoint.predict(project, _null_row(served), request_key=key)
    answered_by = answer.get("versions", [answer["model"]["version"]])[0]
    if answer["model"]["version"] != version or answered_by != version:
        raise HitCheckFailed(f"the endpoint at {endpoint.url} reports version {version} but a prediction was "
                             f"answered by version {answered_by}")
    return served


def challenger_check(endpoint: EndpointClient, project: str, version: str | None) -> dict:
    """The endpoint runs `version` as challenger (None: runs none): a request sees it (shadow; the challenger was
    smoke-tested when it loaded) or one routed to it is answered by it (canary); returns what /version reports."""
    served = endpoint.version(project)
    running = (served.get("challenger") or {}).get("version")
    if running != version:
        raise HitCheckFailed(f"the endpoint at {endpoint.url} runs challenger {running or 'none'}, not "
                             f"{version or 'none'}")
    if version is None:
        return served
    challenger = served["challenger"]
    key = routed_key(project, challenger, to_challenger=True)
    answer = endpoint.predict(project, _null_row(served), request_key=key)
    scored = answer.get("challenger") or {}
    if challenger["mode"] == "canary":
        answered_by = (answer.get("versions") or [None])[0]
        if answered_by != version:
            raise HitCheckFailed(f"a request routed to canary challenger {version} was answered by {answered_by}")
    elif scored.get("version") != version:
        raise HitCheckFailed(f"a request to the endpoint did not see shadow challenger {version} (it reports "
                             f"{scored or 'no challenger'})")
    return served


def _failed(client: MlflowClient, endpoint: EndpointClient, rollout: Rollout, *, project: str, model_name: str,
            target: str, before: dict[str, str | None], record_before, role: str, exc: Exception) -> DeploymentFailed:
    """Restore the aliases and the serving record, ask the endpoint to serve them again (best effort), and say what
    happened."""
    restore_aliases(client, model_name, before)
    rollout.records.restore(role, record_before, set_by=rollout.set_by, reason=f"restored: {exc}")
    try:  # the replica this reaches may have swapped before the check failed; the others follow the record
        endpoint.reload(project, role)
    except EndpointError:
        pass
    restored = ", ".join(f"{alias}: {version}" for alias, version in before.items())
    return DeploymentFailed(f"deploying {model_name} version {target} as {role} failed: {exc}. The aliases are "
                            f"restored ({restored})", transient=is_transient(exc))


def _reach_replicas(endpoint: EndpointClient, rollout: Rollout, *, project: str, role: str, version: str | None,
                    ) -> tuple[dict, Converged]:
    """Name `version` in the record, nudge the replica the URL reaches (it answers at once whether it could load the
    version), and wait until every live replica serves it."""
    since = rollout.records.set(role, version, set_by=rollout.set_by, reason=rollout.reason)
    reloaded = endpoint.reload(project, role)
    converged = rollout.records.wait(role, version, since=since, timeout_seconds=rollout.timeout_seconds)
    return reloaded, converged


def deploy(client: MlflowClient, endpoint: EndpointClient, rollout: Rollout, *, project: str, model_name: str,
           target: str, before: dict[str, str | None]) -> Deployed:
    """Promote `target` (PromotionRefused unless its gate passed), move the serving record, wait for every live
    replica and check the endpoint's answer.

    `before` are the aliases as they were (`current_aliases`): restored if the endpoint fails.
    A challenger promoted to champion stops being the challenger.
    """
    record_before = rollout.records.current(CHAMPION)
    replaced = promote_to_champion(client, model_name, target)
    try:
        reloaded, converged = _reach_replicas(endpoint, rollout, project=project, role=CHAMPION, version=target)
        served = hit_check(endpoint, project, target)
    except (EndpointError, HitCheckFailed, ReplicasDidNotConverge) as exc:
        raise _failed(client, endpoint, rollout, project=project, model_name=model_name, target=target,
                      before={CHAMPION: before[CHAMPION], PREVIOUS: before[PREVIOUS]}, record_before=record_before,
                      role=CHAMPION, exc=exc) from None
    challenger = before.get(CHALLENGER)
    if challenger == target:  # promoted: it no longer competes with itself (the endpoint already stopped running it)
        set_challenger(client, model_name, None)
        rollout.records.set(CHALLENGER, None, set_by=rollout.set_by, reason=f"version {target} became champion")
        try:
            endpoint.reload(project, CHALLENGER)
        except EndpointError:
            pass  # the endpoint never runs the champion's own version as challenger; its next sync drops it
        challenger = None
    # promote_to_champion moved the replaced champion to previous, unless target already was champion.
    previous = replaced if replaced not in (None, target) else before[PREVIOUS]
    return Deployed(version=target, previous_version=previous, run_id=served["run_id"],
                    loaded_at=served["loaded_at"], swapped=reloaded["changed"], challenger=challenger,
                    converged=converged)


def deploy_challenger(client: MlflowClient, endpoint: EndpointClient, rollout: Rollout, *, project: str,
                      model_name: str, target: str | None, before: dict[str, str | None]) -> Deployed:
    """Point `challenger` at `target` (None: retire it), move its serving record, wait for every live replica and
    check the endpoint.

    PromotionRefused unless the gate of `target` passed; the champion is never touched."""
    record_before = rollout.records.current(CHALLENGER)
    set_challenger(client, model_name, target)
    try:
        reloaded, converged = _reach_replicas(endpoint, rollout, project=project, role=CHALLENGER, version=target)
        served = challenger_check(endpoint, project, target)
    except (EndpointError, HitCheckFailed, ReplicasDidNotConverge) as exc:
        raise _failed(client, endpoint, rollout, project=project, model_name=model_name, target=target or "none",
                      before={CHALLENGER: before[CHALLENGER]}, record_before=record_before, role=CHALLENGER,
                      exc=exc) from None
    challenger = served.get("challenger") or {}
    return Deployed(version=served["version"], previous_version=before[PREVIOUS], run_id=served["run_id"],
                    loaded_at=challenger.get("loaded_at") or served["loaded_at"], swapped=reloaded["changed"],
                    challenger=target, converged=converged)
