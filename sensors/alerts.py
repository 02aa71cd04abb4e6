"""A project's alert sensors (`alerts:` of its project file; the alerts themselves: `mining_platform.alerts`).

- `<p>_run_failure_alert_sensor` (Dagster's run-failure sensor, over the project's code location): every failed
  run alerts `run_failure` with its failed steps, the error and a link to the run; a failed gate alerts
  `gate_failed` (and `retrain_failing` once `alerts.retrain_failures` versions in a row failed theirs); a sample day
  refused as immature alerts `samples_overdue` only once its label window should long have closed.
- `<p>_replica_alert_sensor` (every minute): an endpoint replica whose heartbeat stopped without a clean shutdown
  alerts `replica_silent`, once per silence.
- `<p>_decision_alert_sensor` (a run-status sensor, only when a decision event is asked for): a run the drift or
  performance sensor launched on its own decision alerts `drift_decision` or `performance_decision`.

Each is on by default, like the other sensors; a tick that sends says what went where.
"""

import datetime as dt
import json

import dagster as dg

from assets.partitions import daily_partitions
from mining_platform import settings
from mining_platform.alerts import Alert, send
from mining_platform.alerts.events import (
    FailedStep,
    decision_alert,
    gate_verdicts,
    run_failure_alerts,
    silent_replicas,
)
from mining_platform.registry.inventory import registered_versions
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import SERVING_REPLICAS
from mining_platform.spec.replicas import parse_heartbeat
from mining_platform.spec.tags import GATE_REASON_TAG, sensor_name
from resources import MlflowResource, MongoResource


def run_url(run_id: str) -> str:
    return f"{settings.dagster_url()}/runs/{run_id}"


def _sent(alerts: list[Alert], spec: ProjectSpec) -> str:
    lines = []
    for alert in alerts:
        deliveries = send(alert, spec.project.alerts)
        lines.append(f"{alert.event}: " + ", ".join(f"{d.sink} {'sent' if d.delivered else 'FAILED: ' + str(d.error)}"
                                                     for d in deliveries))
    return "; ".join(lines)


def build_alert_sensors(spec: ProjectSpec) -> list[dg.SensorDefinition]:
    project, alerts = spec.project, spec.project.alerts
    partitions_def = daily_partitions(project)
    lateness = dt.timedelta(days=project.sources[spec.label_definition.source].lateness_days)

    def label_window_end(partition: str) -> dt.datetime:
        return spec.label_window(partitions_def.time_window_for_partition_key(partition).end)[1] + lateness

    @dg.run_failure_sensor(
        name=sensor_name(project.name, "run_failure_alert"), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Alerts (alerts: of {project.name}'s project file) on every failed run of the project: the "
        "failed steps, the error, a link to the run; a failed gate, a retrain failing again and again, an overdue "
        "sample day.",
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, mlflow: MlflowResource):
        run = context.dagster_run
        steps = [FailedStep(e.step_key, e.step_failure_data.error.cls_name if e.step_failure_data.error else "",
                            e.step_failure_data.error.message if e.step_failure_data.error else e.message or "")
                 for e in context.get_step_failure_events()]
        gates = reason = None
        if any(s.key == f"{project.name}__model" for s in steps):
            versions = registered_versions(mlflow.client(), project.model.name)
            gates = gate_verdicts(versions)
            reason = versions[0].tags.get(GATE_REASON_TAG) if versions else None
        found = run_failure_alerts(
            project.name, run_id=run.run_id, job=run.job_name, tags=dict(run.tags), steps=steps,
            message=context.failure_event.message or "", url=run_url(run.run_id), alerts=alerts,
            now=dt.datetime.now(dt.timezone.utc), label_window_end=label_window_end, gates=gates, gate_reason=reason)
        if not found:
            return dg.SkipReason(f"run {run.run_id} failed; no alert asked for (alerts.events)")
        context.log.info(_sent(found, spec))

    @dg.sensor(
        name=sensor_name(project.name, "replica_alert"), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description="Alerts when an endpoint replica serving this project stopped beating without shutting down.",
    )
    def replica_alert(context: dg.SensorEvaluationContext, mongo: MongoResource) -> dg.SensorResult:
        now = dt.datetime.now(dt.timezone.utc)
        beats = [parse_heartbeat(d) for d in mongo.endpoint_db(project.name)[SERVING_REPLICAS].find()]
        silent = silent_replicas(project.name, beats, now=now, alerts=alerts)
        alerted = set(json.loads(context.cursor or "[]"))
        new = [a for a in silent if a.key not in alerted]
        cursor = json.dumps(sorted(a.key for a in silent))  # a silence that ended (beats again, or removed) is forgotten
        if not new:
            return dg.SensorResult(cursor=cursor, skip_reason=f"{len(beats)} replicas, {len(silent)} silent, "
                                   "none newly")
        context.log.info(_sent(new, spec))
        return dg.SensorResult(cursor=cursor)

    sensors = [run_failure_alert, replica_alert]
    if alerts.wants("drift_decision") or alerts.wants("performance_decision"):
        @dg.run_status_sensor(
            run_status=dg.DagsterRunStatus.STARTED, name=sensor_name(project.name, "decision_alert"),
            default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
            description="Alerts when the drift or performance sensor launched a run on its own decision.",
        )
        def decision_alert_sensor(context: dg.RunStatusSensorContext):
            run = context.dagster_run
            alert = decision_alert(project.name, run_id=run.run_id, job=run.job_name, tags=dict(run.tags),
                                   url=run_url(run.run_id), now=dt.datetime.now(dt.timezone.utc), alerts=alerts)
            if alert is None:
                return dg.SkipReason(f"run {run.run_id} was not a sensor's decision")
            context.log.info(_sent([alert], spec))

        sensors.append(decision_alert_sensor)
    return sensors
