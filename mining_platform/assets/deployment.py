"""`<p>/deployment`: the champion alias moved to a gated version and the endpoint verified to serve it."""

import dagster as dg
from mlflow.exceptions import MlflowException
from pydantic import Field

from mining_platform.deployment.rollout import DeploymentFailed, Target, choose_target, current_aliases, deploy
from mining_platform.instance import latest_metadata_text, metadata_history
from mining_platform.keys import asset_key
from mining_platform.registry.aliases import PromotionRefused
from mining_platform.resilience import failure, failures_classified, permanent, retry_policy
from mining_platform.resources import EndpointResource, MlflowResource
from mining_platform.spec.names import CHAMPION, PREVIOUS
from mining_platform.spec.project import ProjectConfig


class DeploymentConfig(dg.Config):
    """What to deploy; by default the version `<p>/model` registered last."""

    rollback: bool = Field(default=False, description="Back to what was served before the champion: the newest "
                           "version this asset deployed that is not the champion (refused when there is none).")
    version: str | None = Field(
        default=None, description="Deploy this registered version instead (it must have passed its gate).")


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
        f"asset's deployment history, so hand moves of the alias count) through the same path.",
    )
    def deployment(context: dg.AssetExecutionContext, config: DeploymentConfig, mlflow: MlflowResource,
                   endpoint: EndpointResource) -> dg.MaterializeResult:
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
                target = choose_target(model_name, before, rollback=config.rollback, version=config.version,
                                       upstream=upstream,
                                       served=metadata_history(context.instance, context.asset_key, "live_version"))
            except ValueError as exc:
                raise permanent(str(exc)) from None
            context.log.info(f"{target.action}: {model_name} version {target.version} (champion was {before[CHAMPION]})")
            try:
                deployed = deploy(client, endpoint.client(), project=project.name, model_name=model_name,
                                  target=target.version, before=before)
            except PromotionRefused as exc:
                raise permanent(str(exc)) from None
            except MlflowException as exc:
                raise failure(f"cannot move {model_name}@{CHAMPION} to version {target.version}: {exc.message}",
                              exc) from None
            except DeploymentFailed as exc:  # retried when the endpoint's failure was an outage
                raise failure(str(exc), exc) from None
            return dg.MaterializeResult(metadata={
                "live_version": dg.MetadataValue.text(deployed.version),
                "previous_version": dg.MetadataValue.text(deployed.previous_version or "none"),
                "model_uri": dg.MetadataValue.text(f"models:/{model_name}/{deployed.version}"),
                "mlflow_run_id": dg.MetadataValue.text(deployed.run_id),
                "endpoint_url": dg.MetadataValue.url(endpoint.url),
                "endpoint_docs": dg.MetadataValue.url(f"{endpoint.url.rstrip('/')}/docs"),
                "loaded_at": dg.MetadataValue.text(deployed.loaded_at),
                "action": dg.MetadataValue.text(target.action),
                "swapped": dg.MetadataValue.bool(deployed.swapped),
            })

    return deployment
