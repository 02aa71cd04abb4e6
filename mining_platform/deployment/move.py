"""One alias move, as the deployment asset runs it: which version a request deploys, the move through the
serving records with every replica waited for, its audit (`promotions`), and why it moved written onto the
version. The deployment asset only gathers the request and its run's tags, and shows the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymongo.database import Database

from mining_platform.deployment import audit
from mining_platform.deployment.convergence import ServingRecords
from mining_platform.deployment.rollout import (
    Deployed,
    DeploymentFailed,
    Rollout,
    Target,
    choose_target,
    deploy,
    deploy_challenger,
)
from mining_platform.registry.inventory import gate_tags, tag_version
from mining_platform.spec.names import CHALLENGER
from mining_platform.spec.tags import DEPLOYED_AS_TAG, DEPLOYED_BY_TAG, PROMOTION_TAG_PREFIX, deployed_before_tag

if TYPE_CHECKING:
    from mining_platform.deployment.endpoint import EndpointClient
    from mining_platform.registry.client import MlflowClient


@dataclass(frozen=True)
class MoveRequest:
    """What a deployment run asks for: a role, and a version, a rollback, a retirement, or (none of them) the
    version the model asset registered last."""

    role: str
    version: str | None = None
    rollback: bool = False
    retire: bool = False


def target_of(request: MoveRequest, model_name: str, before: dict[str, str | None], *,
              upstream: Callable[[], Target], served: list[str]) -> Target:
    """The version the request deploys (None: retire the challenger); ValueError for a request that cannot be met."""
    if request.retire and (request.role != CHALLENGER or request.version or request.rollback):
        raise ValueError("retire applies to role challenger alone (without version or rollback)")
    if request.role == CHALLENGER and request.rollback:
        raise ValueError("rollback applies to the champion; retire the challenger instead")
    if request.retire:
        return Target(None, f"retire challenger {before[CHALLENGER]}")
    return choose_target(model_name, before, rollback=request.rollback, version=request.version, upstream=upstream,
                         served=served)


@dataclass
class Moved:
    deployed: Deployed
    promotion: audit.Promotion
    promotion_id: str
    evidence: dict[str, str]  # why it moved (the run's cause and its evidence), also tagged onto the version
    run_tags: dict[str, str]  # what the run moved: role, from, to, kind


def move(client: MlflowClient, endpoint: EndpointClient, namespace: Database, *, project: str, model_name: str,
         request: MoveRequest, target: Target, before: dict[str, str | None], run_tags: Mapping[str, str],
         run_id: str, job: str | None, timeout_seconds: float) -> Moved:
    """Move the role's alias to `target` through the serving records, audited whatever the outcome.

    Raises PromotionRefused (the gate), the registry's error, or DeploymentFailed (aliases and record restored,
    the failure audited as `restored`)."""
    mover = audit.moved_by(run_tags, run_id=run_id, job=job, rollback=request.rollback)
    moved_from = before[request.role]
    if mover.kind == "hand":  # the alias already names the target: it moved from what was served
        moved_from = run_tags.get(deployed_before_tag(request.role), moved_from)
        moved_from = None if moved_from == "none" else moved_from
    evidence = audit.evidence_of(run_tags)
    promotion = audit.Promotion(
        project=project, model=model_name, role=request.role, from_version=moved_from, to_version=target.version,
        moved_by=mover, reason=target.action, evidence={**evidence, **gate_tags(client, model_name, target.version)})
    rollout = Rollout(records=ServingRecords(namespace, model_name), set_by=run_id, reason=target.action,
                      timeout_seconds=timeout_seconds)
    try:
        if request.role == CHALLENGER:
            deployed = deploy_challenger(client, endpoint, rollout, project=project, model_name=model_name,
                                         target=target.version, before=before)
        else:
            deployed = deploy(client, endpoint, rollout, project=project, model_name=model_name,
                              target=target.version, before=before)
    except DeploymentFailed as exc:
        promotion.outcome, promotion.error = "restored", str(exc)
        audit.record(namespace, promotion)
        raise
    if deployed.converged is not None:
        promotion.replicas = deployed.converged.describe()
        promotion.converge_seconds = round(deployed.converged.seconds, 3)
    promotion_id = audit.record(namespace, promotion)
    if target.version is not None and evidence:
        # Why this version moved, on the version itself: the registry shows who promoted it on what evidence.
        tag_version(client, model_name, target.version,
                    {**evidence, DEPLOYED_BY_TAG: run_id, DEPLOYED_AS_TAG: request.role})
    moved = {"role": request.role, "from": moved_from or "none", "to": target.version or "none", "kind": mover.kind}
    return Moved(deployed=deployed, promotion=promotion, promotion_id=promotion_id, evidence=evidence,
                 run_tags={f"{PROMOTION_TAG_PREFIX}{key}": value for key, value in moved.items()})
