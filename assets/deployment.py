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
        from mining_platform.deployment.move import MoveRequest, move, target_of
        from mining_platform.deployment.rollout import DeploymentFailed, Target, current_aliases
        from mining_platform.registry.aliases import PromotionRefused
        from mining_platform.registry.client import RegistryError

        def upstream() -> Target:
            version = latest_metadata_text(context.instance, model_key, "model_version")
            if version is None:
                raise ValueError(f"{model_key.to_user_string()} has no materialisation with a model_version: "
                                 "materialise it first, or set `version` in the run config")
            return Target(version, f"promote the version {model_key.to_user_string()} registered")

        request = MoveRequest(role=config.role, version=config.version, rollback=config.rollback, retire=config.retire)
        with failures_classified():
            client = mlflow.client()
            before = current_aliases(client, model_name)
            try:
                target = target_of(request, model_name, before, upstream=upstream,
                                   served=metadata_history(context.instance, context.asset_key, "live_version"))
            except ValueError as exc:
                raise permanent(str(exc)) from None
            context.log.info(f"{target.action}: {model_name} version {target.version} as {config.role} (champion was "
                             f"{before[CHAMPION]}, challenger {before[CHALLENGER]})")
            try:
                moved = move(client, endpoint.client(), mongo.project_db(project.name), project=project.name,
                             model_name=model_name, request=request, target=target, before=before,
                             run_tags=context.run.tags, run_id=context.run.run_id, job=context.run.job_name,
                             timeout_seconds=endpoint.converge_timeout_seconds)
            except PromotionRefused as exc:
                raise permanent(str(exc)) from None
            except RegistryError as exc:
                raise failure(f"cannot move {model_name}@{config.role} to version {target.version}: {exc.message}",
                              exc) from None
            except DeploymentFailed as exc:  # retried when the endpoint's failure was an outage
                raise failure(str(exc), exc) from None
            # The move on the run itself: the Runs page shows what each deployment run moved.
            context.instance.add_run_tags(context.run.run_id, moved.run_tags)
            deployed, evidence = moved.deployed, moved.evidence
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
                "promotion": dg.MetadataValue.json(moved.promotion.summary()),
                "promotion_id": dg.MetadataValue.text(moved.promotion_id),
                "moved_by": dg.MetadataValue.text(moved.promotion.moved_by.kind),
                **replica_metadata(deployed),
            })

    return deployment


def replica_metadata(deployed: "Deployed") -> dict:
    if deployed.converged is None:
        return {}
    return {"replicas": dg.MetadataValue.json(deployed.converged.describe()),
            "replica_count": dg.MetadataValue.int(len(deployed.converged.replicas)),
            "converge_seconds": dg.MetadataValue.float(round(deployed.converged.seconds, 3))}
