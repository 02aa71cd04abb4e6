"""`<p>/deployment`: the champion alias moved to a gated version and the endpoint verified to serve it."""

import dagster as dg
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import Field

from mining_platform.assets.run_context import latest_metadata_text
from mining_platform.project import ProjectConfig
from mining_platform.resilience import failures_classified, is_transient, permanent, retry_policy
from mining_platform.resources import EndpointResource, MlflowResource
from mining_platform.resources.endpoint import EndpointError
from mining_platform.training.registry import CHAMPION, PREVIOUS, PromotionRefused, alias_version, promote_to_champion


class DeploymentConfig(dg.Config):
    """What to deploy; by default the version `<p>/model` registered last."""

    rollback: bool = Field(default=False, description="Re-point champion to the previous champion (they swap).")
    version: str | None = Field(
        default=None, description="Deploy this registered version instead (it must have passed its gate).")


class HitCheckFailed(RuntimeError):
    """The endpoint does not serve the version the registry now names champion."""


def _upstream_version(context: dg.AssetExecutionContext, model_key: dg.AssetKey) -> str:
    version = latest_metadata_text(context.instance, model_key, "model_version")
    if version is None:
        raise permanent(f"{model_key.to_user_string()} has no materialisation with a model_version: "
                        "materialise it first, or set `version` in the run config")
    return version


def _restore(client: MlflowClient, model_name: str, aliases: dict[str, str | None]) -> None:
    for alias, version in aliases.items():
        if version is not None:
            client.set_registered_model_alias(model_name, alias, version)
        elif alias_version(client, model_name, alias) is not None:
            client.delete_registered_model_alias(model_name, alias)


def _hit_check(endpoint: EndpointResource, project: str, version: str) -> dict:
    """The endpoint reports the version, and a prediction is answered by it."""
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


def build_deployment_asset(project: ProjectConfig) -> dg.AssetsDefinition:
    model_name = project.model.name
    model_key = dg.AssetKey([project.name, "model"])

    @dg.asset(
        key=[project.name, "deployment"],
        deps=[dg.AssetDep(model_key)],
        retry_policy=retry_policy(),
        group_name="deployment",
        kinds={"mlflow", "fastapi"},
        description=f"The scoring endpoint serving `{model_name}@{CHAMPION}`: moves `{CHAMPION}` to the version "
        f"`{project.name}/model` registered (only a version whose gate passed), keeps the old one as `{PREVIOUS}`, "
        f"hot-reloads the endpoint and checks that it answers with that version. A failed reload or check restores "
        f"the aliases. Run config `rollback: true` swaps `{CHAMPION}` and `{PREVIOUS}` through the same path.",
    )
    def deployment(context: dg.AssetExecutionContext, config: DeploymentConfig, mlflow: MlflowResource,
                   endpoint: EndpointResource) -> dg.MaterializeResult:
        with failures_classified():
            client = mlflow.client()
            before = {alias: alias_version(client, model_name, alias) for alias in (CHAMPION, PREVIOUS)}
            if config.rollback and config.version:
                raise permanent("set either rollback or version, not both")
            if config.rollback:
                if before[PREVIOUS] is None:
                    raise permanent(f"{model_name} has no {PREVIOUS!r} version to roll back to")
                target, action = before[PREVIOUS], "rollback"
            elif config.version:
                target, action = config.version, "deploy the requested version"
            else:
                target, action = _upstream_version(context, model_key), f"promote the version {model_key.to_user_string()} registered"
            context.log.info(f"{action}: {model_name} version {target} (champion was {before[CHAMPION]})")
            try:
                replaced = promote_to_champion(client, model_name, target)
            except PromotionRefused as exc:
                raise permanent(str(exc)) from None
            except MlflowException as exc:
                raise dg.Failure(description=f"cannot move {model_name}@{CHAMPION} to version {target}: {exc.message}",
                                 allow_retries=is_transient(exc)) from None

            try:
                reloaded = endpoint.reload(project.name)
                served = _hit_check(endpoint, project.name, target)
            except (EndpointError, HitCheckFailed) as exc:
                _restore(client, model_name, before)
                try:  # best effort: the endpoint may have swapped before the check failed
                    endpoint.reload(project.name)
                except EndpointError:
                    pass
                raise dg.Failure(description=(
                    f"deploying {model_name} version {target} failed: {exc}. The aliases are restored "
                    f"({CHAMPION}: {before[CHAMPION]}, {PREVIOUS}: {before[PREVIOUS]})"),
                    allow_retries=is_transient(exc)) from None

            # promote_to_champion moved the replaced champion to previous, unless target already was champion.
            after_previous = replaced if replaced not in (None, target) else before[PREVIOUS]
            return dg.MaterializeResult(metadata={
                "live_version": dg.MetadataValue.text(target),
                "previous_version": dg.MetadataValue.text(after_previous or "none"),
                "model_uri": dg.MetadataValue.text(f"models:/{model_name}/{target}"),
                "mlflow_run_id": dg.MetadataValue.text(served["run_id"]),
                "endpoint_url": dg.MetadataValue.url(endpoint.url),
                "endpoint_docs": dg.MetadataValue.url(f"{endpoint.url.rstrip('/')}/docs"),
                "loaded_at": dg.MetadataValue.text(served["loaded_at"]),
                "action": dg.MetadataValue.text(action),
                "swapped": dg.MetadataValue.bool(reloaded["changed"]),
            })

    return deployment
