"""`<p>_performance_sensor`: realised performance reports as labels mature, and decisions on their evidence.

Each tick:

1. Among the newest matured days (the last `max(7, 2 × min_days)` predicted days whose
   label window has elapsed in the label source, by its watermark), those without a
   performance report newer than their predictions: one `<p>_performance_job` run each
   (oldest first, a few per tick), run key `performance:<p>:report:<day>:<predictions
   event>`. Older days (a backfill of predictions) are reported by hand: decisions only
   read the newest days.
2. The newest `performance.min_days` reports about the current champion decide, in
   this order:
   - **promote** the challenger when it beat the champion on every one of those days
     and their pooled interval is clear of zero: `<p>_deploy_job` with `version` = the
     challenger, through the same gated promotion (its gate must have passed);
   - **retire** the challenger when it lost on every day and the interval is clear of
     zero on the other side: `<p>_deploy_job` with `role: challenger, retire: true`;
   - **retrain** when the champion's realised gate metric was past the gate's bound on
     every one of those days: `<p>_retrain_job`, as the drift sensor launches it.
   (the policy: `mining_platform.monitoring.policy`). Run keys name the decision, the version and the newest day
   (`performance:<p>:<decision>:<version>:<day>`), so a decision is launched once;
   tags `mining.cause=performance` and `mining.performance.*` carry the evidence,
   which the deployment copies onto the MLflow version. Otherwise a SkipReason says why.
"""

import dataclasses
import datetime as dt

import dagster as dg

from assets.instance import latest_partition_materializations, runs_in_flight
from assets.keys import project_keys
from mining_platform.monitoring.policy import decide
from mining_platform.registry.aliases import alias_version
from mining_platform.sources.observe import complete_through, watermark
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import CHALLENGER, CHAMPION
from mining_platform.spec.tags import (
    CAUSE_TAG,
    deploy_job,
    performance_job,
    retrain_job,
    sensor_name,
)
from resources import MlflowResource, MongoResource
from sensors.champion import deployments_in_flight
from sensors.cursor import dump_cursor, load_cursor
from sensors.retrain import retrain_request

REPORTS_PER_TICK = 5


@dataclasses.dataclass
class PerformanceCursor:
    performance_event: int = 0  # storage id of the newest performance report seen
    last_decision: str | None = None  # the run key of the last decision launched


def report_window(spec: ProjectSpec) -> int:
    """How many of the newest matured days the sensor keeps reported."""
    return max(7, 2 * spec.project.performance.min_days)


def reports_to_request(instance: dg.DagsterInstance, spec: ProjectSpec, complete: dt.date | None) -> list[tuple[str, int]]:
    """(day, predictions storage id) of the days to report on, oldest first: among the newest matured predicted
    days, those without a report newer than their predictions."""
    k = project_keys(spec)
    predicted = latest_partition_materializations(instance, k.predictions)
    reported = latest_partition_materializations(instance, k.performance)
    matured = [day for day in sorted(predicted)
               if complete is not None and dt.date.fromisoformat(day) + spec.horizon <= complete]
    due = []
    for day in matured[-report_window(spec):]:
        record = predicted[day]
        report = reported.get(day)
        if report is None or report.storage_id < record.storage_id:
            due.append((day, record.storage_id))
    return due


def evidence_by_day(instance: dg.DagsterInstance, spec: ProjectSpec) -> dict[str, dict]:
    """Day -> the `evidence` of its latest performance report."""
    found = {}
    for day, record in latest_partition_materializations(instance, project_keys(spec).performance).items():
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        if "evidence" in metadata:
            found[day] = metadata["evidence"].value
    return found




def build_performance_sensor(spec: ProjectSpec, jobs: list) -> dg.SensorDefinition:
    project = spec.project
    k = project_keys(spec)
    wanted_jobs = (performance_job(project.name), deploy_job(project.name), retrain_job(project.name))
    deploy_op = k.deployment.to_python_identifier()

    @dg.sensor(
        name=sensor_name(project.name, "performance"),
        jobs=[job for job in jobs if job.name in wanted_jobs],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Requests `{project.name}/performance` for each predicted day whose label window has elapsed; on "
        f"the newest {project.performance.min_days} reports promotes a challenger that beat the champion (interval "
        f"clear of zero), retires one that lost, or launches `{retrain_job(project.name)}` when the champion's "
        f"realised {project.model.gate.metric} is past the gate's bound.",
    )
    def performance_sensor(context: dg.SensorEvaluationContext, mlflow: MlflowResource,
                           mongo: MongoResource) -> dg.SensorResult:
        instance = context.instance
        cursor = load_cursor(PerformanceCursor, context.cursor, context.log)
        requests, notes = [], []
        source = spec.label_source
        complete = complete_through(watermark(mongo.db(), source), source.lateness_days)

        due = reports_to_request(instance, spec, complete)
        for day, predictions_event in due[:REPORTS_PER_TICK]:
            requests.append(dg.RunRequest(
                run_key=f"performance:{project.name}:report:{day}:{predictions_event}",
                job_name=performance_job(project.name), partition_key=day,
                tags={CAUSE_TAG: "labels_matured"}))
        if len(due) > REPORTS_PER_TICK:
            notes.append(f"{len(due) - REPORTS_PER_TICK} more matured days wait for the next tick")

        reports = latest_partition_materializations(instance, k.performance)
        if reports:
            cursor.performance_event = max(cursor.performance_event, max(r.storage_id for r in reports.values()))
        client = mlflow.client()
        champion = alias_version(client, project.model.name, CHAMPION)
        challenger = alias_version(client, project.model.name, CHALLENGER)
        decision = decide(spec, evidence_by_day(instance, spec), champion=champion, challenger=challenger)
        if isinstance(decision, str):
            notes.append(decision)
        else:
            busy = deployments_in_flight(instance, project) + [
                r.run_id for r in runs_in_flight(instance, job_name=retrain_job(project.name), limit=5)]
            if busy:
                notes.append(f"{decision.reason}; waiting: run {busy[0]} is in flight")
            else:
                run_key = f"performance:{project.name}:{decision.kind}:{decision.version}:{max(decision.days)}"
                tags = {CAUSE_TAG: "performance", **decision.tags}
                if decision.kind == "retrain":
                    requests.append(retrain_request(instance, spec, run_key=run_key, tags=tags, complete=complete))
                else:
                    config = ({"version": decision.version} if decision.kind == "promote"
                              else {"role": CHALLENGER, "retire": True})
                    requests.append(dg.RunRequest(
                        run_key=run_key, job_name=deploy_job(project.name),
                        run_config={"ops": {deploy_op: {"config": config}}}, tags=tags))
                cursor.last_decision = run_key
                context.log.info(decision.reason)
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None if requests else dg.SkipReason("; ".join(notes) or "nothing to report or decide"),
            cursor=dump_cursor(cursor),
        )

    return performance_sensor
