"""`<p>/deployment`: the champion (or challenger) alias moved to a gated version, named in the serving record every
endpoint replica follows, every live replica verified to serve it, and the move audited."""

from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field

from assets.instance import latest_metadata_text, metadata_history
from assets.keys import asset_key
from assets.resilience import failure, failures_classified, permanent, retry_policy
from mining_platform.spec.names import CHALLENGER, CHAMPION, PREVIOUS
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.tags import (
    DEPLOYED_AS_TAG,
    DEPLOYED_BY_TAG,
    PROMOTION_TAG_PREFIX,
    deployed_before_tag,
)
from resources import EndpointResource, MlflowResource, MongoResource

if TYPE_CHECKING:
    from mining_platform.deployment.rollout import Deployed


class DeploymentConfig(dg.Config):
    """What to deploy; by default the version `<p>/model` registered last."""

    rollback: bool = Field(default=False, description="Back to what was served before the champion: the newest "
                           "version this asset deployed that is not the champion (refused when there is none).")
    version: str | None = Field(
        default=None, description="Deploy this registered version instead (it must have passed its gate).")
    role: Literal["champion", "challenger"] = Field(
        default="champion", description="champion: what the endpoint answers with; challenger: the version it runs "
        "next to the champion, in shadow or canary as the project's `serving.challenger` says.")
    retire: bool = Field(default=False, description="With role challenger: stop running the challenger (its alias "
                         "is removed; the version stays registered).")


