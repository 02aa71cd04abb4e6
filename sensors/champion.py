"""`<p>_champion_sensor`: when `champion` (or `challenger`) moves outside Dagster (MLflow UI, a script), redeploy it.

The endpoint serves whatever `<p>/deployment` last verified. When the alias names
another version and no deployment is in flight, the sensor launches
`<p>_deploy_job` for that version, which reloads the endpoint and checks it. A move
made by the deployment asset itself is recognised by its materialisation and skipped.

Each move the sensor sees is numbered in its JSON cursor and the run key is
`champion:<p>:<version>:<move>`: a re-evaluation after a crash repeats the key (one
launch), and moving the alias back to a version deployed before is a new move.

The challenger alias is followed the same way, once the champion is in place: set or
moved by hand, `<p>_deploy_job` runs with `role: challenger` (removed: `retire: true`),
run key `challenger:<p>:<version or none>:<move>`.
"""

import dataclasses

import dagster as dg

from assets.instance import latest_metadata_text, runs_in_flight
from assets.keys import asset_key
from mining_platform.registry.aliases import CHALLENGER, CHAMPION, alias_version, champion
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.tags import (
    CAUSE_TAG,
    deploy_job,
    deployed_before_tag,
    moved_version_tag,
    retrain_job,
    sensor_name,
)
from resources import MlflowResource
from sensors.cursor import dump_cursor, load_cursor


@dataclasses.dataclass
class ChampionCursor:
    champion: str | None = None  # the version the alias named at the last tick
    moves: int = 0  # alias moves seen so far
    challenger: str | None = None  # the version the challenger alias named at the last tick
    challenger_moves: int = 0


def deployed_version(instance: dg.DagsterInstance, deployment_key: dg.AssetKey) -> str | None:
    """The version the latest successful `<p>/deployment` verified on the endpoint."""
    return latest_metadata_text(instance, deployment_key, "live_version")


def deployments_in_flight(instance: dg.DagsterInstance, project: ProjectConfig) -> list[str]:
    """Runs queued or running that may materialise the deployment: its jobs, or a launch from the UI."""
    deployment_key = asset_key(project.name, "deployment")
    jobs = {retrain_job(project.name), deploy_job(project.name)}
    return [run.run_id for run in runs_in_flight(instance)
            if deployment_key in (run.asset_selection or ()) or (run.asset_selection is None and run.job_name in jobs)]


def build_champion_sensor(project: ProjectConfig, jobs: list) -> dg.SensorDefinition:
    deployment_key = asset_key(project.name, "deployment")
    model_name = project.model.name
    op_name = deployment_key.to_python_identifier()

    @dg.sensor(
        name=sensor_name(project.name, "champion"),
        jobs=[job for job in jobs if job.name == deploy_job(project.name)],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"When `{model_name}@champion` (or `@challenger`) names a version the endpoint was not deployed "
        f"with (moved in the MLflow UI or by a script), launches `{deploy_job(project.name)}` for it so the endpoint "
        "hot-reloads.",
    )
    def champion_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowResource) -> dg.SensorResult:
        cursor = load_cursor(ChampionCursor, context.cursor, context.log)
        client = mlflow.client()
        current = champion(client, model_name)
        version = current.version if current else None
        if version != cursor.champion:
            cursor.champion, cursor.moves = version, cursor.moves + 1
        challenger = alias_version(client, model_name, CHALLENGER)
        if challenger != cursor.challenger:
            cursor.challenger, cursor.challenger_moves = challenger, cursor.challenger_moves + 1
        result = dict(cursor=dump_cursor(cursor))
        if version is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"{model_name} has no champion"), **result)
        deployed = deployed_version(context.instance, deployment_key)
        busy = deployments_in_flight(context.instance, project)
        if deployed != version:
            if busy:
                return dg.SensorResult(skip_reason=dg.SkipReason(
                    f"champion is v{version}, deployed v{deployed}; deployment run {busy[0]} in flight"), **result)
            return dg.SensorResult(run_requests=[dg.RunRequest(
                run_key=f"champion:{project.name}:{version}:{cursor.moves}",
                job_name=deploy_job(project.name),
                run_config={"ops": {op_name: {"config": {"version": version}}}},
                tags={CAUSE_TAG: "champion_moved", moved_version_tag(CHAMPION): version,
                      deployed_before_tag(CHAMPION): deployed or "none"},
            )], **result)
        wanted = challenger if challenger != version else None  # the champion's own version is never its challenger
        running = latest_metadata_text(context.instance, deployment_key, "challenger_version")
        running = None if running in (None, "none") else running
        if wanted == running:
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"the endpoint was deployed with v{version}" + (f" and challenger v{running}" if running else "")),
                **result)
        if busy:
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"challenger is {wanted or 'none'}, deployed {running or 'none'}; deployment run {busy[0]} in flight"),
                **result)
        config = {"role": CHALLENGER, "version": wanted} if wanted else {"role": CHALLENGER, "retire": True}
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key=f"challenger:{project.name}:{wanted or 'none'}:{cursor.challenger_moves}",
            job_name=deploy_job(project.name),
            run_config={"ops": {op_name: {"config": config}}},
            tags={CAUSE_TAG: "challenger_moved", moved_version_tag(CHALLENGER): wanted or "none",
                  deployed_before_tag(CHALLENGER): running or "none"},
        )], **result)

    return champion_sensor