def build_deployment_asset(project: ProjectConfig) -> dg.AssetsDefinition:
    model_name = project.model.name
    model_key = asset_key(project.name, "model")

    @dg.asset(
        key=asset_key(project.name, "deployment"),
        deps=[dg.AssetDep(model_key)],
        retry_policy=retry_policy(),
        group_name="deployment",
        kinds={"mlflow", "fastapi"},
        description=f"The scoring endpoint serving `{model_name}@{CHAMPION}`: moves `{CHAMPION}` to the version "
        f"`{project.name}/model` registered (only a version whose gate passed), keeps the old one as `{PREVIOUS}`, "
        f"hot-reloads the endpoint and checks that it answers with that version. A failed reload or check restores "
        f"the aliases. Run config `rollback: true` goes back to the version served before the champion (from this "
        f"asset's deployment history, so hand moves of the alias count) through the same path; `role: challenger` "
        f"moves `{CHALLENGER}` instead (the endpoint runs it in {project.serving.challenger.mode}), `retire: true` "
        "stops running it.",
    )
    def deployment(context: dg.AssetExecutionContext, config: DeploymentConfig, mlflow: MlflowResource,
                   endpoint: EndpointResource, mongo: MongoResource) -> dg.MaterializeResult:
        # The registry (and so MLflow): loaded by the step that moves aliases, not by the code location.
        from mining_platform.deployment import audit
        from mining_platform.deployment.convergence import ServingRecords
        from mining_platform.deployment.rollout import (
            DeploymentFailed,
            Rollout,
            Target,
            choose_target,
            current_aliases,
            deploy,
            deploy_challenger,
        )
        from mining_platform.registry.aliases import PromotionRefused
        from mining_platform.registry.client import RegistryError
        from mining_platform.registry.inventory import gate_tags, tag_version

        def upstream() -> Target:
            version = latest_metadata_text(context.instance, model_key, "model_version")
            if version is None:
                raise ValueError(f"{model_key.to_user_string()} has no materialisation with a model_version: "
                                 "materialise it first, or set `version` in the run config")
            return Target(version, f"promote the version {model_key.to_user_string()} registered")

        with failures_classified():
            client = mlflow.client()
            before = current_aliases(client, model_name)
            try:
                if config.retire and (config.role != CHALLENGER or config.version or config.rollback):
                    raise ValueError("retire applies to role challenger alone (without version or rollback)")
                if config.role == CHALLENGER and config.rollback:
                    raise ValueError("rollback applies to the champion; retire the challenger instead")
                if config.retire:
                    target = Target(None, f"retire challenger {before[CHALLENGER]}")
                else:
                    target = choose_target(model_name, before, rollback=config.rollback, version=config.version,
                                           upstream=upstream,
                                           served=metadata_history(context.instance, context.asset_key, "live_version"))
            except ValueError as exc:
                raise permanent(str(exc)) from None
            context.log.info(f"{target.action}: {model_name} version {target.version} as {config.role} (champion was "
                             f"{before[CHAMPION]}, challenger {before[CHALLENGER]})")
            namespace = mongo.project_db(project.name)
            tags = context.run.tags
            mover = audit.moved_by(tags, run_id=context.run.run_id, job=context.run.job_name, rollback=config.rollback)
            moved_from = before[config.role]
            if mover.kind == "hand":  # the alias already names the target: it moved from what was served
                moved_from = tags.get(deployed_before_tag(config.role), moved_from)
                moved_from = None if moved_from == "none" else moved_from
            promotion = audit.Promotion(
                project=project.name, model=model_name, role=config.role, from_version=moved_from,
                to_version=target.version, moved_by=mover, reason=target.action,
                evidence={**audit.evidence_of(tags), **gate_tags(client, model_name, target.version)})
            rollout = Rollout(records=ServingRecords(namespace, model_name), set_by=context.run.run_id,
                              reason=target.action, timeout_seconds=endpoint.converge_timeout_seconds)
            try:
                if config.role == CHALLENGER:
                    deployed = deploy_challenger(client, endpoint.client(), rollout, project=project.name,
                                                 model_name=model_name, target=target.version, before=before)
                else:
                    deployed = deploy(client, endpoint.client(), rollout, project=project.name, model_name=model_name,
                                      target=target.version, before=before)
            except PromotionRefused as exc:
                raise permanent(str(exc)) from None
            except RegistryError as exc:
                raise failure(f"cannot move {model_name}@{config.role} to version {target.version}: {exc.message}",
                              exc) from None
            except DeploymentFailed as exc:  # retried when the endpoint's failure was an outage
                promotion.outcome, promotion.error = "restored", str(exc)
                audit.record(namespace, promotion)
                raise failure(str(exc), exc) from None
            if deployed.converged is not None:
                promotion.replicas = deployed.converged.describe()
                promotion.converge_seconds = round(deployed.converged.seconds, 3)
            promotion_id = audit.record(namespace, promotion)
            # The move on the run itself: the Runs page shows what each deployment run moved.
            context.instance.add_run_tags(context.run.run_id, {
                f"{PROMOTION_TAG_PREFIX}role": config.role, f"{PROMOTION_TAG_PREFIX}from": moved_from or "none",
                f"{PROMOTION_TAG_PREFIX}to": target.version or "none", f"{PROMOTION_TAG_PREFIX}kind": mover.kind})
            evidence = audit.evidence_of(tags)
            if target.version is not None and evidence:
                # Why this version moved, on the version itself: the registry shows who promoted it on what evidence.
                tag_version(client, model_name, target.version,
                            {**evidence, DEPLOYED_BY_TAG: context.run.run_id, DEPLOYED_AS_TAG: config.role})
            return dg.MaterializeResult(metadata={
                "live_version": dg.MetadataValue.text(deployed.version),
                "previous_version": dg.MetadataValue.text(deployed.previous_version or "none"),
                "challenger_version": dg.MetadataValue.text(deployed.challenger or "none"),
                "role": dg.MetadataValue.text(config.role),
                "model_uri": dg.MetadataValue.text(f"models:/{model_name}/{deployed.version}"),
                "mlflow_run_id": dg.MetadataValue.text(deployed.run_id),
                "endpoint_url": dg.MetadataValue.url(endpoint.url),
                "endpoint_docs": dg.MetadataValue.url(f"{endpoint.url.rstrip('/')}/docs"),
                "loaded_at": dg.MetadataValue.text(deployed.loaded_at),
                "action": dg.MetadataValue.text(target.action),
                "swapped": dg.MetadataValue.bool(deployed.swapped),
                **({"evidence": dg.MetadataValue.json(evidence)} if evidence else {}),
                "promotion": dg.MetadataValue.json(promotion.summary()),
                "promotion_id": dg.MetadataValue.text(promotion_id),
                "moved_by": dg.MetadataValue.text(mover.kind),
                **replica_metadata(deployed),
            })

    return deployment


def replica_metadata(deployed: "Deployed") -> dict:
    if deployed.converged is None:
        return {}
    return {"replicas": dg.MetadataValue.json(deployed.converged.describe()),
            "replica_count": dg.MetadataValue.int(len(deployed.converged.replicas)),
            "converge_seconds": dg.MetadataValue.float(round(deployed.converged.seconds, 3))}
